"""Entry point of rule own_scores."""
import logging
from pathlib import Path

from bana_core.own_masks import score_masks
from bana_core.script_runner import run_script
from bana_core.tables import write_table


def main(smk):
    methods = {f"BANA Y_{smk.params.label}": [Path(p) for p in smk.input.shards]}
    if smk.params.segmenter:
        methods[smk.params.segmenter] = [Path(p) for p in smk.input.segmenter_shards]
    df = score_masks(methods, Path(smk.input.dataset))
    title = "Masks from your own boxes against the ground truth (%)"
    write_table(df, Path(smk.output.csv).with_suffix(""), title=title)
    logging.getLogger("bana").info("scores:\n%s", df.to_string())


run_script(snakemake, main)  # noqa: F821
