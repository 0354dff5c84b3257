"""Entry point of rule synthesize: the embedded demo dataset."""
from pathlib import Path

from bana_core.data.synthetic import World, synthesize
from bana_core.script_runner import run_script


def main(smk):
    s = smk.params.settings
    synthesize(
        Path(smk.output[0]).parent,
        image_size=tuple(s["image_size"]),
        n_train=s["n_train"], n_val=s["n_val"], n_test=s["n_test"],
        n_sbd_only=s["n_sbd_only"], n_coco=s["n_coco"], seed=s["seed"],
        world=World.from_settings(s),
        workers=smk.threads,
    )


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
