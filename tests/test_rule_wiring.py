"""The rules' wiring, bana_core.code_versions and bana_core.script_runner, checked without running Snakemake."""
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
from bana_core.script_runner import run_script
import bana_core.evaluation  # what crf_segmenter / eval_segmenter import
smk = types.SimpleNamespace(log=[{str(tmp_path / 'job.log')!r}], threads=1, params=types.SimpleNamespace())
def main(smk):
    print("torch loaded:", "torch" in sys.modules)
run_script(smk, main)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "torch loaded: False"


def test_each_rule_hashes_the_code_of_its_own_script():
    # A rule's `code` param is derived from the imports of the script it runs: no hand-kept
    # module list. The one thing written twice is the script's name, checked here.
    for name, body in rule_blocks().items():
        script = re.search(r'script:\n\s+"\.\./workflow_scripts/(\w+)\.py"', body)
        code = re.search(r'code=script_code\("(\w+)"\)', body)
        if script is None or name == "report":  # nothing to run; `snakemake --report` on the outputs
            continue
        assert code, name
        assert code.group(1) == script.group(1), name
    assert 'code_version("' not in "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))


def test_script_modules_follow_imports_transitively():
    from bana_core.code_versions import script_modules

    crf = set(script_modules(ROOT / "workflow_scripts" / "crf_segmenter.py"))
    # evaluation.crf_split reads images through data/voc, which itself uses classes and io.
    assert {"evaluation.py", "crf.py", "data/voc.py", "data/__init__.py", "classes.py", "io.py",
            "script_runner.py", "gpu_lease.py", "__init__.py"} <= crf
    assert not {"losses.py", "tables.py", "stage3.py"} & crf
    train = set(script_modules(ROOT / "workflow_scripts" / "train_segmenter.py"))
    assert {"stage3.py", "losses.py", "train.py", "models/deeplab.py", "models/__init__.py"} <= train
    assert "tables.py" not in train and "crf.py" not in train


def test_script_modules_of_every_import_form(tmp_path):
    from bana_core.code_versions import script_modules

    script = tmp_path / "script.py"
    script.write_text(
        "import os\n"
        "import bana_core.metrics\n"
        "from bana_core.data import voc\n"
        "from bana_core import figures as f\n"
        "def later():\n"
        "    from bana_core.losses import noise_aware_loss  # a lazy import counts too\n"
    )
    got = set(script_modules(script))
    assert {"metrics.py", "data/__init__.py", "data/voc.py", "figures.py", "losses.py", "__init__.py"} <= got
    # ... and what those import in turn (metrics -> classes; voc -> io, errors).
    assert {"classes.py", "io.py", "errors.py"} <= got
    assert "stage3.py" not in got and all(not m.startswith("..") for m in got)


def test_code_version_changes_with_an_imported_file_only(tmp_path, monkeypatch):
    import shutil

    from bana_core import code_versions

    pkg = tmp_path / "bana_core"
    shutil.copytree(ROOT / "bana_core", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_versions, "PACKAGE_DIR", pkg)
    script = ROOT / "workflow_scripts" / "crf_segmenter.py"

    def version():
        code_versions.script_modules.cache_clear()
        code_versions.code_version.cache_clear()
        return code_versions.code_version(script)

    before = version()
    (pkg / "losses.py").write_text((pkg / "losses.py").read_text() + "\n# not imported by the CRF step\n")
    assert version() == before
    (pkg / "data" / "voc.py").write_text((pkg / "data" / "voc.py").read_text() + "\n# read by the CRF step\n")
    assert version() != before
