"""GPU spreading through the real workflow, without a GPU.

The allocator reads CUDA_VISIBLE_DEVICES (the devices it may hand out) and SLURM_JOB_ID; the
tests fake both in Snakemake's environment, run the two pretraining jobs side by side
(`--cores 2`), and read from each job's log which device it was given and when.
"""
from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from workflow_env import copy_workflow, snakemake

pytestmark = pytest.mark.slow

JOBS = ("vgg", "resnet")
TARGETS = [f"results/tiny/pretrain/{net}/backbone.pt" for net in JOBS]
_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) bana: GPU lease: "


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def lease_of(log: Path) -> tuple[str, datetime, datetime]:
    """(what the job was given, lease start, lease end) from a job's log."""
    text = log.read_text()
    start = re.search(_STAMP + r"(.*)$", text, re.M)
    assert start, f"no GPU lease in {log}:\n{text}"
    end = re.search(_STAMP + r"device \S+ released$", text, re.M)
    assert end, f"lease of {log} never released:\n{text}"
    return start.group(2), _time(start.group(1)), _time(end.group(1))


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("gpu_workflow"))
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["device"] = "auto"  # lease a GPU (tiny.yaml pins the CPU)
    # Long enough (a few seconds each) for the two jobs to overlap on a busy machine.
    config["pretrain"].update(iterations=30, threads=1)
    (work / "gpu.yaml").write_text(yaml.safe_dump(config))
    return work


def run_pretraining(work: Path, **fake_env: str) -> dict[str, tuple[str, datetime, datetime]]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(BANA_GPU_LOCK_DIR=str(work / "gpu-locks"), **fake_env)
    snakemake(work, *TARGETS, "--forcerun", "pretrain_backbone", configfile="gpu.yaml", env=env, cores=2)
    leases = {net: lease_of(work / "results" / "tiny" / "logs" / f"pretrain_{net}.log") for net in JOBS}
    (_, s1, e1), (_, s2, e2) = leases.values()
    assert s1 < e2 and s2 < e1, f"the two jobs did not run at the same time, nothing was tested: {leases}"
    return leases


def test_concurrent_gpu_jobs_get_different_devices(workflow):
    leases = run_pretraining(workflow, CUDA_VISIBLE_DEVICES="0,1")
    given = {net: lease[0] for net, lease in leases.items()}
    assert sorted(given.values()) == ["device 0 (CUDA_VISIBLE_DEVICES=0)", "device 1 (CUDA_VISIBLE_DEVICES=1)"]


def test_slurm_grant_is_used_as_is(workflow):
    # Two jobs that SLURM each granted device 3: no local arbitration, the grant stands.
    leases = run_pretraining(workflow, CUDA_VISIBLE_DEVICES="3", SLURM_JOB_ID="4242")
    for net, (given, _, _) in leases.items():
        assert given == "SLURM grant used as is (CUDA_VISIBLE_DEVICES=3)", net


def test_jobs_inside_a_multi_gpu_slurm_allocation_get_different_devices(workflow):
    # salloc --gpus=2, then snakemake --resources gpu=2 inside it: the two concurrent jobs share the
    # allocation's grant and lease among its devices, one each (locks under slurm-<job id>).
    leases = run_pretraining(workflow, CUDA_VISIBLE_DEVICES="0,1", SLURM_JOB_ID="4343")
    given = {net: lease[0] for net, lease in leases.items()}
    assert sorted(given.values()) == ["device 0 (CUDA_VISIBLE_DEVICES=0)", "device 1 (CUDA_VISIBLE_DEVICES=1)"]
    assert {p.name for p in (workflow / "gpu-locks" / "slurm-4343").iterdir()} == {"gpu0.lock", "gpu1.lock"}
