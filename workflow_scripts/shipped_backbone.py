"""Entry point of rule shipped_backbone (demo, pretrain.weights: shipped)."""
from pathlib import Path

from bana_core.shipped_weights import install
from bana_core.workflow_utils import run_script


def main(smk):
    install(smk.wildcards.net, Path(smk.output[0]))


run_script(snakemake, main)  # noqa: F821
