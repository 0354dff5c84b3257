"""Entry point of rule health_checks."""
from pathlib import Path

from bana_core.experiments import parse_segmenter
from bana_core.io import read_json
from bana_core.script_runner import run_script
from bana_core.tables import health_checks, write_table


def main(smk):
    accuracies = {name: read_json(p) for name, p in zip(smk.params.classifiers, smk.input.accuracies, strict=True)}
    segmenters = {}
    for model, path in zip(smk.params.segmenters, smk.input.segmenters, strict=True):
        seg = parse_segmenter(model)
        segmenters[(seg.arch, seg.loss)] = read_json(path)
    df = health_checks(accuracies, read_json(smk.input.box_fill[0]), read_json(smk.input.bap), segmenters,
                       stride_reference=read_json(smk.input.stride_reference[0]))
    write_table(df, Path(smk.output.csv).with_suffix(""), title="Health checks: did every stage learn?",
                floatfmt=".2f")  # fit ratios need two decimals


run_script(snakemake, main)  # noqa: F821
