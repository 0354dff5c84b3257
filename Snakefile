# bana-pipeline: BANA (CVPR 2021) and every table of its ReScience reproduction, as one workflow.
#
#   snakemake --cores 2                                   # the embedded demo (config/config.yaml)
#   snakemake --cores 16 --configfile config/voc2012.yaml # the paper
#
# Rules hold wiring only; the logic lives in bana_core (see DESIGN.md and README.md).

from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default only when no --configfile is given: a user's config file is
# validated on its own (rules/common.smk), never merged over the demo's keys.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/stage1.smk"
include: "rules/stage2.smk"
include: "rules/coco.smk"
include: "rules/stage3.smk"
include: "rules/tables.smk"


# Bookkeeping that takes seconds even at full scale runs on the submitting host: under
# `--executor slurm` each of these would otherwise cost a queued job and a Snakemake start-up.
localrules:
    all,
    merge_pseudo_labels,
    figure_pseudo_labels,
    eval_segmenter,
    archive_test,
    training_curve,
    table,
    box_fill_baseline,
    health_checks,
    claims,
    fig3_heatmap,
    report,


rule all:
    input:
        all_targets(),
        f"{R}/report.html",
    default_target: True
