"""Entry point of rule own_masks_shard."""
from pathlib import Path

from bana_core.data.own import OwnLayout
from bana_core.devices import resolve_device
from bana_core.evaluation import shard_ids
from bana_core.own_masks import masks_shard
from bana_core.script_runner import run_script
from bana_core.stage1 import classifier_from_weights


def main(smk):
    device = resolve_device(smk.params.device)
    dataset = Path(smk.input.dataset)
    ids = shard_ids(OwnLayout.open(dataset).image_ids, int(smk.wildcards.shard), smk.params.n_shards)
    model = classifier_from_weights(Path(smk.input.model[0]), device)
    masks_shard(model=model, dataset_dir=dataset, image_ids=ids, cfg=smk.params.stage2, out_dir=Path(smk.output[0]),
                device=device, keep_labels=smk.params.keep_labels)


run_script(snakemake, main)  # noqa: F821
