"""Entry point of rule claims: the report's claims, each as a delta of our tables, with a verdict."""
from pathlib import Path

from bana_core.claims import claims_from_table_files
from bana_core.tables import write_table
from bana_core.workflow_utils import run_script


def main(smk):
    names = [Path(p).stem for p in smk.input.tables]
    df = claims_from_table_files([dict(zip(names, smk.input.tables, strict=True))], smk.params.published)
    write_table(df, Path(smk.output.csv).with_suffix(""),
                title="Claims of the report: deltas in percentage points (paper, [Re], ours) and verdicts")


run_script(snakemake, main)  # noqa: F821
