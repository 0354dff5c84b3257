"""The paper's configuration at the paper's shapes, end to end, through the real download path.

config/voc2012.yaml with tests/data/paper_shapes.yaml on top (iterations, batch sizes, shards and
grids at their minimum, no ImageNet weights, the archive URLs on 127.0.0.1): full-width VGG16 and
ResNet-101 on 321 crops, dilation 12, ASPP 6/12/18/24, around 500 x 375 images. A handful of
synthetic images is packed into the four public archives (same file names, same inner layouts),
served on 127.0.0.1 and fetched by the `download` rule; Snakemake then runs the whole DAG to the
report on 2 cores.
"""
from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from archive_server import md5, start_server, tar_bytes, zip_bytes
from workflow_env import ROOT, copy_workflow, snakemake

from bana_core import tables
from bana_core.config import load_yaml, validate_config
from bana_core.data.synthetic import synthesize
from bana_core.experiments import Experiments

OVERLAY = ROOT / "tests" / "data" / "paper_shapes.yaml"
# The handful: VOC train / val, SBD-only and COCO images (the paper: 1,464 / 1,449 / 9,118 / 117,266).
HANDFUL = {"n_train": 4, "n_val": 2, "n_test": 0, "n_sbd_only": 2, "n_coco": 4}
ARCHIVES = {"voc_trainval": "VOCtrainval_11-May-2012.tar", "sbd": "benchmark.tgz",
            "coco_train": "train2017.zip", "coco_annotations": "annotations_trainval2017.zip"}


