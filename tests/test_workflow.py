"""End to end through Snakemake on a tiny synthetic config: every table, then what reruns.

The workflow (Snakefile, rules, scripts, config, and a copy of bana_core) is copied into a
temporary folder, so the rerun checks can edit library code without touching the repository;
PYTHONPATH makes the Snakefile and its scripts import that copy.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TABLES = ["table3_pseudo_labels", "table4_voc_to_coco", "table5_segmentation", "table6_grid_size",
          "table7_losses", "table8_bap_vs_gap", "table9_class_agnostic", "fig3_lambda_damp", "stage1_checks", "claims"]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(workdir))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tiny.yaml", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_rules(workdir: Path, *args: str) -> set[str]:
    """Rules a dry run would execute (from Snakemake's 'Job stats' table)."""
    out = snakemake(workdir, "-n", *args).stdout
    if "Nothing to be done" in out:
        return set()
    stats = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rules = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", stats, re.M)}
    return rules - {"all", "total"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("workflow")
    for name in ("Snakefile", "rules", "workflow_scripts", "config", "report", "envs", "bana_core"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    shutil.copy2(ROOT / "tests" / "data" / "tiny_config.yaml", work / "tiny.yaml")
    snakemake(work)
    return work


def test_every_table_is_built(finished_run):
    tables = finished_run / "results" / "tiny" / "tables"
    for name in TABLES:
        df = pd.read_csv(tables / f"{name}.csv", index_col=0)
        assert len(df) > 0, name
        assert (tables / f"{name}.md").read_text().strip(), name
    t3 = pd.read_csv(tables / "table3_pseudo_labels.csv", index_col=0)
    assert list(t3.index) == ["GAP", "BAP Ycrf w/o u0", "BAP Ycrf", "BAP Yret", "BAP Ycrf & Yret"]
    ours = t3["mIoU (val) (ours)"]
    assert ((ours >= 0) & (ours <= 100)).all()
    assert "mIoU (val) (report)" in t3.columns  # show_paper_results: true
    t5 = pd.read_csv(tables / "table5_segmentation.csv", index_col=0)
    assert t5.loc["w/ NAL (test)", "DeepLab-V1 (ours)"] != "submit"  # synthetic test has ground truth
    claims = pd.read_csv(tables / "claims.csv", index_col=0)
    assert claims.loc["C1", ["paper", "[Re]"]].tolist() == [3.1, 3.3]  # published deltas, whatever show_paper_results
    assert (claims["n seeds"] == 1).all()
    assert set(claims["verdict"]) <= {"holds", "not resolved", "contradicted"}
    t3_ours = t3["mIoU (val) (ours)"]
    assert claims.loc["C1", "ours (mean)"] == round(t3_ours["BAP Ycrf"] - t3_ours["GAP"], 1)
    figures = finished_run / "results" / "tiny" / "figures"
    assert (figures / "pseudo_labels.png").stat().st_size > 1000
    assert (figures / "fig3_lambda_damp.png").stat().st_size > 1000


def test_outputs_are_complete(finished_run):
    run = finished_run / "results" / "tiny"
    index = run / "pseudo_labels" / "bap-g2-aug" / "gen1" / "val" / "std" / "index.json"
    import json

    ids = json.loads(index.read_text())
    val = (finished_run / "data" / "tiny" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt")
    assert sorted(ids) == sorted(val.read_text().split())
    for paths in ids.values():  # relative to the index's folder, so results/ can move
        assert not Path(paths["crf"]).is_absolute() and (index.parent / paths["crf"]).is_file()
        assert (index.parent / paths["ret"]).is_file()
    archive = run / "segmenters" / "v1-nal" / "v1-nal_comp6_test_cls.tar.gz"
    import tarfile

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names and all(n.startswith("results/VOC2012/Segmentation/comp6_test_cls/") for n in names)
    assert not list(run.rglob("*.part")), "no half-written file may remain"


def test_nothing_reruns_on_a_finished_run(finished_run):
    assert planned_rules(finished_run) == set()


def test_editing_the_loss_reruns_stage3_and_tables_only(finished_run):
    losses = finished_run / "bana_core" / "losses.py"
    original = losses.read_text()
    losses.write_text(original + "\n# edited by the rerun test\n")
    try:
        rules = planned_rules(finished_run)
    finally:
        losses.write_text(original)
    assert "train_segmenter" in rules and "table" in rules
    assert not rules & {"train_classifier", "pseudo_labels_shard", "merge_pseudo_labels", "synthesize"}


def test_editing_a_stage1_key_reruns_stages_1_to_3(finished_run):
    import yaml

    config = yaml.safe_load((finished_run / "tiny.yaml").read_text())
    config["stage1"]["lr"] = 0.02
    (finished_run / "tiny_lr.yaml").write_text(yaml.safe_dump(config))
    rules = planned_rules(finished_run, "--configfile", "tiny_lr.yaml")
    assert {"train_classifier", "pseudo_labels_shard", "train_segmenter", "table"} <= rules
    assert not rules & {"synthesize", "build_train_aug", "box_masks", "pretrain_backbone"}


def test_editing_table_formatting_reruns_only_tables(finished_run):
    tables = finished_run / "bana_core" / "tables.py"
    original = tables.read_text()
    tables.write_text(original + "\n# edited by the rerun test\n")
    try:
        rules = planned_rules(finished_run)
    finally:
        tables.write_text(original)
    assert "table" in rules
    assert rules <= {"table", "stage1_checks", "fig3_heatmap", "report"}
