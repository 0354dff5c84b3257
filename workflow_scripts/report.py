"""Entry point of rule report: runs `snakemake --report` for the finished targets of this run."""
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bana_core.errors import BanaError
from bana_core.script_runner import run_script


def main(smk):
    out = Path(smk.output[0])
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(dict(smk.params.config), f)  # the exact config of this run, overrides included
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(smk.params.snakefile), "--nolock", "--cores", "1",
           "--configfile", f.name, "--report", str(out), *smk.params.targets]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    Path(f.name).unlink()
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    if proc.returncode != 0 or not out.exists():
        raise BanaError(f"snakemake --report failed (exit {proc.returncode}); see the log above")


run_script(snakemake, main)  # noqa: F821