def deep_merge(base: dict, overlay: dict) -> dict:
    """``base`` with ``overlay``'s keys put in, mappings merged key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def leaf_paths(tree: dict, prefix: tuple = ()) -> list[tuple]:
    return [p for k, v in tree.items()
            for p in (leaf_paths(v, (*prefix, k)) if isinstance(v, dict) else [(*prefix, k)])]


def pack_archives(root: Path) -> dict[str, bytes]:
    """The files ``synthesize`` wrote under ``root``, packed as the four public archives are."""
    def files(folder: Path, arcroot: str, skip=()) -> dict[str, bytes]:
        return {f"{arcroot}/{p.relative_to(folder).as_posix()}": p.read_bytes()
                for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}

    # VOCtrainval has no test list (the test images come in their own archive, behind a login).
    voc = files(root / "VOCdevkit", "VOCdevkit", skip={"test.txt"})
    coco_ann = root / "coco" / "annotations"
    train_json = json.loads((coco_ann / "instances_train2017.json").read_text())
    val_json = {**train_json, "images": [], "annotations": []}  # the zip holds both; val is never read
    return {
        "voc_trainval": tar_bytes(voc, mode="w"),  # the real one is an uncompressed tar
        "sbd": tar_bytes(files(root / "benchmark_RELEASE", "benchmark_RELEASE")),
        "coco_train": zip_bytes(files(root / "coco" / "train2017", "train2017")),
        "coco_annotations": zip_bytes({**files(coco_ann, "annotations"),
                                       "annotations/instances_val2017.json": json.dumps(val_json).encode()}),
    }


def paper_shapes_config(port: int, archives: dict[str, bytes]) -> dict:
    """config/voc2012.yaml with the overlay on top, the server's port and the archives' MD5s filled in."""
    config = deep_merge(load_yaml(ROOT / "config" / "voc2012.yaml"), load_yaml(OVERLAY))
    for name, spec in config["dataset"]["download"].items():
        spec["url"] = spec["url"].format(port=port)
        spec["md5"] = spec["md5"].format(md5=md5(archives[name]))
    return config


def test_overlay_only_changes_keys_of_the_paper_config():
    paper, overlay = load_yaml(ROOT / "config" / "voc2012.yaml"), load_yaml(OVERLAY)
    paper_leaves = set(leaf_paths(paper))
    assert set(leaf_paths(overlay)) <= paper_leaves  # adds no key the paper config lacks
    merged = deep_merge(paper, overlay)
    unchanged = paper_leaves - set(leaf_paths(overlay))
    assert all(_get(merged, p) == _get(paper, p) for p in unchanged)
    # The shapes this test exists for stay the paper's.
    s1, v1, v2 = merged["stage1"], merged["stage3"]["arch"]["v1"], merged["stage3"]["arch"]["v2"]
    shapes = (s1["backbone"]["width"], s1["crop_size"], s1["grid_size"], merged["stage3"]["crop_size"])
    assert shapes == (1.0, 321, 4, 321)
    arch = (v1["width"], v1["fc6_dilation"], v2["depth"], v2["width"], v2["aspp_rates"])
    assert arch == (1.0, 12, 101, 1.0, [6, 12, 18, 24])
    assert [spec["url"].rsplit("/", 1)[1] for spec in merged["dataset"]["download"].values()] == list(ARCHIVES.values())
    assert merged["dataset"]["source"] == "download" and merged["dataset"]["voc_test_archive"] is None


def _get(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper_shapes")
    summary = synthesize(base / "handful", image_size=(500, 375), seed=0, progress=False, **HANDFUL)
    archives = pack_archives(base / "handful")
    server = start_server()
    try:
        for name, filename in ARCHIVES.items():
            server.files[f"/{filename}"] = archives[name]
        config = paper_shapes_config(server.server_address[1], archives)
        (base / "workflow").mkdir()
        work = copy_workflow(base / "workflow")
        (work / "paper_shapes.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        env = dict(os.environ, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
        start = time.monotonic()
        # The budget is 8 minutes on 2 idle cores (CI); the timeout only guards against a hang, with room
        # for a machine shared with other runs (116 jobs took 17 minutes at a load average of 7).
        snakemake(work, configfile="paper_shapes.yaml", env=env, timeout=2400)
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    print(f"\npaper-shapes DAG, download to report.html: {elapsed:.0f} s on 2 cores")
    return {"work": work, "config": config, "summary": summary, "requests": list(server.requests),
            "elapsed": elapsed}


@pytest.mark.slow
def test_every_table_of_the_paper_config_is_written(paper_run):
    work, config = paper_run["work"], paper_run["config"]
    exp = Experiments(validate_config(copy.deepcopy(config), ROOT / "config" / "schema.yaml"))
    out = work / "results" / config["run"]
    names = [spec.name for spec in tables.tables_of(exp)] + ["health_checks", "claims"]
    assert {"table3_pseudo_labels", "table4_voc_to_coco", "table5_segmentation", "table6_grid_size",
            "table7_losses", "table8_bap_vs_gap", "table9_class_agnostic", "fig3_lambda_damp"} <= set(names)
    for name in names:
        df = pd.read_csv(out / "tables" / f"{name}.csv", index_col=0)
        assert len(df) > 0, name
        assert (out / "tables" / f"{name}.md").read_text().strip(), name
    # The rest of the default target (rules/common.smk all_targets): figures, a curve per scored segmenter.
    figures = ["pseudo_labels.png", "fig3_lambda_damp.png"]
    figures += [f"training/{m}.png" for m in tables.needed_segmenters(exp)]
    assert len(figures) == 2 + 12  # Table 5's eight (full supervision too), Table 7's three besides v1-nal,
    # Fig. 3's one cell
    for name in figures:
        assert (out / "figures" / name).stat().st_size > 0, name
    assert (out / "report.html").stat().st_size > 0
    t3 = pd.read_csv(out / "tables" / "table3_pseudo_labels.csv", index_col=0)
    ours = t3["mIoU (val) (ours)"]
    assert ((ours >= 0) & (ours <= 100)).all()
    # No test images without dataset.voc_test_archive: Table 5's test cell says what is missing.
    t5 = (out / "tables" / "table5_segmentation.md").read_text()
    assert tables.NO_TEST_IMAGES in t5
    assert not list(out.glob("segmenters/*/*_comp6_test_cls.tar.gz"))


@pytest.mark.slow
def test_the_archives_came_through_the_download_rule(paper_run):
    work, summary = paper_run["work"], paper_run["summary"]
    data = work / "data" / "voc2012"
    entries = {"voc_trainval": ["VOCdevkit"], "sbd": ["benchmark_RELEASE"], "coco_train": ["train2017"],
               "coco_annotations": ["annotations"]}
    for name, filename in ARCHIVES.items():
        manifest = json.loads((data / "manifests" / f"{name}.json").read_text())
        assert manifest["filename"] == filename and manifest["entries"] == entries[name]
        assert manifest["md5"] == paper_run["config"]["dataset"]["download"][name]["md5"]
        assert (data / "downloads" / filename).is_file()
    # One request per archive: nothing fetched twice.
    assert sorted(path for path, _ in paper_run["requests"]) == sorted(f"/{f}" for f in ARCHIVES.values())
    assert (data / "coco" / "train2017").is_dir() and (data / "coco" / "annotations").is_dir()
    train_aug = (data / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt").read_text().split()
    assert len(train_aug) == summary["counts"]["train_aug"] == paper_run["config"]["dataset"]["expected_train_aug"]


@pytest.mark.slow
def test_the_models_have_the_paper_shapes(paper_run):
    out = paper_run["work"] / "results" / paper_run["config"]["run"]
    clf = torch.load(out / "classifiers" / "bap-g4-aug" / "model.pt", map_location="cpu", weights_only=True)["model"]
    v1 = torch.load(out / "segmenters" / "v1-nal" / "model.pt", map_location="cpu", weights_only=True)["model"]
    v2 = torch.load(out / "segmenters" / "v2-nal" / "model.pt", map_location="cpu", weights_only=True)["model"]
    for state in (clf, v1):  # full-width VGG16, fc6 3 x 3 to 1024, fc7 1024
        shapes = [tuple(t.shape) for k, t in state.items() if k.endswith("weight") and t.dim() == 4]
        assert (64, 3, 3, 3) in shapes and (1024, 512, 3, 3) in shapes and (1024, 1024, 1, 1) in shapes
    # ResNet-101: 3 + 4 + 23 + 3 bottlenecks, 2048-d output.
    blocks = {k.split(".conv1")[0] for k in v2 if ".conv1.weight" in k and "layer" in k}
    assert len(blocks) == 33
    assert any(t.dim() == 4 and t.shape[1] == 2048 for t in v2.values())
