"""Entry point of rule own_train_segmenter."""
from pathlib import Path

from bana_core.data.own import OwnLayout
from bana_core.devices import resolve_device
from bana_core.experiments import parse_segmenter
from bana_core.models.weights import resolve_pretrained
from bana_core.own_segmenter import write_label_index
from bana_core.script_runner import run_script
from bana_core.stage3 import train_segmenter


def main(smk):
    seg = parse_segmenter(smk.params.segmenter)
    stage3 = smk.params.stage3
    own = OwnLayout.open(smk.input.dataset)
    work_dir = Path(smk.params.work_dir)
    index = work_dir / "labels_index.json"
    write_label_index([Path(p) for p in smk.input.shards], index)
    pretrained = resolve_pretrained(stage3["arch"][seg.arch].get("pretrained"), smk.input.pretrained)
    train_segmenter(seg=seg, stage3=stage3, voc_root=own.voc.root, label_index=index, pretrained=pretrained,
                    out=Path(smk.output.model), work_dir=work_dir, device=resolve_device(smk.params.device),
                    seed=smk.params.seed, num_classes=len(own.class_names))


run_script(snakemake, main)  # noqa: F821
