"""Entry point of rule own_dataset."""
from pathlib import Path

from bana_core.data.own import read_own_dataset, write_own_dataset
from bana_core.script_runner import run_script


def main(smk):
    write_own_dataset(read_own_dataset(smk.params.local), Path(smk.output[0]))


run_script(snakemake, main)  # noqa: F821
