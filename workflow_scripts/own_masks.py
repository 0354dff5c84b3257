"""Entry point of rule own_masks."""
from pathlib import Path

from bana_core.own_masks import merge_masks
from bana_core.script_runner import run_script


def main(smk):
    merge_masks([Path(p) for p in smk.input.shards], Path(smk.input.dataset), Path(smk.output[0]))


run_script(snakemake, main)  # noqa: F821
