"""Entry point of rule table: one table of the report."""
from pathlib import Path

from bana_core.io import read_json
from bana_core.tables import build_table, write_table
from bana_core.workflow_utils import run_script


def main(smk):
    evals = [read_json(p) for p in smk.input]
    df = build_table(smk.wildcards.table, smk.params.table_keys, evals, smk.params.published)
    write_table(df, Path(smk.output.csv).with_suffix(""), title=smk.params.title)


run_script(snakemake, main)  # noqa: F821
