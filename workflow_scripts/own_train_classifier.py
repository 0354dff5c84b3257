"""Entry point of rule own_train_classifier."""
from pathlib import Path

from bana_core.data.own import OwnLayout
from bana_core.devices import resolve_device
from bana_core.models.weights import resolve_pretrained
from bana_core.script_runner import run_script
from bana_core.stage1 import train_classifier


def main(smk):
    cfg = smk.params.stage1
    own = OwnLayout.open(smk.input.dataset)
    pretrained = resolve_pretrained(cfg["backbone"].get("pretrained"), smk.input.pretrained)
    train_classifier(voc_root=own.voc.root, image_ids=own.image_ids, pool="bap", grid_size=cfg["grid_size"], cfg=cfg,
                     pretrained=pretrained, out=Path(smk.output[0]), work_dir=Path(smk.params.work_dir),
                     device=resolve_device(smk.params.device), seed=smk.params.seed, class_names=own.class_names)


run_script(snakemake, main)  # noqa: F821
