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


def test_the_template_validates_without_stage3():
    config = validate_config(template(), SCHEMA)
    assert config["dataset"]["source"] == "local" and "stage3" not in config
    assert config["stage2"]["masks"] == "crf"


@pytest.mark.parametrize("edit, key", [
    (lambda c: c.update(stage3=yaml.safe_load((ROOT / "config" / "voc2012.yaml").read_text())["stage3"]),
     "'stage3'"),
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


def test_the_paper_configs_still_need_stage3():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    del config["stage3"]
    with pytest.raises(ConfigError, match="'stage3' is required"):
        validate_config(config, SCHEMA)


# --- end to end, as a user runs it ----------------------------------------------------------------------------

def user_config(work: Path, local: dict, run: str) -> str:
    """The template as a user would fill it in, at a test's size (the package's demo backbone)."""
    config = template(**local)
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
    configfile = user_config(work, local, f"own_{layout}")
    run = work / "results" / f"own_{layout}"

    assert planned_rules(work, configfile=configfile) == {
        "own_dataset", "own_train_classifier", "own_masks_shard", "own_masks", "own_scores", "own_overlay"}
    snakemake(work, configfile=configfile)

    masks_and_results_agree(run / "masks", images)
    labels = (run / "masks" / "labels.txt").read_text().splitlines()
    assert labels[0] == "0 background" and {line.split(" ", 1)[1] for line in labels[1:]} <= set(CLASSES)
    assert Image.open(run / "figures" / "masks.png").size[0] > 100
    scores = pd.read_csv(run / "tables" / "own_masks.csv", index_col=0)
    metric = "mIoU" if layout == "voc" else "AP"
    assert scores.loc["BANA Y_crf", metric] > scores.loc["box fill", metric]  # the masks beat filling the boxes
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
