"""Entry point of rule coco_index."""
import logging
from pathlib import Path

from bana_core.data.coco import load_coco, save_coco_index
from bana_core.script_runner import run_script


def main(smk):
    coco = load_coco(Path(smk.params.annotations), Path(smk.params.images), drop_grayscale=smk.params.drop_grayscale)
    save_coco_index(coco, smk.output[0])
    logging.getLogger("bana").info("COCO index: %s", coco.summary)


run_script(snakemake, main)  # noqa: F821
