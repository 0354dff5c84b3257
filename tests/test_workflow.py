"""End to end through Snakemake on a tiny synthetic config: every table, then what reruns.

The workflow (Snakefile, rules, scripts, config, and a copy of bana_core) is copied into a
temporary folder (tests/workflow_env.py), so the rerun checks can edit library code without
touching the repository; PYTHONPATH makes the Snakefile and its scripts import that copy.
Each rerun check compares the exact set of rules a dry run would execute.
"""
from __future__ import annotations

import json
import re
import shutil
import stat
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_env import planned_rules, snakemake

pytestmark = pytest.mark.slow

TABLES = ["table3_pseudo_labels", "table4_voc_to_coco", "table5_segmentation", "table6_grid_size",
          "table7_losses", "table8_bap_vs_gap", "table9_class_agnostic", "fig3_lambda_damp", "health_checks", "claims"]

# Every rule the tiny config runs (synthetic data: no download, no voc_test).
ALL_RULES = {
    "synthesize", "build_train_aug", "box_masks", "pretrain_set", "pretrain_backbone", "train_classifier",
    "eval_classifier", "pseudo_labels_shard", "merge_pseudo_labels", "figure_pseudo_labels", "coco_index",
    "coco_pseudo_labels_shard", "coco_eval", "train_segmenter", "predict_segmenter", "crf_segmenter", "eval_segmenter",
    "archive_test", "training_curve", "table", "box_fill_baseline", "stride_reference", "health_checks", "claims",
    "fig3_heatmap", "report",
}
# A segmenter retrained, and everything downstream of it.
STAGE3 = {"train_segmenter", "predict_segmenter", "crf_segmenter", "eval_segmenter", "archive_test", "training_curve",
          "table", "health_checks", "claims", "fig3_heatmap", "report"}
TABLE_RULES = {"table", "health_checks", "claims", "fig3_heatmap", "report"}


@pytest.fixture(scope="module")
def finished_run(tiny_run) -> Path:
    return tiny_run  # tests/conftest.py: the tiny config run once per session


def edited_rules(work: Path, module: str) -> set[str]:
    """The rules a dry run plans after appending a comment to bana_core/<module>."""
    path = work / "bana_core" / module
    original = path.read_text()
    path.write_text(original + "\n# edited by the rerun test\n")
    try:
        return planned_rules(work)
    finally:
        path.write_text(original)


def rules_with_config(work: Path, edit) -> set[str]:
    """The rules a dry run plans with the tiny config edited by ``edit(config)``."""
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    edit(config)
    (work / "edited.yaml").write_text(yaml.safe_dump(config))
    return planned_rules(work, configfile="edited.yaml")


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
    health = pd.read_csv(tables / "health_checks.csv", index_col=0)
    fits = health[health.index.str.contains("fit ratio")]
    assert len(fits) == 6 and set(fits["target"]) == {0.85, 0.9}  # Table 5's six box-supervised segmenters
    assert fits.index.str.contains("/ full supervision").all()
    v1_full = health.loc["v1-ce_gt: val mIoU after CRF (%)", "value"]
    assert v1_full == t5.loc["full supervision (val)", "DeepLab-V1 (ours)"]
    assert health.loc[f"v1-nal: fit ratio (/ full supervision {v1_full:.1f})", "value"] == round(
        health.loc["v1-nal: val mIoU after CRF (%)", "value"] / v1_full, 2)
    assert 0 <= health.loc["BAP u0 > 0 on in-box background pixels (% of them)", "value"] <= 100
    for arch in ("v1", "v2"):
        ceiling = health.loc[f"ground truth at output stride 8, after the {arch} CRF: val mIoU (%)", "value"]
        assert 40 < ceiling <= 100
    reference = health.loc["ground truth at output stride 8, before CRF: val mIoU (%)", "value"]
    assert reference == round(100 * json.loads((finished_run / "results" / "tiny" / "segmenters" /
                                                "stride_reference_val.json").read_text())["miou"], 1)
    assert 40 < reference < 100
    v2_crf = health.loc["v2-ce_crf: val mIoU after CRF (%)", "value"]
    table5 = pd.read_csv(tables / "table5_segmentation.csv", index_col=0)
    assert v2_crf == table5.loc["w/ Ycrf (val)", "DeepLab-V2 (ours)"]
    claims = pd.read_csv(tables / "claims.csv", index_col=0)
    assert claims.loc["C1", ["paper", "[Re]"]].tolist() == [3.1, 3.3]  # published deltas, whatever show_paper_results
    assert claims.loc["C1", "n seeds"] == 1
    # the tiny config trains grid 2 only: C6 has no 'train grid 4' cell, so no delta and no verdict
    assert claims.loc["C6", "n seeds"] == 0 and claims.loc["C6", "verdict"] == "not resolved"
    assert set(claims["verdict"]) <= {"holds", "not resolved", "contradicted"}
    t3_ours = t3["mIoU (val) (ours)"]
    assert claims.loc["C1", "ours (mean)"] == round(t3_ours["BAP Ycrf"] - t3_ours["GAP"], 1)
    figures = finished_run / "results" / "tiny" / "figures"
    assert (figures / "pseudo_labels.png").stat().st_size > 1000
    assert (figures / "fig3_lambda_damp.png").stat().st_size > 1000


