"""A user's own boxes to masks (dataset.source: local): the dataset checks, the config, and the
workflow end to end in both layouts, from the user's point of view."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from own_data_maker import CATEGORY_IDS, CLASSES, synthetic_source, write_coco_layout, write_voc_layout
from PIL import Image
from pycocotools import mask as mask_utils
from workflow_env import ROOT, copy_workflow, planned_rules, snakemake

from bana_core.config import validate_config
from bana_core.data.own import OwnLayout, read_own_dataset, write_own_dataset
from bana_core.data.voc import load_label
from bana_core.errors import ConfigError, DataError
from bana_core.train import load_weights

SCHEMA = ROOT / "config" / "schema.yaml"
SHIPPED_VGG = ROOT / "bana_core" / "pretrained" / "demo" / "vgg.pt"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return synthetic_source(tmp_path_factory.mktemp("synthetic") / "world", n_images=12)


@pytest.fixture
def voc_data(source, tmp_path) -> Path:
    return write_voc_layout(source, tmp_path / "mine")


@pytest.fixture
def coco_data(source, tmp_path) -> tuple[Path, Path]:
    return write_coco_layout(source, tmp_path / "mine")


def voc_local(root: Path, **kw) -> dict:
    return {"layout": "voc", "root": str(root), "split": "trainval", "classes": None, "masks": True, **kw}


def coco_local(ann: Path, images: Path, **kw) -> dict:
    return {"layout": "coco", "annotations": str(ann), "images": str(images), "classes": None, "masks": True, **kw}


# --- reading and writing the layout ------------------------------------------------------------------------

def test_voc_layout_reads_own_classes_and_writes_the_internal_layout(voc_data, tmp_path):
    ds = read_own_dataset(voc_local(voc_data))
    used = sorted({CLASSES[b[4] - 1] for img in ds.images for b in img.boxes.tolist()})
    assert ds.classes == tuple(used)  # every name the XMLs use, sorted
    summary = write_own_dataset(ds, tmp_path / "own", progress=False)
    own = OwnLayout.open(tmp_path / "own")
    assert own.image_ids == [i.id for i in ds.images] and summary["n_images"] == 12
    assert own.class_names == ("background", *used)
    instances = json.loads((tmp_path / "own" / "instances.json").read_text())
    assert len(instances["annotations"]) == summary["n_boxes"] == sum(len(i.boxes) for i in ds.images)
    assert load_label(own.voc.label_path(ds.images[0].id)).shape == (ds.images[0].height, ds.images[0].width)


def test_voc_classes_from_the_config_keep_their_order(voc_data):
    order = tuple(reversed(CLASSES))
    ds = read_own_dataset(voc_local(voc_data, classes=list(order)))
    assert ds.classes == order
    img = ds.images[0]
    xml = (voc_data / "Annotations" / f"{img.id}.xml").read_text()
    first = xml.split("<name>")[1].split("</name>")[0]
    assert order[img.boxes[0, 4] - 1] == first


def test_coco_layout_keeps_category_ids_and_image_ids(coco_data, tmp_path):
    ds = read_own_dataset(coco_local(*coco_data))
    assert ds.classes == CLASSES and ds.category_ids == CATEGORY_IDS
    assert ds.images[0].coco_id == 1000
    write_own_dataset(ds, tmp_path / "own", progress=False)
    instances = json.loads((tmp_path / "own" / "instances.json").read_text())
    assert {a["category_id"] for a in instances["annotations"]} <= set(CATEGORY_IDS)
    assert all("segmentation" in a and a["area"] > 0 for a in instances["annotations"])


def _edit_xml(root: Path, image_id: str, old: str, new: str) -> Path:
    path = root / "Annotations" / f"{image_id}.xml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def _first_id(root: Path) -> str:
    return (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]


def _corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])  # a truncated JPEG


VOC_CASES = {
    "box outside the image": (lambda root, i: _edit_xml(root, i, "<xmax>", "<xmax>9"), "lies outside"),
    "empty box": (lambda root, i: _edit_xml(root, i, "<xmin>", "<xmin>9"), "zero or negative area"),
    "unknown class": (lambda root, i: _edit_xml(root, i, "<name>gadget-", "<name>widget-"), "unknown class"),
    "image that does not open": (lambda root, i: _corrupt(root / "JPEGImages" / f"{i}.jpg"), "image"),
    "image listed twice": (lambda root, i: (root / "ImageSets/Main/trainval.txt").open("a").write(f"{i}\n"),
                           "duplicate image id"),
    "split names a missing image": (lambda root, i: (root / "JPEGImages" / f"{i}.jpg").unlink(), "have no file"),
}


@pytest.mark.parametrize("case", VOC_CASES)
def test_a_malformed_voc_dataset_is_refused_naming_the_culprit(case, voc_data, tmp_path):
    break_it, fragment = VOC_CASES[case]
    image_id = _first_id(voc_data)
    break_it(voc_data, image_id)
    # with the classes listed, a box of another class is unknown
    local = voc_local(voc_data, classes=list(CLASSES))
    with pytest.raises(DataError) as err:
        write_own_dataset(read_own_dataset(local), tmp_path / "own", progress=False)
    message = str(err.value)
    assert "\n" not in message and fragment in message and image_id in message
    assert not (tmp_path / "own").exists()  # nothing partial


def _edit_json(ann: Path, edit) -> None:
    data = json.loads(ann.read_text())
    edit(data)
    ann.write_text(json.dumps(data))


COCO_CASES = {
    "box outside the image": (lambda d: d["annotations"][0].update(bbox=[80, 10, 30, 10]), "inside its"),
    "empty box": (lambda d: d["annotations"][0].update(bbox=[10, 10, 0, 5]), "positive width"),
    "unknown class": (lambda d: d["annotations"][0].update(category_id=2), "unknown category id 2"),
    "image listed twice": (lambda d: d["images"].append(dict(d["images"][0], id=5)), "are both named"),
}


@pytest.mark.parametrize("case", COCO_CASES)
def test_a_malformed_coco_dataset_is_refused_naming_the_culprit(case, coco_data, tmp_path):
    ann, images = coco_data
    edit, fragment = COCO_CASES[case]
    _edit_json(ann, edit)
    with pytest.raises(DataError) as err:
        write_own_dataset(read_own_dataset(coco_local(ann, images)), tmp_path / "own", progress=False)
    message = str(err.value)
    assert "\n" not in message and fragment in message and str(ann) in message
    assert not (tmp_path / "own").exists()


def test_a_coco_image_that_does_not_open_is_named(coco_data, tmp_path):
    ann, images = coco_data
    first = json.loads(ann.read_text())["images"][0]["file_name"]
    _corrupt(images / first)
    with pytest.raises(DataError, match="image") as err:
        write_own_dataset(read_own_dataset(coco_local(ann, images)), tmp_path / "own", progress=False)
    assert str(images / first) in str(err.value)
    assert not (tmp_path / "own").exists()


# --- config --------------------------------------------------------------------------------------------------

def template(**local) -> dict:
    config = yaml.safe_load((ROOT / "config" / "own_data.yaml").read_text())
    config["dataset"]["local"] = local or config["dataset"]["local"]
    return config


def test_the_template_validates_with_stage3_off():
    config = validate_config(template(), SCHEMA)
    assert config["dataset"]["source"] == "local" and config["stage3"]["segmenter"] is None
    assert config["stage2"]["masks"] == "crf"
    # the paper's segmenter settings, ready to switch on
    paper = yaml.safe_load((ROOT / "config" / "voc2012.yaml").read_text())["stage3"]
    assert config["stage3"]["arch"]["v1"] == paper["arch"]["v1"] and config["stage3"]["lam"] == paper["lam"]


def with_segmenter(name: str, **arch_v1):
    def edit(config):
        config["stage3"]["segmenter"] = name
        config["stage3"]["arch"]["v1"].update(arch_v1)
    return edit


@pytest.mark.parametrize("edit, key", [
    (with_segmenter("v3-nal"), "stage3.segmenter"),
    (with_segmenter("v1-dice"), "stage3.segmenter"),
    (with_segmenter("v1-nal-lam0.5-damp3"), "stage3.segmenter"),
    (with_segmenter("v1-ce_gt"), "stage3.segmenter"),
    (with_segmenter("v1-nal", pretrained="pretrain"), "stage3.arch.v1.pretrained"),
    (lambda c: c["dataset"]["local"].pop("root"), "dataset.local.root"),
    (lambda c: c["dataset"].update(local={"layout": "coco", "annotations": "a.json", "images": "i",
                                          "classes": ["x"]}), "dataset.local.classes"),
    (lambda c: c["stage1"]["backbone"].update(pretrained="pretrain"), "stage1.backbone.pretrained"),
    (lambda c: c.update(seeds=[0, 1]), "'seeds'"),
    (lambda c: c["stage2"].update(masks="both"), "stage2.masks"),
])
def test_a_wrong_local_config_names_the_key(edit, key):
    config = template()
    edit(config)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(config, SCHEMA)


def test_the_paper_configs_still_need_stage3_and_name_no_own_segmenter():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    del config["stage3"]
    with pytest.raises(ConfigError, match="'stage3' is required"):
        validate_config(config, SCHEMA)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["stage3"]["segmenter"] = "v1-nal"
    with pytest.raises(ConfigError, match=r"stage3\.segmenter' is for a user's own data"):
        validate_config(config, SCHEMA)


def test_the_template_without_a_stage3_block_validates():
    config = template()
    del config["stage3"]
    assert "stage3" not in validate_config(config, SCHEMA)


# --- end to end, as a user runs it ----------------------------------------------------------------------------

def user_config(work: Path, local: dict, run: str, segmenter: str | None = None) -> str:
    """The template as a user would fill it in, at a test's size (the package's demo backbone)."""
    config = template(**local)
    config["stage3"]["segmenter"] = segmenter
    config["stage3"]["arch"]["v1"].update(width=0.125, batch_norm=True, fc6_dilation=4, dropout=0.0,
                                          pretrained=str(SHIPPED_VGG), lr=0.01, batch_size=4, iterations=30)
    config["stage3"].update(crop_size=65, warmup=5, classifier_lr_mult=1, checkpoint_every=100,
                            augment={"jitter": 0.1}, eval_scales=[1.0], eval_flip=False)
    config.update(run=run, device="cpu", gpus_per_job=0, train_threads=1)
    config["dataset"]["name"] = run
    config["stage1"].update(backbone={"width": 0.125, "batch_norm": True, "pretrained": str(SHIPPED_VGG)},
                            crop_size=64, batch_size=8, iterations=60, lr=0.01, lr_steps=[40], checkpoint_every=30,
                            augment={"jitter": 0.1})
    config["stage2"].update(n_shards=2, figure_images=2)
    (work / f"{run}.yaml").write_text(yaml.safe_dump(config))
    return f"{run}.yaml"


def masks_and_results_agree(masks: Path, images: dict[int, str]) -> None:
    """Every image has a mask PNG, and each class's RLE masks decode to exactly its PNG pixels."""
    results = json.loads((masks / "coco_results.json").read_text())
    instances = json.loads((masks / "instances.json").read_text())
    category_label = {c["id"]: k + 1 for k, c in enumerate(instances["categories"])}
    assert sorted(p.stem for p in (masks / "png").glob("*.png")) == sorted(images.values())
    assert len(results) == len(instances["annotations"])  # one result per box
    for coco_id, image_id in images.items():
        png = np.array(Image.open(masks / "png" / f"{image_id}.png"))
        mine = [r for r in results if r["image_id"] == coco_id]
        assert mine and all(r["bbox"][2] > 0 and "score" in r for r in mine)
        decoded = np.zeros_like(png)
        for r in mine:
            m = mask_utils.decode({"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()})
            assert not (decoded[m > 0]).any()  # a pixel belongs to one box
            decoded[m > 0] = category_label[r["category_id"]]
        assert (decoded == png).all(), image_id


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["voc", "coco"])
def test_own_boxes_to_masks_end_to_end(layout, source, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    copy_workflow(work)
    if layout == "voc":
        root = write_voc_layout(source, tmp_path / "mine")
        local = voc_local(root)
        ids = (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()
        images = {k + 1: i for k, i in enumerate(ids)}
    else:
        ann, image_dir = write_coco_layout(source, tmp_path / "mine")
        local = coco_local(ann, image_dir)
        images = {im["id"]: Path(im["file_name"]).stem for im in json.loads(ann.read_text())["images"]}
    # the VOC layout also trains the optional segmenter (stage3.segmenter) on both pseudo labels
    segmenter = "v1-nal" if layout == "voc" else None
    configfile = user_config(work, local, f"own_{layout}", segmenter=segmenter)
    run = work / "results" / f"own_{layout}"

    stage3_rules = {"own_train_segmenter", "own_segmenter_shard", "own_segmenter_masks"} if segmenter else set()
    assert planned_rules(work, configfile=configfile) == {
        "own_dataset", "own_train_classifier", "own_masks_shard", "own_masks", "own_scores", "own_overlay",
        *stage3_rules}
    snakemake(work, configfile=configfile)

    masks_and_results_agree(run / "masks", images)
    if segmenter:
        masks_and_results_agree(run / "segmenter_masks", images)
        _, meta = load_weights(run / "segmenter" / "model.pt")
        assert meta["loss"] == "nal" and meta["num_classes"] == 1 + len(CLASSES)
        assert meta["n_train_images"] == len(images)
    labels = (run / "masks" / "labels.txt").read_text().splitlines()
    assert labels[0] == "0 background" and {line.split(" ", 1)[1] for line in labels[1:]} <= set(CLASSES)
    assert Image.open(run / "figures" / "masks.png").size[0] > 100
    scores = pd.read_csv(run / "tables" / "own_masks.csv", index_col=0)
    metric = "mIoU" if layout == "voc" else "AP"
    assert scores.loc["BANA Y_crf", metric] > scores.loc["box fill", metric]  # the masks beat filling the boxes
    if segmenter:  # scored beside them (how well it does at this size is measured, not asserted)
        assert list(scores.index) == ["BANA Y_crf", segmenter, "box fill"]
        assert 0 <= scores.loc[segmenter, metric] <= 100
    assert planned_rules(work, configfile=configfile) == set()  # a second run plans nothing
    if layout == "voc":  # an edited box rebuilds the layout and what follows from it
        xml = root / "Annotations" / f"{ids[0]}.xml"
        xml.write_text(xml.read_text().replace("<pose>", "<pose>edited "))
        assert "own_dataset" in planned_rules(work, configfile=configfile)


@pytest.mark.slow
def test_without_ground_truth_nothing_scores_and_bad_data_fails_in_one_line(source, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    copy_workflow(work)
    root = write_voc_layout(source, tmp_path / "mine")
    shutil.rmtree(root / "SegmentationClass")
    configfile = user_config(work, voc_local(root, masks=False), "unscored")
    assert "own_scores" not in planned_rules(work, configfile=configfile)

    image_id = _first_id(root)
    xml = _edit_xml(root, image_id, "<xmax>", "<xmax>9")
    proc = snakemake(work, configfile=configfile, check=False)
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "lies outside" in line]
    assert errors and str(xml) in errors[0]
    assert "Traceback" not in (work / "data" / "logs" / "unscored" / "own_dataset.log").read_text()
    assert not (work / "data" / "unscored" / "own").exists()


def test_a_segmenter_mask_stays_inside_the_boxes_of_its_class():
    from bana_core.own_segmenter import keep_inside_boxes

    label = np.zeros((6, 8), dtype=np.uint8)
    label[1:5, 1:7] = 2          # class 2 spills over its box
    label[0, 0] = 1              # class 1 with no box of its own
    label[5, 7] = 2              # class 2 outside every box
    boxes = np.array([[2, 1, 6, 5, 2], [0, 0, 2, 2, 3]])  # a class-2 box, a class-3 box
    kept = keep_inside_boxes(label, boxes)
    expected = np.zeros_like(label)
    expected[1:5, 2:6] = 2
    assert (kept == expected).all() and kept.dtype == np.uint8
