"""`snakemake --lint` over every rule the workflow can include: the paper's (demo and VOC 2012
configs) and those of a user's own data, with its optional segmenter (a four-image dataset made here).

One lint is let through, by decision: "Specify a conda environment or container for each rule".
No conda can be installed where this project is tested, and an environment file nobody ran would
claim what was never checked (README, Quickstart); pip installs the package with its pinned-from
-below dependencies instead. Any other lint fails.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ACCEPTED = {"Specify a conda environment or container for each rule."}
TITLE = re.compile(r"^\s*\* (.+?):?$")


def lint(configfile: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--configfile", str(configfile)],
                          cwd=REPO, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if "Lints for" not in text and proc.returncode != 0:
        sys.exit(f"snakemake --lint could not parse the workflow with {configfile}:\n{text[-3000:]}")
    found, where = [], ""
    for line in text.splitlines():
        if line.startswith("Lints for"):
            where = line.rstrip(":")
        elif (m := TITLE.match(line)) and m.group(1) not in ACCEPTED:
            found.append(f"{configfile.name}: {where}: {m.group(1)}")
    return found


def own_data_config(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from own_data_maker import synthetic_source, write_voc_layout

    root = write_voc_layout(synthetic_source(tmp / "src", n_images=4), tmp / "own")
    config = yaml.safe_load((REPO / "config" / "own_data.yaml").read_text())
    config["dataset"]["local"].update({"layout": "voc", "root": str(root), "split": "trainval"})
    config["stage3"]["segmenter"] = "v1-nal"  # its optional stage-3 rules too
    path = tmp / "own_data.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        configs = [REPO / "config" / "config.yaml", REPO / "config" / "voc2012.yaml", own_data_config(Path(tmp))]
        problems = [p for c in configs for p in lint(c)]
    if problems:
        sys.exit("snakemake --lint:\n  " + "\n  ".join(problems))
    print(f"snakemake --lint: clean on {len(configs)} configs (the conda/container lint accepted, see this file)")


if __name__ == "__main__":
    main()
