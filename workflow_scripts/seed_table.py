"""Entry point of rule seed_table: one table over the config's seeds (mean, sd, n per cell)."""
from pathlib import Path

from bana_core.script_runner import run_script
from bana_core.seeds import mean_sd_text, seed_table_from_files
from bana_core.tables import write_table


def main(smk):
    df = seed_table_from_files(list(smk.input))
    write_table(df, Path(smk.output.csv).with_suffix(""), title=smk.params.title,
                markdown=mean_sd_text(df, len(smk.params.seeds)))


run_script(snakemake, main)  # noqa: F821
