"""The tiny workflow through a real SLURM cluster with profiles/slurm (marked `slurm`).

.ci/run starts the one-node test cluster (tests/slurm_cluster.sh) before running this; without
a cluster it is skipped with the reason.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from test_slurm_smoke import PROFILE, _cancel_jobs, _cluster_env, partition_override
from test_workflow import TABLES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GROUPS = {
    "data": ("synthesize", "build_train_aug", "box_masks"),
    "classifier": ("train_classifier", "eval_classifier"),
    "coco": ("coco_index", "coco_pseudo_labels_shard", "coco_eval"),
    "segmenter": ("train_segmenter", "predict_segmenter", "crf_segmenter"),
}
SHARDS_PER_JOB = 4


def test_tiny_workflow_through_slurm(tmp_path):
    env = _cluster_env()
    pytest.importorskip("snakemake_executor_plugin_slurm")
    for name in ("Snakefile", "rules", "workflow_scripts", "config", "report"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    # One shard per label set: sharding itself is covered by tests/test_workflow.py, and on this
    # 2-CPU node every SLURM job costs seconds of queueing and Snakemake start-up.
    tiny = yaml.safe_load((ROOT / "tests" / "data" / "tiny_config.yaml").read_text())
    tiny["stage2"]["n_shards"] = tiny["coco"]["n_shards"] = 1
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    prefix = f"banawf{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--configfile", "tiny.yaml",
        "--jobs", "4", "--latency-wait", "5",
        *partition_override(),  # the profile as shipped: each rule's own mem_mb / runtime
        "--slurm-init-seconds-before-status-checks", "2", "--slurm-jobname-prefix", prefix,
        # The test node is small: one job per CPU, and GPU jobs ask for one fake GPU.
        "--set-threads", *[f"{r}=1" for r in ("synthesize", "build_train_aug", "pretrain_backbone",
                                              "train_classifier", "train_segmenter")],
        "--config", "gpus_per_job=1",
        # Chains of dependent jobs as one SLURM job each (a group job: Snakemake runs the chain
        # inside the allocation), as a user would on a busy queue: the data preparation, each
        # classifier with its scoring, the VOC-to-COCO chain, each segmenter's train -> predict -> CRF.
        "--groups", *[f"{r}={g}" for g, rules in GROUPS.items() for r in rules],
        # Stage-2 shards packed four to a SLURM job, as profiles/slurm documents: a group job sums
        # its parallel members' resources (4 GPUs), unless a local `gpu` limit stacks them in series.
        "--group-components", f"pseudo_shards={SHARDS_PER_JOB}", "--resources", "gpu=1",
        "--set-resource-scopes", "gpu=local",
    ]
    start = time.monotonic()
    try:
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    except subprocess.TimeoutExpired as exc:
        _cancel_jobs(prefix, env)
        pytest.fail(f"the workflow did not finish through SLURM in 25 min:\n{str(exc.stderr)[-4000:]}")
    assert run.returncode == 0, run.stderr[-6000:]
    print(f"tiny workflow through SLURM: {time.monotonic() - start:.0f} s")
    tables = tmp_path / "results" / "tiny" / "tables"
    for name in TABLES:
        assert (tables / f"{name}.csv").exists(), name
    assert (tmp_path / "results" / "tiny" / "report.html").exists()
    for clf in ("bap-g2-aug", "gap-g2-noaug"):
        assert (tmp_path / "results" / "tiny" / "classifiers" / clf / "model.pt").exists()
    assert "sbatch" in run.stdout + run.stderr or "slurm" in (run.stdout + run.stderr).lower()
    # the chains really ran as group jobs
    log = (run.stdout + run.stderr).lower()
    for group in GROUPS:
        assert f"group job {group} " in log, group
    # the label sets' shards went four to a SLURM job
    n_shards = len(list((tmp_path / "results" / "tiny" / "pseudo_labels").glob("*/gen*/*/*/shards/0")))
    shard_jobs = re.findall(r"submitted with slurm jobid \d+ \(log: \S*/group_pseudo_shards_", log)
    assert n_shards > SHARDS_PER_JOB and len(shard_jobs) == math.ceil(n_shards / SHARDS_PER_JOB)
