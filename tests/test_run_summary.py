"""README's run numbers come from a finished run's files: stage totals, wall time, tables."""
from pathlib import Path

import pytest

from bana_core.run_summary import job_seconds, stage_of, summary, wall_seconds

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t1\t1\t1\t1\t0\t0\t0\t0\n")


@pytest.mark.parametrize("name, stage", [
    ("synthesize.benchmark", "dataset"), ("pretrain_set", "pretraining set"), ("pretrain_vgg", "pretraining"),
    ("train_classifier_bap-g4-aug", "stage 1: training"), ("pseudo_labels/bap-g4-aug_gen1_val_std_merge",
                                                            "stage 2: merges"),
    ("pseudo_labels/bap-g4-aug_gen1_val_std_0", "stage 2: pseudo labels"), ("coco/index", "VOC-to-COCO"),
    ("train_segmenter_v2-nal", "stage 3: training"), ("predict_v1-nal_val", "stage 3: prediction"),
    ("crf_v1-nal_val", "stage 3: CRF"), ("tables/claims", "scoring, curves, tables, report"),
    ("eval_segmenter_v1-nal_val", "scoring, curves, tables, report"),
])
def test_stage_of(name, stage):
    assert stage_of(name) == stage


def test_job_seconds_sum_per_stage(tmp_path):
    run = tmp_path / "results" / "demo"
    bench(run / "benchmarks" / "train_segmenter_v1-nal.tsv", 20.5)
    bench(run / "benchmarks" / "train_segmenter_v2-nal.tsv", 30.0)
    bench(run / "benchmarks" / "pseudo_labels" / "x_gen1_val_std_0.tsv", 7.0)
    bench(tmp_path / "logs" / "synthesize.benchmark.tsv", 3.0)
    stages = job_seconds(run, tmp_path / "logs")
    assert stages == {"dataset": (1, 3.0), "stage 2: pseudo labels": (1, 7.0), "stage 3: training": (2, 50.5)}


def test_wall_time_and_summary(tmp_path):
    log = tmp_path / "run.snakemake.log"
    log.write_text("Building DAG of jobs...\n[Sun Nov 29 01:00:51 2026]\nlocalrule x:\n"
                   "[Sun Nov 29 01:12:21 2026]\nFinished jobid: 1\n")
    assert wall_seconds(log) == 690.0
    run = tmp_path / "r"
    bench(run / "benchmarks" / "pretrain_vgg.tsv", 100.0)
    (run / "tables").mkdir()
    (run / "tables" / "claims.md").write_text("**Claims**\n\n| id | verdict |\n")
    text = summary(run, snakemake_log=log)
    assert "Wall time: **11.5 min**" in text
    assert "| pretraining | 1 | 100 |" in text and "**Claims**" in text


def test_wall_time_picks_the_run_log_in_a_folder(tmp_path):
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "2026-11-29T014446.snakemake.log").write_text("[Sun Nov 29 01:44:48 2026]\n[Sun Nov 29 02:07:53 2026]\n")
    (logs / "2026-11-29T020753.snakemake.log").write_text("Building DAG of jobs...\n")  # the report's own run
    assert wall_seconds(logs) == 23 * 60 + 5


def test_summary_adds_each_further_seed(tmp_path):
    run = tmp_path / "results" / "demo"
    bench(run / "benchmarks" / "train_segmenter_v1-nal.tsv", 20.0)
    bench(run / "seeds" / "2" / "benchmarks" / "train_segmenter_v1-nal.tsv", 30.0)
    bench(run / "seeds" / "2" / "benchmarks" / "train_classifier_bap-g4-aug.tsv", 12.0)
    bench(run / "seeds" / "1" / "benchmarks" / "train_segmenter_v1-nal.tsv", 25.0)
    bench(tmp_path / "logs" / "synthetic-seed1" / "synthesize.benchmark.tsv", 4.0)
    text = summary(run, data_logs=tmp_path / "logs" / "synthetic")
    assert "(1 jobs, 20 s in all" in text  # seed 0's own job time leaves the further seeds out
    assert "| 1 | 2 | 29 |\n| 2 | 2 | 42 |" in text