def test_outputs_are_complete(finished_run):
    run = finished_run / "results" / "tiny"
    index = run / "pseudo_labels" / "bap-g2-aug" / "gen1" / "val" / "std" / "index.json"
    ids = json.loads(index.read_text())
    val = (finished_run / "data" / "tiny" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt")
    assert sorted(ids) == sorted(val.read_text().split())
    for paths in ids.values():  # relative to the index's folder, so results/ can move
        assert not Path(paths["crf"]).is_absolute() and (index.parent / paths["crf"]).is_file()
        assert (index.parent / paths["ret"]).is_file()
    archive = run / "segmenters" / "v1-nal" / "v1-nal_comp6_test_cls.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names and all(n.startswith("results/VOC2012/Segmentation/comp6_test_cls/") for n in names)
    assert not list(run.rglob("*.part")), "no half-written file may remain"


def test_rule_logs_show_progress(finished_run):
    # Under Snakemake stderr is not a terminal: no tqdm bar, but progress lines in the rule's log.
    logs = finished_run / "results" / "tiny" / "logs"
    train_log = (logs / "train_segmenter_v1-nal.log").read_text()
    steps = re.findall(r"bana.progress: stage3 v1-nal: iteration (\d+)/4 \(\d+ %\), loss [0-9.]+, lr \S+, .*ETA",
                       train_log)
    assert steps == ["1", "2", "3", "4"], train_log
    assert "it/s]" not in train_log  # no bar
    shard_logs = [p.read_text() for p in logs.glob("pseudo_labels/*.log")]
    assert shard_logs and all(re.search(r"bana.progress: pseudo labels \d+: image (\d+)/\1 \(100 %\)", text)
                              for text in shard_logs if "image " in text)
    assert sum("image " in text for text in shard_logs) >= len(shard_logs) // 2


def test_outputs_are_readable_by_the_group(finished_run):
    # Under umask 022 every file is 0644 and every folder 0755, as a plain `touch` / `mkdir`
    # would make them: a shared cluster file system shows the results to the whole group.
    run = finished_run / "results" / "tiny"
    modes = {p.relative_to(run): stat.S_IMODE(p.stat().st_mode) for p in run.rglob("*")}
    assert len(modes) > 100
    wrong = {str(p): oct(m) for p, m in modes.items() if m != (0o755 if (run / p).is_dir() else 0o644)}
    assert not wrong, wrong


def test_nothing_reruns_on_a_finished_run(finished_run):
    assert planned_rules(finished_run) == set()


def test_editing_the_loss_reruns_stage3_and_tables_only(finished_run):
    assert edited_rules(finished_run, "losses.py") == STAGE3


def test_a_new_loss_is_one_registry_entry(finished_run, tmp_path):
    """One LOSSES entry (bana_core/loss_registry.py) is planned, trained, scored and tabled."""
    work = tmp_path / "work"
    shutil.copytree(finished_run, work, symlinks=True)
    registry = work / "bana_core" / "loss_registry.py"
    registry.write_text(registry.read_text() + '\nLOSSES["dummy"] = LossSpec("CE on Y_ret under another name", '
                        '"build_ce_ret", (_T, _IGN), table7="w/ Dummy")\n')
    # only what the new entry adds: the registry's own edit would rerun every rule that reads it
    triggers = ("--rerun-triggers", "mtime", "input")
    out = snakemake(work, "-n", *triggers).stdout
    assert "results/tiny/segmenters/v1-dummy/model.pt" in out
    assert planned_rules(work, *triggers) >= {"train_segmenter", "predict_segmenter", "crf_segmenter",
                                              "eval_segmenter", "table"}
    snakemake(work, "results/tiny/tables/table7_losses.csv", *triggers)
    assert (work / "results" / "tiny" / "segmenters" / "v1-dummy" / "model.pt").is_file()
    t7 = pd.read_csv(work / "results" / "tiny" / "tables" / "table7_losses.csv", index_col=0)
    assert list(t7.index)[-1] == "w/ Dummy" and 0 <= t7.loc["w/ Dummy", "after CRF (ours)"] <= 100


def test_editing_table_formatting_reruns_only_tables(finished_run):
    assert edited_rules(finished_run, "tables.py") == TABLE_RULES


def test_editing_the_voc_reader_reruns_every_rule_that_reads_voc(finished_run):
    # Everything: the CRF and scoring steps included, which the hand-kept lists missed, and the
    # synthesis, which writes its XMLs with data/voc.py's voc_xml, so what reads its data follows
    # (the COCO index too; pretrain_set imports the synthetic package).
    assert edited_rules(finished_run, "data/voc.py") == ALL_RULES


def test_editing_the_label_space_reruns_everything(finished_run):
    # classes.py (VOC labels, palette) is read by the dataset synthesis itself.
    assert edited_rules(finished_run, "classes.py") == ALL_RULES


def test_editing_a_stage1_key_reruns_stages_1_to_3(finished_run):
    rules = rules_with_config(finished_run, lambda c: c["stage1"].update(lr=0.02))
    assert rules == ALL_RULES - {"synthesize", "build_train_aug", "box_masks", "pretrain_set", "pretrain_backbone",
                                 "coco_index",
                                 "box_fill_baseline", "stride_reference"}


def test_editing_a_stage3_training_key_reruns_stage3_only(finished_run):
    assert rules_with_config(finished_run, lambda c: c["stage3"].update(lr_power=0.8)) == STAGE3
    # the temperature also scales the stride reference's scores before its CRF
    assert rules_with_config(finished_run, lambda c: c["stage3"].update(temperature=10)) == STAGE3 | {
        "stride_reference"}


def test_editing_a_stage3_evaluation_key_reruns_prediction_on(finished_run):
    rules = rules_with_config(finished_run, lambda c: c["stage3"].update(eval_flip=False))
    assert rules == STAGE3 - {"train_segmenter", "training_curve"}


def test_editing_a_crf_parameter_reruns_the_crf_step_on(finished_run):
    rules = rules_with_config(finished_run, lambda c: c["stage3"]["arch"]["v2"].update(crf=[4, 60, 3, 3, 1]))
    assert rules == {"crf_segmenter", "eval_segmenter", "archive_test", "table", "health_checks", "claims",
                     "report", "stride_reference"}  # v2-nal's test archive; the reference's v2 CRF; the
    # fit ratios and claims read the tables
