"""A two-rule workflow through snakemake-executor-plugin-slurm with the repo's SLURM profile.

Needs a running cluster, e.g. the one-node test cluster:

    sudo tests/slurm_cluster.sh install && sudo tests/slurm_cluster.sh start
    eval "$(tests/slurm_cluster.sh env)"     # sets SLURM_CONF (and PATH)
    pytest -m slurm tests/test_slurm_smoke.py
    sudo tests/slurm_cluster.sh stop

Skipped when no cluster answers. The partition is the cluster's default one, or
$BANA_SLURM_PARTITION.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"

SNAKEFILE = r"""
rule all:
    input: "out/cpu.txt", "out/gpu.txt"

rule cpu_job:
    output: "out/cpu.txt"
    shell: "echo job=${{SLURM_JOB_ID:-}} cvd=${{CUDA_VISIBLE_DEVICES:-}} > {output}"

rule gpu_job:
    output: "out/gpu.txt"
    resources: gpu=1
    shell:
        "echo job=${{SLURM_JOB_ID:-}} cvd=${{CUDA_VISIBLE_DEVICES:-}} "
        "job_gpus=${{SLURM_JOB_GPUS:-}} step_gpus=${{SLURM_STEP_GPUS:-}} > {output}"
"""


def _controller_refuses(conf: str) -> str | None:
    """Why slurmctld cannot be reached (a quick TCP probe), or None when it answers or is unknown.

    sinfo retries an absent controller for ~20 s; a refused connection says it at once.
    """
    try:
        text = Path(conf).read_text()
    except OSError as exc:
        return f"cannot read SLURM_CONF={conf}: {exc}"
    host = re.search(r"^\s*SlurmctldHost\s*=\s*([^\s(#]+)(?:\(([^)]+)\))?", text, re.M | re.I)
    port = re.search(r"^\s*SlurmctldPort\s*=\s*(\d+)", text, re.M | re.I)
    if host is None:
        return None
    addr = host.group(2) or host.group(1)
    try:
        socket.create_connection((addr, int(port.group(1)) if port else 6817), timeout=3).close()
    except OSError as exc:
        return f"slurmctld at {addr} does not answer ({exc})"
    return None


def _cluster_env() -> dict[str, str]:
    """Environment for snakemake, or skip the test when no SLURM cluster answers."""
    if shutil.which("sinfo") is None:
        pytest.skip("sinfo not on PATH: no SLURM here (tests/slurm_cluster.sh install && start)")
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        pytest.skip("SLURM_CONF unset: start a cluster (tests/slurm_cluster.sh start) and export it")
    down = _controller_refuses(conf)
    if down:
        pytest.skip(f"SLURM cluster not up: {down}")
    env = dict(os.environ)
    # The test cluster's srun wrapper: the plugin's job step drops SLURM_CONF before `srun`.
    wrapper_dir = Path(conf).parent / "bin"
    if (wrapper_dir / "srun").exists() and str(wrapper_dir) not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = f"{wrapper_dir}{os.pathsep}{env.get('PATH', '')}"
    # The job re-runs snakemake with this interpreter; keep its bin dir first too.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True, timeout=15, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer within 15 s: cluster not up")
    states = out.stdout.split()
    if out.returncode != 0 or not any(s in ("idle", "mix", "alloc") for s in states[1::2]):
        pytest.skip(f"SLURM cluster not up (sinfo: {out.stdout.strip() or out.stderr.strip()})")
    return env


def partition_override() -> list[str]:
    """Nothing: the profile runs as shipped, on the cluster's default partition. To run these tests
    on another cluster's partition, set BANA_SLURM_PARTITION."""
    name = os.environ.get("BANA_SLURM_PARTITION")
    return ["--default-resources", f"slurm_partition={name}"] if name else []


def _cancel_jobs(prefix: str, env: dict[str, str]) -> None:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True, env=env, timeout=15)
    rows = [line.split() for line in out.stdout.splitlines()]
    ids = [row[0] for row in rows if len(row) == 2 and row[1].startswith(prefix)]
    if ids:
        subprocess.run(["scancel", *ids], env=env, timeout=15, check=False)


def test_profile_uses_squeue_status_and_sets_no_partition():
    # Without an accounting database sacct cannot report job ends and the run would hang.
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"
    assert profile["retries"] == 2  # each retry asks attempt x the rule's memory and time
    # a partition named here would fail on every cluster without one of that name
    assert "slurm_partition" not in (profile.get("default-resources") or {})
    assert "set-resources" not in profile  # sizes come from the rules and the run's config


def test_two_rules_through_slurm(tmp_path):
    env = _cluster_env()
    # Only now: importing the plugin runs `scontrol show config`, slow while no cluster answers.
    pytest.importorskip("snakemake_executor_plugin_slurm")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    prefix = f"banasmoke{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable, "-m", "snakemake",
        "--profile", str(PROFILE),
        "--snakefile", str(tmp_path / "Snakefile"),
        "--directory", str(tmp_path),
        "--jobs", "2",
        *partition_override(),
        "--latency-wait", "5",
        # first status check after 2 s instead of 40 s (needs MinJobAge >= 6 s for squeue)
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-jobname-prefix", prefix,
    ]
    try:
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110)
    except subprocess.TimeoutExpired as exc:
        _cancel_jobs(prefix, env)
        pytest.fail(f"snakemake --executor slurm did not finish in 110 s:\n{exc.stderr}")
    assert run.returncode == 0, run.stderr[-4000:]

    cpu = dict(kv.split("=", 1) for kv in (tmp_path / "out/cpu.txt").read_text().split())
    gpu = dict(kv.split("=", 1) for kv in (tmp_path / "out/gpu.txt").read_text().split())
    assert cpu["job"].isdigit() and gpu["job"].isdigit()  # both ran inside SLURM jobs
    assert cpu["job"] != gpu["job"]
    assert cpu["cvd"] == ""  # no GPU asked, none granted
    granted = gpu["cvd"] or gpu["job_gpus"] or gpu["step_gpus"]
    assert granted != "" and all(x.isdigit() for x in granted.split(",")), gpu
