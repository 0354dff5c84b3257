"""Entry point of rule eval_segmenter."""
from pathlib import Path

from bana_core.evaluation import evaluate_split
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    write_json(smk.output[0], evaluate_split(Path(smk.input.pred[0]), Path(smk.params.voc_root)))


run_script(snakemake, main)  # noqa: F821
