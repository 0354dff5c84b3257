"""Entry point of rule eval_classifier."""
from pathlib import Path

from bana_core.data.voc import read_split
from bana_core.devices import resolve_device
from bana_core.io import write_json
from bana_core.script_runner import run_script
from bana_core.stage1 import box_accuracy, classifier_from_weights


def main(smk):
    device = resolve_device(smk.params.device)
    model = classifier_from_weights(Path(smk.input.model[0]), device)
    write_json(smk.output[0], box_accuracy(model, Path(smk.params.voc_root), read_split(smk.params.split), device))


run_script(snakemake, main)  # noqa: F821
