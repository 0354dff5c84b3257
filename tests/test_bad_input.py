"""Bad input, one case per way a user's file can be wrong: every reader refuses it where it enters.

Each case builds its own malformed input under tmp_path and returns (call, culprits, outputs):
the call must raise exactly the stated error type, its message must name every culprit (the
file, the record, the key, the value), and none of ``outputs`` may exist afterwards, nor any
hidden ``.*.part`` temporary of an atomic write.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from archive_server import zip_bytes
from PIL import Image
from pycocotools import mask as mask_utils

from bana_core.config import load_config, load_yaml, validate_config
from bana_core.data.coco import load_coco, save_coco_index
from bana_core.data.download import extract, fetch_and_extract
from bana_core.data.sbd import build_train_aug, read_sbd_cls
from bana_core.data.voc import VocLayout, load_image, load_label, read_split, read_voc_xml, write_box_masks
from bana_core.errors import ChecksumError, ConfigError, DataError, UnsafeArchiveError
from bana_core.evaluation import box_fill_miou
from bana_core.io import atomic_dir, atomic_path, is_temporary, save_label_png, temporary_path, write_text

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"
CASES: dict[str, tuple] = {}


def case(name: str, error: type[Exception]):
    def register(build):
        assert name not in CASES
        CASES[name] = (build, error)
        return build
    return register


# --------------------------------------------------------------------------------------- configs
# Written to a YAML file and read with load_config, as a user's --configfile would be: the error
# names the file and the key. One or more cases per section of the schema.


def demo_config() -> dict:
    return load_yaml(ROOT / "config" / "config.yaml")


def paper_config() -> dict:
    return load_yaml(ROOT / "config" / "voc2012.yaml")


def set_key(cfg: dict, key: str, value) -> dict:
    *parents, last = key.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return cfg


_DELETE = object()


def config_case(name: str, key: str, value, *fragments: str, base=demo_config, error=ConfigError):
    """Set ``key`` to ``value`` (or delete it) in a shipped config; the error names the file, ``fragments``."""
    def build(tmp_path):
        path = tmp_path / "user_config.yaml"
        path.write_text(yaml.safe_dump(set_key(base(), key, value), sort_keys=False))
        return (lambda: load_config(path, SCHEMA)), [path, *fragments], []
    case(f"config/{name}", error)(build)


def config_text_case(name: str, edit, *fragments: str):
    """A config whose YAML text is edited (for what a dict cannot express: NaN spelled .nan, duplicates)."""
    def build(tmp_path):
        path = tmp_path / "user_config.yaml"
        path.write_text(edit((ROOT / "config" / "config.yaml").read_text()))
        return (lambda: load_config(path, SCHEMA)), [path, *fragments], []
    case(f"config/{name}", ConfigError)(build)


def _replace_once(old: str, new: str):
    def edit(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)
    return edit


config_text_case("stage1.lr NaN", _replace_once("\n  lr: 0.01 ", "\n  lr: .nan "), "'stage1.lr'", "not a finite number")
config_text_case("stage3 lr inf", _replace_once("      lr: 0.01               # base learning rate; needs",
                                                "      lr: .inf               # base learning rate; needs"),
                 "'stage3.arch.v2.lr'", "not a finite number")
config_text_case("pretrain.lr -inf", _replace_once("  lr: 0.05 ", "  lr: -.inf "), "'pretrain.lr'", "finite")
config_text_case("stage2.crf NaN item", _replace_once("crf: [4, 55, 3, 3, 3]", "crf: [4, 55, .nan, 3, 3]"),
                 "'stage2.crf.2'", "not a finite number")
config_text_case("key given twice", _replace_once("\n  iterations: 500 ", "\n  iterations: 50\n  iterations: 500 "),
                 "'iterations' appears twice", "not valid YAML")
config_text_case("1e-3 read as text", _replace_once("\n  lr: 0.01 ", "\n  lr: 1e-2 "), "'stage1.lr'", "'1e-2'",
                 "write it with a dot")
config_text_case("not YAML", lambda text: text + "\nstage9: [unclosed\n", "not valid YAML")
config_text_case("top level is a list", lambda text: "- run: demo\n", "top level must be a mapping")

config_case("run has a slash", "run", "my/run", "'run'", "does not match")
config_case("device unknown", "device", "gpu", "'device'", "'gpu'")
config_case("seed negative", "seed", -1, "'seed'", "-1")
config_case("seed above 32 bits", "seed", 2**40, "'seed'", str(2**40))
config_case("seeds empty", "seeds", [], "'seeds': []")  # "should be non-empty" / "is too short" by jsonschema version
config_case("seeds repeated", "seeds", [0, 1, 1], "'seeds'", "non-unique")
config_case("gpus_per_job as text", "gpus_per_job", "one", "'gpus_per_job'", "'one'")
config_case("train_threads zero", "train_threads", 0, "'train_threads'")
config_case("resources runtime zero", "resources", {"train_segmenter": {"runtime": 0}},
            "'resources.train_segmenter.runtime'", "0")
config_case("show_paper_results not a bool", "show_paper_results", "maybe", "'show_paper_results'")
config_case("dataset.source typo", "dataset.source", "downlaod", "'dataset.source'", "'downlaod'")
config_case("dataset.name missing", "dataset.name", _DELETE, "config key 'dataset.name' is required but missing")
config_case("dataset.synthetic too few val", "dataset.synthetic.n_val", 2, "'dataset.synthetic.n_val'")
config_case("dataset.synthetic image_size short", "dataset.synthetic.image_size", [160],
            "'dataset.synthetic.image_size'")
config_case("dataset.download bad md5", "dataset.download.sbd.md5", "not-a-digest",
            "'dataset.download.sbd.md5'", base=paper_config)
config_case("dataset.download no url", "dataset.download.voc_trainval.url", _DELETE,
            "config key 'dataset.download.voc_trainval.url' is required but missing", base=paper_config)
config_case("dataset.download extract_to escapes", "dataset.download.coco_train.extract_to", "../../elsewhere",
            "'dataset.download.coco_train.extract_to'", "'../../elsewhere'", base=paper_config)
config_case("pretrain.clutter above 1", "pretrain.clutter", 1.5, "'pretrain.clutter'", "1.5")
config_case("stage1.iterations missing", "stage1.iterations", _DELETE,
            "config key 'stage1.iterations' is required but missing")
config_case("stage1.iterations a float", "stage1.iterations", 500.0, "'stage1.iterations'", "500.0",
            "'integer'")
config_case("stage1.lr negative", "stage1.lr", -0.01, "'stage1.lr'", "-0.01")
config_case("stage1.lr_steps past the end", "stage1.lr_steps", [600], "'stage1.lr_steps'", "600")
config_case("stage1.backbone.width zero", "stage1.backbone.width", 0, "'stage1.backbone.width'")
config_case("stage1.augment.scale reversed", "stage1.augment.scale", [1.5, 0.5], "'stage1.augment.scale'")
config_case("stage1.grid_sizes repeated", "stage1.grid_sizes", [1, 2, 2, 4], "'stage1.grid_sizes'",
            "non-unique")
config_case("stage1 unknown key", "stage1.lrate", 0.1, "unknown key stage1.lrate")
config_case("stage2.n_shards as text", "stage2.n_shards", "four", "'stage2.n_shards'", "'four'")
config_case("stage2.bg_threshold above 1", "stage2.bg_threshold", 1.2, "'stage2.bg_threshold'")
config_case("stage2.crf four numbers", "stage2.crf", [4, 55, 3, 3], "'stage2.crf'")
config_case("coco.n_shards zero", "coco.n_shards", 0, "'coco.n_shards'")
config_case("coco.enabled as text", "coco.enabled", "yes please", "'coco.enabled'")
config_case("stage3.arch.v1.crf negative", "stage3.arch.v1.crf", [4, 121, -5, 3, 3], "'stage3.arch.v1.crf.2'")
config_case("stage3.arch.v2 missing", "stage3.arch.v2", _DELETE, "config key 'stage3.arch.v2' is required but missing")
config_case("stage3.arch.v2.depth", "stage3.arch.v2.depth", 102, "'stage3.arch.v2.depth'", "102")
config_case("stage3.lam negative", "stage3.lam", -0.1, "'stage3.lam'")
config_case("stage3.fig3_damps repeated", "stage3.fig3_damps", [70, 70, 3], "'stage3.fig3_damps'")


@case("config/file not found", ConfigError)
def _(tmp_path):
    path = tmp_path / "missing.yaml"
    return (lambda: load_config(path, SCHEMA)), [path, "file not found"], []


# ------------------------------------------------------------------------------- VOC: XML


def voc_xml(width, height, objects) -> str:
    body = "".join(
        f"<object><name>{n}</name>{extra}<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
        f"<ymax>{y2}</ymax></bndbox></object>" for n, x1, y1, x2, y2, extra in objects)
    return f"<annotation><size><width>{width}</width><height>{height}</height></size>{body}</annotation>"


def xml_case(name: str, text: str | None, *fragments: str):
    def build(tmp_path):
        path = tmp_path / "2007_000032.xml"
        if text is not None:
            path.write_text(text)
        return (lambda: read_voc_xml(path)), [path, *fragments], []
    case(f"voc xml/{name}", DataError)(build)


xml_case("not XML", "<annotation><size>", "not a readable XML file")
xml_case("file missing", None, "annotation file not found")
xml_case("no size", "<annotation></annotation>", "missing <size>")
xml_case("zero width", voc_xml(0, 10, []), "invalid image size 0")
xml_case("width not a number", voc_xml("wide", 10, []), "<width> is not a number: 'wide'")
xml_case("unknown class", voc_xml(10, 10, [("zebra", 1, 1, 5, 5, "")]), "object 0", "unknown class 'zebra'")
xml_case("coordinate NaN", voc_xml(10, 10, [("dog", "nan", 1, 5, 5, "")]), "object 0", "<xmin> is not finite")
xml_case("coordinate text", voc_xml(10, 10, [("dog", 1, "top", 5, 5, "")]), "object 0", "'top'")
xml_case("box inverted", voc_xml(10, 10, [("dog", 1, 1, 5, 5, ""), ("cat", 6, 2, 4, 4, "")]),
         "object 1 (cat)", "xmin=6", "negative area")
xml_case("box outside image", voc_xml(10, 10, [("dog", 1, 1, 11, 5, "")]), "object 0 (dog)", "xmax=11",
         "outside the 10 x 10 image")
xml_case("difficult not 0/1", voc_xml(10, 10, [("dog", 1, 1, 5, 5, "<difficult>yes</difficult>")]),
         "object 0 (dog)", "<difficult> is 'yes'")
xml_case("object without box", "<annotation><size><width>9</width><height>9</height></size>"
         "<object><name>dog</name></object></annotation>", "object 0 (dog)", "missing <bndbox>")


# ------------------------------------------------------------------------- VOC: images, labels


def jpeg_bytes(w=16, h=12) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def image_bytes(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_label_bytes(label: np.ndarray, mode="P") -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(label.astype(np.uint8), mode="L")
    (img.convert("P") if mode == "P" else img).save(buf, format="PNG")
    return buf.getvalue()


def file_case(name: str, filename: str, content: bytes | None, reader, *fragments: str):
    def build(tmp_path):
        path = tmp_path / filename
        if content is not None:
            path.write_bytes(content)
        return (lambda: reader(path)), [path, *fragments], []
    case(name, DataError)(build)


label42 = np.zeros((6, 8), np.uint8)
label42[2, 3] = 42
label42[4, 5] = 255  # void is allowed
file_case("voc png/value 42", "2007_000032.png", png_label_bytes(label42), load_label,
          "value(s) 42 (1 px)", "0..20 and 255", "row 2, column 3")
file_case("voc png/grey value 21", "a.png", png_label_bytes(np.full((3, 3), 21), mode="L"), load_label, "21 (9 px)")
file_case("voc png/RGB", "a.png", image_bytes(Image.new("RGB", (3, 3)), "PNG"), load_label, "mode 'RGB'")
file_case("voc png/truncated", "a.png", png_label_bytes(np.ones((40, 40)) * 3)[:60], load_label, "label map")
file_case("voc png/not an image", "a.png", b"hello", load_label, "unreadable label map")
file_case("voc png/missing", "a.png", None, load_label, "label map file not found")
file_case("voc jpeg/truncated", "a.jpg", (lambda b: b[:len(b) // 2])(image_bytes(Image.fromarray(
    np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)), "JPEG")), load_image,
    "corrupt or truncated image")
file_case("voc jpeg/empty file", "a.jpg", b"", load_image, "unreadable image")
file_case("voc jpeg/text", "a.jpg", b"<html>login</html>", load_image, "unreadable image")
file_case("voc jpeg/missing", "a.jpg", None, load_image, "image file not found")


@case("voc png/size differs from XML", DataError)
def _(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_label_bytes(np.zeros((6, 8))))
    return (lambda: load_label(path, expect_size=(8, 7))), [path, "8 x 6", "expected 8 x 7"], []


@case("voc jpeg/size differs from XML (box masks)", DataError)
def _(tmp_path):
    voc = VocLayout(tmp_path / "VOC2012")
    for d in (voc.jpeg_dir, voc.annotation_dir):
        d.mkdir(parents=True)
    voc.image_path("a").write_bytes(jpeg_bytes(16, 12))
    voc.annotation_path("a").write_text(voc_xml(20, 12, [("dog", 1, 1, 5, 5, "")]))
    return (lambda: write_box_masks(voc, ["a"], progress=False)), \
        [voc.image_path("a"), "16 x 12", "20 x 12", voc.annotation_path("a")], [voc.bg_mask_path("a")]


# ------------------------------------------------------------------------------- split lists


def split_case(name: str, content: bytes | None, *fragments: str, check_dir: bool = False):
    def build(tmp_path):
        path = tmp_path / "val.txt"
        if content is not None:
            path.write_bytes(content)
        jpegs = tmp_path / "JPEGImages"
        jpegs.mkdir()
        (jpegs / "a.jpg").write_bytes(b"x")
        return (lambda: read_split(path, check_dir=jpegs if check_dir else None)), [path, *fragments], []
    case(f"split/{name}", DataError)(build)


split_case("empty", b"", "split list is empty")
split_case("blank lines only", b"\n  \n\n", "split list is empty")
split_case("duplicate id", b"a\nb\na\n", "duplicate image id 'a'", "lines 1 and 3")
split_case("two ids on a line", b"a\nb c\n", "line 2", "'b c'")
split_case("id is a path", b"a\n../../etc/passwd\n", "line 2", "'../../etc/passwd'", "not a plain file name")
split_case("not UTF-8", b"a\n\xff\xfe\n", "unreadable split file")
split_case("missing file", None, "split file not found")
split_case("image missing", b"a\nb\n", "1 listed image(s) have no file", "'b'", check_dir=True)


@case("split/empty val.txt (box-fill baseline)", DataError)
def _(tmp_path):
    voc = VocLayout(tmp_path / "VOC2012")
    voc.split_dir.mkdir(parents=True)
    voc.split_path("val").write_text("\n")
    out = tmp_path / "box_fill.json"

    def call():
        result = box_fill_miou(voc.root, read_split(voc.split_path("val")))
        write_text(out, json.dumps(result))
    return call, [voc.split_path("val"), "empty"], [out]


# -------------------------------------------------------------------------- SBD and train_aug


def save_cls(path: Path, seg) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": seg, "Boundaries": np.zeros((1, 1), dtype=object)}})


def mat_case(name: str, write, *fragments: str):
    def build(tmp_path):
        path = tmp_path / "2008_000002.mat"
        write(path)
        return (lambda: read_sbd_cls(path)), [path, *fragments], []
    case(f"sbd mat/{name}", DataError)(build)


mat_case("value 42", lambda p: save_cls(p, np.array([[0, 42], [3, 3]], np.uint8)), "42 (1 px)", "0..20")
mat_case("void 255 (SBD has none)", lambda p: save_cls(p, np.array([[0, 255]], np.uint8)), "255 (1 px)")
mat_case("negative", lambda p: save_cls(p, np.array([[0, -1]], np.int16)), "-1 (1 px)")
mat_case("float classes", lambda p: save_cls(p, np.array([[0.0, 1.5]])), "dtype float64")
mat_case("not a MAT file", lambda p: p.write_bytes(b"MATLAB? no"), "not a readable MATLAB file")
mat_case("no GTcls", lambda p: scipy.io.savemat(p, {"other": np.zeros(2)}), "no variable 'GTcls'")
mat_case("3-D map", lambda p: save_cls(p, np.zeros((2, 2, 2), np.uint8)), "must be a 2-D map")
mat_case("missing", lambda p: None, "SBD class file not found")


def voc_sbd_tree(tmp_path):
    """VOC train v1, val val1; SBD train s1, val s2 (all 8 x 6)."""
    voc = VocLayout(tmp_path / "VOCdevkit" / "VOC2012")
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    for d in (voc.jpeg_dir, voc.split_dir, voc.seg_class_dir, sbd / "cls"):
        d.mkdir(parents=True)
    for i in ("v1", "val1", "s1", "s2"):
        voc.image_path(i).write_bytes(jpeg_bytes(8, 6))
    voc.split_path("train").write_text("v1\n")
    voc.split_path("val").write_text("val1\n")
    (sbd / "train.txt").write_text("s1\n")
    (sbd / "val.txt").write_text("s2\n")
    for i in ("v1", "val1"):
        save_label_png(voc.label_path(i), np.ones((6, 8), np.uint8))
    for i in ("s1", "s2"):
        save_cls(sbd / "cls" / f"{i}.mat", np.full((6, 8), 2, np.uint8))
    return voc, sbd


def train_aug_case(name: str, spoil, *fragments):
    def build(tmp_path):
        voc, sbd = voc_sbd_tree(tmp_path)
        culprit = spoil(voc, sbd)
        outputs = [voc.split_path("train_aug")]
        return (lambda: build_train_aug(voc.root, sbd, progress=False)), [culprit, *fragments], outputs
    case(f"train_aug/{name}", DataError)(build)


def _label_42(voc, sbd):
    lab = np.ones((6, 8), np.uint8)
    lab[1, 1] = 42
    save_label_png(voc.label_path("v1"), lab)
    return voc.label_path("v1")


def _empty_list(path):
    def spoil(voc, sbd):
        target = path(voc, sbd)
        target.write_text("")
        return target
    return spoil


train_aug_case("VOC label value 42", _label_42, "42 (1 px)")
train_aug_case("SBD label value 42", lambda voc, sbd: (save_cls(sbd / "cls" / "s2.mat", np.full((6, 8), 42, np.uint8)),
                                                         sbd / "cls" / "s2.mat")[1], "42 (48 px)")
train_aug_case("empty VOC val list", _empty_list(lambda voc, sbd: voc.split_path("val")), "split list is empty")
train_aug_case("empty SBD train list", _empty_list(lambda voc, sbd: sbd / "train.txt"), "split list is empty")
train_aug_case("SBD map smaller than its JPEG", lambda voc, sbd: (save_cls(sbd / "cls" / "s1.mat",
                                                                           np.zeros((5, 8), np.uint8)),
                                                                  sbd / "cls" / "s1.mat")[1], "8 x 5", "8 x 6")


# ------------------------------------------------------------------------------------ COCO


def _rle_of_box(h, w, x, y, bw, bh) -> dict:
    mask = np.zeros((h, w), np.uint8, order="F")
    mask[y:y + bh, x:x + bw] = 1
    rle = mask_utils.encode(mask)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def coco_file(tmp_path, spoil) -> tuple[Path, Path]:
    """A valid two-image instances file, then ``spoil(data)`` edits it; images on disk."""
    img_dir = tmp_path / "train2017"
    img_dir.mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 16, "height": 12} for i in (10, 20)]
    for im in images:
        (img_dir / im["file_name"]).write_bytes(jpeg_bytes(16, 12))
    annotations = [
        {"id": 1, "image_id": 10, "category_id": 18, "bbox": [1.0, 2.0, 5.0, 4.0], "area": 20.0, "iscrowd": 0,
         "segmentation": [[1, 2, 6, 2, 6, 6, 1, 6]]},
        {"id": 2, "image_id": 20, "category_id": 1, "bbox": [0, 0, 16, 12], "area": 192.0, "iscrowd": 1,
         "segmentation": {"size": [12, 16], "counts": [0, 192]}},
        {"id": 3, "image_id": 20, "category_id": 1, "bbox": [2, 2, 3, 3], "area": 9.0, "iscrowd": 0,
         "segmentation": _rle_of_box(12, 16, 2, 2, 3, 3)},
    ]
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}
    text = spoil(data)
    path = tmp_path / "annotations" / "instances_train2017.json"
    path.parent.mkdir()
    path.write_text(text if isinstance(text, str) else json.dumps(data))
    return path, img_dir


def coco_case(name: str, spoil, *fragments: str):
    def build(tmp_path):
        path, img_dir = coco_file(tmp_path, spoil)
        out = tmp_path / "coco" / "index.npz"
        call = lambda: save_coco_index(load_coco(path, img_dir, drop_grayscale=True), out)  # noqa: E731
        return call, [path, *fragments], [out]
    case(f"coco/{name}", DataError)(build)


def edit(section: str, index: int, key: str, value):
    def spoil(data):
        if value is _DELETE:
            del data[section][index][key]
        else:
            data[section][index][key] = value
    return spoil


coco_case("not JSON", lambda d: "{'images': [", "not valid JSON")
coco_case("no annotations list", lambda d: json.dumps({"images": d["images"]}), "not a COCO instances file")
coco_case("width not a number", edit("images", 1, "width", "640px"), "image 20", "'width'", "'640px'")
coco_case("height zero", edit("images", 0, "height", 0), "image 10", "'height'", "0")
coco_case("width a float", edit("images", 0, "width", 16.5), "image 10", "'width'", "16.5")
coco_case("image id a string", edit("images", 1, "id", "20"), "image entry 1", "'id'", "'20'")
coco_case("image id a bool", edit("images", 1, "id", True), "image entry 1", "'id'", "True")
coco_case("image file_name escapes", edit("images", 0, "file_name", "../../secret.jpg"), "image 10",
          "'file_name'", "'../../secret.jpg'")
coco_case("image without file_name", edit("images", 0, "file_name", _DELETE), "image 10", "no 'file_name'")
coco_case("duplicate image id", edit("images", 1, "id", 10), "image 10", "duplicate image id 10")
coco_case("category id text", edit("categories", 0, "id", "one"), "category entry 0", "'id'", "'one'")
coco_case("category name empty", edit("categories", 1, "name", ""), "category 18", "'name'")
coco_case("annotation image_id text", edit("annotations", 0, "image_id", "10"), "annotation 1", "'image_id'",
          "'10'")
coco_case("annotation id float", edit("annotations", 0, "id", 1.5), "annotation entry 0", "'id'", "1.5")
coco_case("duplicate annotation id", edit("annotations", 2, "id", 1), "annotation 1", "duplicate annotation id 1")
coco_case("unknown category", edit("annotations", 0, "category_id", 12), "annotation 1",
          "unknown category id 12", "'category_id'")
coco_case("unknown image", edit("annotations", 0, "image_id", 77), "annotation 1", "unknown image id 77")
coco_case("bbox three numbers", edit("annotations", 0, "bbox", [1, 2, 3]), "annotation 1 (image 10)",
          "'bbox'", "[1, 2, 3]")
coco_case("bbox negative width", edit("annotations", 0, "bbox", [5.0, 2.0, -3.0, 4.0]),
          "annotation 1 (image 10)", "'bbox'", "-3.0", "non-negative width")
coco_case("bbox NaN", lambda d: json.dumps(d).replace("[1.0, 2.0, 5.0, 4.0]", "[NaN, 2.0, 5.0, 4.0]"),
          "annotation 1 (image 10)", "'bbox'", "nan")
coco_case("bbox text", edit("annotations", 0, "bbox", [1, "2", 5, 4]), "annotation 1", "'bbox'", "'2'")
coco_case("iscrowd 2", edit("annotations", 0, "iscrowd", 2), "annotation 1", "'iscrowd'", "2")
coco_case("area negative", edit("annotations", 0, "area", -4.0), "annotation 1", "'area'", "-4.0")
coco_case("no segmentation", edit("annotations", 0, "segmentation", _DELETE), "annotation 1",
          "no 'segmentation'")
coco_case("segmentation empty", edit("annotations", 0, "segmentation", []), "annotation 1", "'segmentation'",
          "[]")
coco_case("segmentation a string", edit("annotations", 0, "segmentation", "mask.png"), "annotation 1",
          "'segmentation'", "'mask.png'")
coco_case("polygon odd length", edit("annotations", 0, "segmentation", [[1, 2, 6, 2, 6, 6, 1]]),
          "annotation 1 (image 10)", "'segmentation[0]'", "even number of coordinates", "got 7")
coco_case("polygon text", edit("annotations", 0, "segmentation", [[1, 2, 6, 2, "6", 6]]),
          "annotation 1", "'segmentation[0]'", "'6'")
coco_case("polygon infinite", lambda d: json.dumps(d).replace("[[1, 2, 6, 2, 6, 6, 1, 6]]",
                                                              "[[1, 2, 6, 2, 6, Infinity, 1, 6]]"),
          "annotation 1", "'segmentation[0]'", "inf")
coco_case("polygon coordinate 10**400", lambda d: json.dumps(d).replace("[[1, 2, 6, 2, 6, 6, 1, 6]]",
                                                                       "[[1, 2, 6, 2, 6, 1" + "0" * 400 + ", 1, 6]]"),
          "annotation 1", "'segmentation[0]'", "finite coordinates")
coco_case("bbox 10**400",
          lambda d: json.dumps(d).replace("[1.0, 2.0, 5.0, 4.0]", "[1.0, 2.0, 5.0, 4" + "0" * 400 + "]"),
          "annotation 1", "'bbox'")
coco_case("RLE size wrong", edit("annotations", 1, "segmentation", {"size": [16, 12], "counts": [0, 192]}),
          "annotation 2 (image 20)", "'segmentation.size'", "[16, 12]", "[12, 16]")
coco_case("RLE runs short", edit("annotations", 1, "segmentation", {"size": [12, 16], "counts": [0, 100]}),
          "annotation 2 (image 20)", "cover 100 pixels", "has 192")
coco_case("RLE negative run", edit("annotations", 1, "segmentation", {"size": [12, 16], "counts": [200, -8]}),
          "annotation 2", "'segmentation.counts'", "-8")
coco_case("RLE counts a number", edit("annotations", 1, "segmentation", {"size": [12, 16], "counts": 192}),
          "annotation 2", "'segmentation.counts'", "192")
coco_case("RLE string garbage", edit("annotations", 2, "segmentation", {"size": [12, 16], "counts": "0 0~"}),
          "annotation 3 (image 20)", "'segmentation.counts'", "not an RLE digit")
coco_case("RLE without counts", edit("annotations", 2, "segmentation", {"size": [12, 16]}), "annotation 3",
          "no 'counts'")


# -------------------------------------------------------------------------------- archives


def tar_gz(members: dict[str, bytes], *, link: tuple[str, str] | None = None) -> bytes:
    """Deterministic bytes (gzip mtime 0), so a test can know an archive's MD5 in advance."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tf.addfile(info)
    return buf.getvalue()


