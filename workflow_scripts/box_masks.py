"""Entry point of rule box_masks."""
from bana_core.data.voc import VocLayout, read_split, write_box_masks
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    layout = VocLayout(smk.params.voc_root)
    ids = sorted({i for s in smk.params.splits for i in read_split(layout.split_path(s))})
    write_json(smk.output[0], write_box_masks(layout, ids))


run_script(snakemake, main)  # noqa: F821
