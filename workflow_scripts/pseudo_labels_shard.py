"""Entry point of rule pseudo_labels_shard."""
from pathlib import Path

from bana_core.data.voc import read_split
from bana_core.devices import resolve_device
from bana_core.evaluation import shard_ids
from bana_core.script_runner import run_script
from bana_core.stage1 import classifier_from_weights
from bana_core.stage2 import generate_shard


def main(smk):
    device = resolve_device(smk.params.device)
    wc = smk.wildcards
    ids = shard_ids(read_split(smk.params.split), int(wc.shard), smk.params.n_shards)
    model = classifier_from_weights(Path(smk.input.model), device)
    generate_shard(model=model, voc_root=Path(smk.params.voc_root), image_ids=ids, split=wc.split,
                   gen_grid=int(wc.gen), variant=wc.variant, cfg=smk.params.stage2, out_dir=Path(smk.output[0]),
                   device=device)


run_script(snakemake, main)  # noqa: F821
