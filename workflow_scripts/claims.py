"""Entry point of rule claims: the report's claims, each as a delta of our tables, with a verdict."""
from pathlib import Path

from bana_core.claims import claims_from_table_files
from bana_core.script_runner import run_script
from bana_core.seeds import per_seed_files
from bana_core.tables import write_table


def main(smk):
    per_seed = per_seed_files(smk.input.tables, smk.input.further_seeds)
    df = claims_from_table_files(per_seed, smk.params.published)
    write_table(df, Path(smk.output.csv).with_suffix(""),
                title=f"Claims of the report: deltas in percentage points (paper, [Re], ours over seeds "
                      f"{smk.params.seeds}) and verdicts")


run_script(snakemake, main)  # noqa: F821
