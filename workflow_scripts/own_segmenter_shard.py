"""Entry point of rule own_segmenter_shard."""
from pathlib import Path

from bana_core.data.own import OwnLayout
from bana_core.devices import resolve_device
from bana_core.evaluation import shard_ids
from bana_core.own_segmenter import segmenter_shard
from bana_core.script_runner import run_script


def main(smk):
    dataset = Path(smk.input.dataset)
    ids = shard_ids(OwnLayout.open(dataset).image_ids, int(smk.wildcards.shard), smk.params.n_shards)
    segmenter_shard(model_path=Path(smk.input.model), dataset_dir=dataset, image_ids=ids, scales=smk.params.scales,
                    flip=smk.params.flip, crf=smk.params.crf, out_dir=Path(smk.output[0]),
                    device=resolve_device(smk.params.device))


run_script(snakemake, main)  # noqa: F821
