"""Entry point of rule archive_test."""
import logging
from pathlib import Path

from bana_core.evaluation import archive_test_predictions
from bana_core.script_runner import run_script


def main(smk):
    n = archive_test_predictions(Path(smk.input[0]), Path(smk.output[0]))
    logging.getLogger("bana").info("archived %d test predictions in %s", n, smk.output[0])


run_script(snakemake, main)  # noqa: F821
