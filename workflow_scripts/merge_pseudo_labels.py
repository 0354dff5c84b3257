"""Entry point of rule merge_pseudo_labels."""
import logging
from pathlib import Path

from bana_core.evaluation import merge_shards
from bana_core.script_runner import run_script


def main(smk):
    result = merge_shards([Path(p) for p in smk.input], Path(smk.output.index), Path(smk.output.eval))
    logging.getLogger("bana").info("%d images; mIoU crf %s ret %s agree %s", result["n_images"],
                                   result["miou_crf"], result["miou_ret"], result["miou_agree"])


run_script(snakemake, main)  # noqa: F821
