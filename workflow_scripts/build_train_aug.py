"""Entry point of rule build_train_aug."""
from pathlib import Path

from bana_core.data.sbd import build_train_aug
from bana_core.io import write_json
from bana_core.script_runner import run_script


def main(smk):
    summary = build_train_aug(
        Path(smk.params.voc_root), Path(smk.params.sbd_root),
        expected_count=smk.params.expected, workers=smk.threads,
    )
    write_json(smk.output.summary, summary)


run_script(snakemake, main)  # noqa: F821
