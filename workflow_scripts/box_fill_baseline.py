"""Entry point of rule box_fill_baseline."""
from pathlib import Path

from bana_core.data.voc import read_split
from bana_core.evaluation import box_fill_miou
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    write_json(smk.output[0], box_fill_miou(Path(smk.params.voc_root), read_split(smk.params.split)))


run_script(snakemake, main)  # noqa: F821
