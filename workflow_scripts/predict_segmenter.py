"""Entry point of rule predict_segmenter."""
from pathlib import Path

from bana_core.data.voc import VocLayout, read_split
from bana_core.devices import resolve_device
from bana_core.script_runner import run_script
from bana_core.stage3 import predict_split


def main(smk):
    layout = VocLayout(smk.params.voc_root)
    ids = read_split(layout.split_path(smk.wildcards.segsplit), check_dir=layout.jpeg_dir)
    predict_split(model_path=Path(smk.input.model), voc_root=Path(smk.params.voc_root), image_ids=ids,
                  out_dir=Path(smk.output[0]), scales=smk.params.scales, flip=smk.params.flip,
                  device=resolve_device(smk.params.device))


run_script(snakemake, main)  # noqa: F821
