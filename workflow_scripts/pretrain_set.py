"""Entry point of rule pretrain_set (demo only)."""
import logging
from pathlib import Path

from bana_core.data.synthetic import write_pretrain_set
from bana_core.script_runner import run_script


def main(smk):
    cfg = smk.params.pretrain_set
    summary = write_pretrain_set(Path(smk.output[0]), cfg["n_per_class"], cfg["image_size"], seed=smk.params.seed,
                                 clutter=cfg["clutter"], workers=max(1, int(smk.threads)))
    logging.getLogger("bana").info("pretraining set: %s", summary)


run_script(snakemake, main)  # noqa: F821
