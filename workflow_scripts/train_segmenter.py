"""Entry point of rule train_segmenter."""
from pathlib import Path

from bana_core.devices import resolve_device
from bana_core.experiments import parse_segmenter
from bana_core.models.weights import resolve_pretrained
from bana_core.script_runner import run_script
from bana_core.stage3 import train_segmenter


def main(smk):
    seg = parse_segmenter(smk.wildcards.model)
    stage3 = smk.params.stage3
    pretrained = resolve_pretrained(stage3["arch"][seg.arch].get("pretrained"), smk.input.pretrained)
    train_segmenter(seg=seg, stage3=stage3, voc_root=Path(smk.params.voc_root), label_index=Path(smk.input.labels),
                    pretrained=pretrained, out=Path(smk.output.model), work_dir=Path(smk.params.work_dir),
                    device=resolve_device(smk.params.device), seed=smk.params.seed)


run_script(snakemake, main)  # noqa: F821
