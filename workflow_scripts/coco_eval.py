"""Entry point of rule coco_eval."""
from pathlib import Path

from bana_core.coco_eval import evaluate_coco
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    write_json(smk.output[0], evaluate_coco([Path(p) for p in smk.input.shards], Path(smk.params.annotations)))


run_script(snakemake, main)  # noqa: F821
