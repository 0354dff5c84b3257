"""Entry point of rule train_classifier."""
from pathlib import Path

from bana_core.data.voc import read_split
from bana_core.devices import resolve_device
from bana_core.experiments import parse_classifier
from bana_core.models.weights import resolve_pretrained
from bana_core.script_runner import run_script
from bana_core.stage1 import train_classifier


def main(smk):
    pool, grid, _ = parse_classifier(smk.wildcards.clf)
    cfg = smk.params.stage1
    pretrained = resolve_pretrained(cfg["backbone"].get("pretrained"), smk.input.pretrained)
    train_classifier(voc_root=Path(smk.params.voc_root), image_ids=read_split(smk.params.split), pool=pool,
                     grid_size=grid, cfg=cfg, pretrained=pretrained, out=Path(smk.output[0]),
                     work_dir=Path(smk.params.work_dir), device=resolve_device(smk.params.device),
                     seed=smk.params.seed, workers=0)


run_script(snakemake, main)  # noqa: F821
