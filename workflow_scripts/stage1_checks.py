"""Entry point of rule stage1_checks."""
from pathlib import Path

from bana_core.io import read_json
from bana_core.tables import stage1_summary, write_table
from bana_core.workflow_utils import run_script


def main(smk):
    accuracies = {name: read_json(p) for name, p in zip(smk.params.classifiers, smk.input.accuracies, strict=True)}
    df = stage1_summary(accuracies, read_json(smk.input.box_fill[0]), read_json(smk.input.bap))
    write_table(df, Path(smk.output.csv).with_suffix(""), title="Stage-1 checks: did the models learn?")


run_script(snakemake, main)  # noqa: F821
