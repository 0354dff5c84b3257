"""Entry point of rule imagenet_weights (a local rule: the submitting host has the network)."""
from bana_core.models.weights import fetch_imagenet_checkpoint
from bana_core.script_runner import run_script


def main(smk):
    fetch_imagenet_checkpoint(smk.params.url, smk.params.hub)


run_script(snakemake, main)  # noqa: F821