def archive_case(name: str, filename: str, content: bytes, error, *fragments: str, md5: str | None = None):
    def build(tmp_path):
        src = tmp_path / "mirror" / filename
        src.parent.mkdir()
        src.write_bytes(content)
        spec = {"url": str(src), "md5": md5 or hashlib.md5(content).hexdigest()}
        data = tmp_path / "data"
        call = lambda: fetch_and_extract(spec, data / "downloads", data, progress=False)  # noqa: E731
        return call, [filename, *fragments], [data / "VOCdevkit", tmp_path / "escaped.txt"]
    case(f"archive/{name}", error)(build)


archive_case("member with ..", "VOCtrainval.tar.gz", tar_gz({"VOCdevkit/a": b"1", "../escaped.txt": b"x"}),
             UnsafeArchiveError, "'../escaped.txt'")
archive_case("absolute member", "voc.zip", zip_bytes({"/tmp/escaped.txt": b"x"}), UnsafeArchiveError,
             "'/tmp/escaped.txt'", "absolute path")
archive_case("symlink out", "voc.tar.gz", tar_gz({"VOCdevkit/a": b"1"}, link=("VOCdevkit/out", "../../x")),
             UnsafeArchiveError, "'VOCdevkit/out'", "outside the extraction folder")
archive_case("truncated", "voc.tar.gz", tar_gz({"VOCdevkit/a": os.urandom(5000)})[:-1500], DataError,
             "corrupt or truncated archive")
