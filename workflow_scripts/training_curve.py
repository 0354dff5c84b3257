"""Entry point of rule training_curve."""
from pathlib import Path

from bana_core.figures import training_curve
from bana_core.script_runner import run_script


def main(smk):
    training_curve(Path(smk.input[0]), Path(smk.output[0]), title=smk.wildcards.model)


run_script(snakemake, main)  # noqa: F821
