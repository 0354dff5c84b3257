"""Entry point of rule own_overlay."""
from pathlib import Path

from bana_core.data.own import OwnLayout
from bana_core.figures import mask_overlays
from bana_core.script_runner import run_script


def main(smk):
    voc_root = OwnLayout.open(smk.input.dataset).voc.root
    mask_overlays(voc_root, Path(smk.input.masks[0]), Path(smk.output[0]), smk.params.n_images)


run_script(snakemake, main)  # noqa: F821