archive_case("not an archive", "voc.bin", b"<html>please log in</html>", DataError,
             "not a .tar, .tar.gz/.tgz or .zip archive")
archive_case("no files", "voc.tar.gz", tar_gz({}), DataError, "archive holds no files")
archive_case("MD5 mismatch", "voc.tar.gz", tar_gz({"VOCdevkit/a": b"1"}), ChecksumError, "MD5 mismatch",
             "0" * 32, md5="0" * 32)


@case("archive/local file missing", DataError)
def _(tmp_path):
    spec = {"url": str(tmp_path / "nowhere" / "voc.tar"), "md5": "0" * 32}
    call = lambda: fetch_and_extract(spec, tmp_path / "downloads", tmp_path / "data", progress=False)  # noqa: E731
    return call, [tmp_path / "nowhere" / "voc.tar", "file not found"], [tmp_path / "downloads" / "voc.tar"]


# ------------------------------------------------------------------------------------ HTTP


class _Handler(BaseHTTPRequestHandler):
    """/ok: a small tar.gz; /html: a login page with status 200; /short: a body cut short;
    /<code>: that HTTP status."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.strip("/").split("/")[0]
        if name.isdigit():
            self.send_error(int(name))
            return
        body = {"ok": self.server.archive, "html": b"<html>please log in</html>", "short": b"x" * 1000}[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (500 if name == "short" else 0)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture(scope="module")
def http_server():
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.archive = tar_gz({"VOCdevkit/a": b"1"})
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


HTTP_CASES = {
    "404": ("/404/VOCtrainval.tar", DataError, ["HTTP 404", "not retried"]),
    "403": ("/403/VOCtrainval.tar", DataError, ["HTTP 403"]),
    "500 after retries": ("/500/VOCtrainval.tar", DataError, ["HTTP 500", "gave up after 1 retries"]),
    "503 after retries": ("/503/VOCtrainval.tar", DataError, ["HTTP 503"]),
    "login page instead of the archive": ("/html/VOCtrainval.tar", ChecksumError, ["MD5 mismatch"]),
    "connection closed early": ("/short/VOCtrainval.tar", DataError, ["connection closed after 1000 of 1500 bytes"]),
}


@pytest.mark.parametrize("name", sorted(HTTP_CASES))
def test_http_failure_is_refused_and_named(name, http_server, tmp_path):
    route, error, fragments = HTTP_CASES[name]
    url = http_server + route
    md5 = hashlib.md5(b"the real archive").hexdigest()
    data = tmp_path / "data"
    with pytest.raises(error) as e:
        fetch_and_extract({"url": url, "md5": md5}, data / "downloads", data, progress=False, retries=1,
                          backoff=0.01, timeout=10)
    assert type(e.value) is error
    message = str(e.value)
    for fragment in fragments:
        assert fragment in message
    assert str(data / "downloads" / "VOCtrainval.tar") in message  # names the file it was to become
    if error is DataError:
        assert url in message
    assert not (data / "downloads" / "VOCtrainval.tar").exists() and not (data / "VOCdevkit").exists()


def test_http_case_control(http_server, tmp_path):
    """The same server and call with a good URL and MD5 do succeed (the failures above are the input's)."""
    data = tmp_path / "data"
    md5 = hashlib.md5(tar_gz({"VOCdevkit/a": b"1"})).hexdigest()
    out = fetch_and_extract({"url": http_server + "/ok/VOCtrainval.tar.gz", "md5": md5}, data / "downloads", data,
                            progress=False, retries=0)
    assert out["entries"] == ["VOCdevkit"] and (data / "VOCdevkit" / "a").read_bytes() == b"1"


# ------------------------------------------------------------------------------------ the suite


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_and_named(name, tmp_path):
    build, error = CASES[name]
    call, culprits, outputs = build(tmp_path)
    with pytest.raises(error) as e:
        call()
    assert type(e.value) is error, f"{type(e.value).__name__}: {e.value}"
    message = str(e.value)
    for culprit in culprits:
        assert str(culprit) in message, f"{culprit!s} not named in: {message}"
    for out in outputs:
        assert not Path(out).exists(), f"{out} exists after a refused input"
    assert not [p for p in tmp_path.rglob("*") if is_temporary(p)]


def test_every_reader_and_config_section_has_a_case():
    groups = {name.split("/")[0] for name in CASES}
    assert groups >= {"config", "voc xml", "voc png", "voc jpeg", "split", "sbd mat", "train_aug", "coco",
                      "archive"}
    schema_sections = set(load_yaml(SCHEMA)["properties"])
    covered = {name.split("/")[1].split()[0].split(".")[0] for name in CASES if name.startswith("config/")}
    assert schema_sections <= covered, schema_sections - covered


@pytest.mark.parametrize("name", sorted(n for n in CASES if n.startswith("config/") and "file" not in n))
def test_config_case_is_refused_without_the_file_too(name, tmp_path):
    """validate_config on the dict (the call the Snakefile makes) refuses it too, naming the key."""
    build, _ = CASES[name]
    _, culprits, _ = build(tmp_path)
    try:
        raw = load_yaml(tmp_path / "user_config.yaml")
    except ConfigError:
        pytest.skip("not loadable YAML: only the file reader can see it")
    with pytest.raises(ConfigError) as e:
        validate_config(raw, SCHEMA)
    for fragment in culprits[1:]:
        assert fragment in str(e.value)


def test_missing_required_key_is_refused_by_the_library():
    raw = copy.deepcopy(demo_config())
    del raw["stage1"]["iterations"]
    with pytest.raises(ConfigError, match=r"config key 'stage1.iterations' is required but missing"):
        validate_config(raw, SCHEMA)
    with pytest.raises(ConfigError, match=r"config key 'run' is required but missing"):
        validate_config({k: v for k, v in demo_config().items() if k != "run"}, SCHEMA)


# --------------------------------------------------------------------------- skipped records


def test_coco_skips_are_logged_by_id_and_counted(tmp_path, caplog):
    def spoil(data):
        data["annotations"] += [
            {"id": 4, "image_id": 10, "category_id": 18, "bbox": [20.0, 1.0, 3.0, 3.0], "area": 9.0, "iscrowd": 0,
             "segmentation": [[20, 1, 23, 1, 23, 4]]},                      # right of the 16-wide image
            {"id": 5, "image_id": 10, "category_id": 1, "bbox": [1.0, 1.0, 4.0, 4.0], "area": 0.0, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 5]]},                                # two points: no area
        ]
    path, img_dir = coco_file(tmp_path, spoil)
    with caplog.at_level("WARNING", logger="bana_core.data.coco"):
        coco = load_coco(path, img_dir, drop_grayscale=False)
    skipped_lines = [r.getMessage() for r in caplog.records]
    assert any("annotation 4 (image 10)" in m and "empty once clipped" in m for m in skipped_lines)
    assert any("annotation 5 (image 10)" in m and "fewer than three points" in m for m in skipped_lines)
    s = coco.summary
    assert (s["n_degenerate_boxes"], s["n_short_polygons"], s["n_crowd_annotations"]) == (1, 1, 1)
    assert s["skipped_annotation_ids"] == {"degenerate_boxes": [4], "short_polygons": [5]}
    np.testing.assert_array_equal(coco.annotation_ids(10), [1])
    np.testing.assert_array_equal(coco.annotation_ids(20), [3])


