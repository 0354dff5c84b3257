"""Entry point of rule fig3_heatmap."""
from pathlib import Path

from bana_core.figures import heatmap
from bana_core.script_runner import run_script


def main(smk):
    heatmap(Path(smk.input[0]), Path(smk.output[0]))


run_script(snakemake, main)  # noqa: F821
