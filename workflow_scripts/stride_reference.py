"""Entry point of rule stride_reference."""
from pathlib import Path

from bana_core.data.voc import read_split
from bana_core.io import write_json
from bana_core.script_runner import run_script
from bana_core.stride_reference import stride_reference_miou


def main(smk):
    write_json(smk.output[0], stride_reference_miou(Path(smk.params.voc_root), read_split(smk.params.split),
                                                 crf=smk.params.crf, temperature=smk.params.temperature))


run_script(snakemake, main)  # noqa: F821
