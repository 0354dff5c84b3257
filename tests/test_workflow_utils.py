"""bana_core.workflow_utils and the rules' wiring, checked without running Snakemake."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from rules/*.smk."""
    blocks = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            blocks[name] = body.split("\n\n\n", 1)[0]
    return blocks


def test_every_gpu_rule_leases_its_device():
    # run_script leases a GPU for a rule with a `device` param: every rule asking the scheduler
    # for a GPU must pass one, or its job would land on whatever device CUDA picks first.
    blocks = rule_blocks()
    gpu_rules = {name for name, body in blocks.items() if re.search(r"^\s+gpu=", body, re.M)}
    assert {"train_classifier", "pseudo_labels_shard", "train_segmenter", "predict_segmenter"} <= gpu_rules
    for name in gpu_rules:
        assert re.search(r"^\s+device=config\[\"device\"\],$", blocks[name], re.M), name
        script = re.search(r'script:\n\s+"\.\./(workflow_scripts/\w+\.py)"', blocks[name]).group(1)
        assert "run_script(snakemake, main)" in (ROOT / script).read_text(), script


def test_run_script_leaves_torch_unloaded_for_jobs_without_it(tmp_path):
    # The CRF, scoring and table jobs never pay torch's import (about 1-2 s each).
    code = f"""
import sys, types
from bana_core.workflow_utils import run_script
import bana_core.evaluation  # what crf_segmenter / eval_segmenter import
smk = types.SimpleNamespace(log=[{str(tmp_path / 'job.log')!r}], threads=1, params=types.SimpleNamespace())
def main(smk):
    print("torch loaded:", "torch" in sys.modules)
run_script(smk, main)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "torch loaded: False"
