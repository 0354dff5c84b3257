"""Entry point of rule shipped_backbone (demo, pretrain.weights: shipped)."""
from pathlib import Path

from bana_core.script_runner import run_script
from bana_core.shipped_weights import install


def main(smk):
    install(smk.wildcards.net, Path(smk.output[0]))


run_script(snakemake, main)  # noqa: F821