# ------------------------------------------------------------------------------- killed writes

_KILLED_WRITER = """
import os, signal, sys
from bana_core.io import atomic_dir, atomic_path
kind, target = sys.argv[1], sys.argv[2]
with (atomic_path if kind == "file" else atomic_dir)(target) as tmp:
    if kind == "file":
        tmp.write_text("half of it")
    else:
        (tmp / "part.png").write_text("half of it")
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_killed_write_leaves_no_output_and_its_temporary_goes_on_the_next_write(kind, tmp_path):
    target = tmp_path / "out" / ("table.csv" if kind == "file" else "shard_0")
    neighbour = tmp_path / "out" / ("table.csv.bak" if kind == "file" else "shard_0.old")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, kind, str(target)], env=env)
        assert proc.returncode == -signal.SIGKILL
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, kind, str(neighbour)], env=env)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists() and not neighbour.exists()
    # The second killed write of target replaced the first one's temporary; its own is left.
    stale = sorted(p.name for p in target.parent.iterdir())
    assert stale == sorted([temporary_path(target).name, temporary_path(neighbour).name])
    assert all(is_temporary(target.parent / n) for n in stale)
    if kind == "file":
        write_text(target, "complete\n")
        assert target.read_text() == "complete\n"
    else:
        with atomic_dir(target) as tmp:
            (tmp / "part.png").write_text("complete")
        assert (target / "part.png").read_text() == "complete"
    left = sorted(p.name for p in target.parent.iterdir())
    assert left == sorted([target.name, temporary_path(neighbour).name])  # another output's: not touched


def test_temporaries_are_never_outputs(tmp_path):
    assert is_temporary(tmp_path / ".val.txt.k2j4h5g_.part")
    assert not is_temporary(tmp_path / "val.txt") and not is_temporary(tmp_path / "VOCtrainval.tar.part")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("{")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    # A killed write of JPEGImages/b.jpg left its temporary: b is still missing, not "present".
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / ".b.jpg.abcdefgh.part").write_bytes(b"x")
    (tmp_path / "val.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="missing 'b'"):
        read_split(tmp_path / "val.txt", check_dir=tmp_path)


def test_killed_extraction_work_folder_is_removed_by_the_next(tmp_path):
    archive = tmp_path / "voc.tar.gz"
    archive.write_bytes(tar_gz({"VOCdevkit/a": b"1"}))
    target = tmp_path / "data"
    stale = tmp_path / ".data.extract.voc.tar.gz.abcd_123.part"
    (stale / "new" / "VOCdevkit").mkdir(parents=True)
    sibling = tmp_path / ".data.extract.sbd.tgz.abcd_123.part"  # SBD extracting into data/ at the same time
    (sibling / "new").mkdir(parents=True)
    assert extract(archive, target, progress=False) == ["VOCdevkit"]
    assert not stale.exists() and (target / "VOCdevkit" / "a").read_bytes() == b"1"
    assert sibling.is_dir()
