"""Entry point of rule figure_pseudo_labels."""
from pathlib import Path

from bana_core.figures import pseudo_label_examples
from bana_core.script_runner import run_script


def main(smk):
    pseudo_label_examples(Path(smk.input.index), Path(smk.params.voc_root), Path(smk.output[0]), smk.params.n_images)


run_script(snakemake, main)  # noqa: F821
