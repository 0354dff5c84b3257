# bana-pipeline: BANA (CVPR 2021) and every table of its ReScience reproduction, as one workflow.
#
#   snakemake --cores 2                                   # the embedded demo (config/config.yaml)
#   snakemake --cores 16 --configfile config/voc2012.yaml # the paper
#
# Rules hold wiring only; the logic lives in bana_core (see README.md and docs/method.md).

from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default only when no --configfile is given: a user's config file is
# validated on its own (rules/common.smk), never merged over the demo's keys.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/imagenet.smk"


if OWN_DATA:  # a user's own boxes to masks (dataset.source: local): stages 1 and 2 (3 optional)

    include: "rules/own_data.smk"

else:

    include: "rules/data.smk"
    include: "rules/stage1.smk"
    include: "rules/stage2.smk"
    include: "rules/coco.smk"
    include: "rules/stage3.smk"
    include: "rules/tables.smk"


# Bookkeeping that takes seconds even at full scale runs on the submitting host: under
# `--executor slurm` each of these would otherwise cost a queued job and a Snakemake start-up.
LOCAL_RULES = [
    "download",  # network: compute nodes often have none
    "imagenet_weights",
    "all",
    "merge_pseudo_labels",
    "figure_pseudo_labels",
    "eval_segmenter",
    "archive_test",
    "training_curve",
    "table",
    "box_fill_baseline",
    "stride_reference",
    "shipped_backbone",
    "health_checks",
    "claims",
    "seed_table",
    "fig3_heatmap",
    "report",
    "own_masks",
    "own_scores",
    "own_overlay",
]
# Only the rules this config includes (the paper's, or those of a user's own data): Snakemake
# refuses a localrules name that no rule has.
LOCAL_RULES = [name for name in LOCAL_RULES if name == "all" or name in {r.name for r in workflow.rules}]
workflow.localrules(*LOCAL_RULES)
try:  # a `resources` key naming no rule (a typo) would leave that rule at its demo size
    check_resource_overrides(config, [r.name for r in workflow.rules])
except ConfigError as _err:
    sys.exit(f"Configuration error in {', '.join(CONFIG_FILES)}: {_err}")


rule all:
    default_target: True
    input:
        own_targets() if OWN_DATA else [all_targets(), f"{R}/report.html"],


# Further seeds (config `seeds` after the first): this same workflow as a module per seed, with
# the seed's derived config (bana_core.seeds.seed_config: seeds [s], so it does not recurse; its
# outputs under results/<run>/seeds/<s>/, see rules/common.smk). The run's claims and its
# tables/seeds/ read what the modules build; their rule all and report are not used.
for _seed in FURTHER_SEEDS:
    _seed_module = f"seed{_seed}"
    _seed_rules = f"seed{_seed}_"

    module:
        name: _seed_module
        snakefile:
            "Snakefile"
        config:
            seeds.seed_config(config, _seed)

    use rule * from _seed_module exclude all, report as _seed_rules*

    # `localrules` inside a module names the unprefixed rules: mark the module's copies here.
    workflow.localrules(*(_seed_rules + name for name in LOCAL_RULES if name not in ("all", "report")))
