"""Entry point of rule crf_segmenter."""
from pathlib import Path

from bana_core.evaluation import crf_split
from bana_core.script_runner import run_script


def main(smk):
    crf_split(logits_dir=Path(smk.input.logits[0]), voc_root=Path(smk.params.voc_root), crf_params=smk.params.crf,
              out_dir=Path(smk.output[0]))


run_script(snakemake, main)  # noqa: F821
