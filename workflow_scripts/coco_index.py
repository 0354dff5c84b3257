"""Entry point of rule coco_index."""
import logging
from pathlib import Path

from bana_core.data.coco import load_coco, save_coco_index
from bana_core.workflow_utils import run_script


def main(smk):
    root = Path(smk.params.coco_root)
    coco = load_coco(root / "annotations" / "instances_train2017.json", root / "train2017",
                     drop_grayscale=smk.params.drop_grayscale)
    save_coco_index(coco, smk.output[0])
    logging.getLogger("bana").info("COCO index: %s", coco.summary)


run_script(snakemake, main)  # noqa: F821
