"""Shared by the end-to-end tests: a private copy of the workflow, and Snakemake run on it.

The workflow (Snakefile, rules, scripts, config, and a copy of bana_core) is copied into a
temporary folder, so tests can edit library code or configs without touching the repository;
PYTHONPATH makes the Snakefile and its scripts import that copy.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "tests" / "data" / "tiny_config.yaml"


def copy_workflow(work: Path) -> Path:
    """The workflow's files under ``work``, with the tiny config as ``tiny.yaml``."""
    for name in ("Snakefile", "rules", "workflow_scripts", "config", "report", "bana_core"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    shutil.copy2(TINY_CONFIG, work / "tiny.yaml")
    return work


def snakemake(workdir: Path, *args: str, configfile: str | None = "tiny.yaml", check: bool = True,
              env: dict | None = None, cores: int = 2, timeout: int = 900) -> subprocess.CompletedProcess:
    """``snakemake --cores N [--configfile F] args...`` in ``workdir``; raises with its output on failure
    (``timeout``: seconds, a guard against a hung run)."""
    full_env = dict(os.environ if env is None else env, PYTHONPATH=str(workdir))
    # Targets first: --configfile takes several values and would swallow them.
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", str(cores)]
    if configfile is not None:
        cmd += ["--configfile", configfile]
    proc = subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_rules(workdir: Path, *args: str, configfile: str = "tiny.yaml") -> set[str]:
    """Rules a dry run would execute (from Snakemake's 'Job stats' table)."""
    out = snakemake(workdir, "-n", *args, configfile=configfile).stdout
    if "Nothing to be done" in out:
        return set()
    stats = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rules = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", stats, re.M)}
    return rules - {"all", "total"}
