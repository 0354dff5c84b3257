"""Entry point of rule coco_pseudo_labels_shard."""
import logging
from pathlib import Path

from bana_core.data.coco import load_coco_index
from bana_core.devices import resolve_device
from bana_core.evaluation import shard_ids
from bana_core.script_runner import run_script
from bana_core.stage1 import classifier_from_weights
from bana_core.voc_to_coco import generate_coco_shard, seen_summary, select_images


def main(smk):
    coco = load_coco_index(smk.input.index[0], Path(smk.params.images))
    logging.getLogger("bana").info("COCO classes: %s", seen_summary(coco))
    ids = shard_ids(select_images(coco, smk.params.max_images), int(smk.wildcards.shard), smk.params.n_shards)
    device = resolve_device(smk.params.device)
    model = classifier_from_weights(Path(smk.input.model), device)
    generate_coco_shard(model=model, coco=coco, image_ids=ids, cfg=smk.params.cfg, out_dir=Path(smk.output[0]),
                        device=device)


run_script(snakemake, main)  # noqa: F821
