# Tables 3-9, Fig. 3, health checks, claim tables over seeds, claims, figures, the HTML report.


rule table:
    """One table of the report as .csv and .md (published numbers beside ours when configured);
    what it reads and how it is built: its spec in bana_core.tables.TABLES."""
    input:
        lambda wc: list(tables.table_inputs(wc.table, EXP, R).values()),
    output:
        csv=report(
            f"{TABLES}/{{table}}.csv", category="Tables", caption="../report/table.rst", labels={"table": "{table}"}
        ),
        md=f"{TABLES}/{{table}}.md",
    log:
        f"{R}/logs/tables/{{table}}.log",
    benchmark:
        f"{R}/benchmarks/tables/{{table}}.tsv"
    wildcard_constraints:
        table="|".join(spec.name for spec in tables.tables_of(EXP)),
    threads: 1
    resources:
        **job_resources(config, "table", mem_mb=1000, runtime=30),
    params:
        experiments=experiments.experiment_settings(config),  # the job rebuilds EXP: keys need no params
        title=lambda wc: tables.TABLE_SPECS[wc.table].caption,
        published=lambda wc: paper_results(wc.table),
        code=script_code("make_table"),
    script:
        "../workflow_scripts/make_table.py"


rule box_fill_baseline:
    """Every GT box filled with its class (smaller boxes on top), scored on val: the 'Box' baseline."""
    input:
        split_input("val"),
    output:
        f"{R}/pseudo_labels/box_fill_val.json",
    log:
        f"{R}/logs/box_fill_baseline.log",
    benchmark:
        f"{R}/benchmarks/box_fill_baseline.tsv"
    threads: 1
    resources:
        **job_resources(config, "box_fill_baseline", mem_mb=1000, runtime=30),
    params:
        split=split_file("val"),
        voc_root=VOC,
        code=script_code("box_fill_baseline"),
    script:
        "../workflow_scripts/box_fill_baseline.py"


rule stride_reference:
    """Val ground truth as far as the segmenters' output stride (8) can express it, scored before
    and after each architecture's CRF: about the most any segmenter can reach on this data (the
    health checks' reference)."""
    input:
        split_input("val"),
    output:
        f"{R}/segmenters/stride_reference_val.json",
    log:
        f"{R}/logs/stride_reference.log",
    benchmark:
        f"{R}/benchmarks/stride_reference.tsv"
    threads: 1
    resources:
        **job_resources(config, "stride_reference", mem_mb=1000, runtime=30),
    params:
        split=split_file("val"),
        voc_root=VOC,
        crf={arch: block["crf"] for arch, block in config["stage3"]["arch"].items()},
        temperature=config["stage3"]["temperature"],
        code=script_code("stride_reference"),
    script:
        "../workflow_scripts/stride_reference.py"


rule health_checks:
    """Did every stage learn? Val box accuracy of every classifier; BAP Ycrf / Yret vs the box
    fill; each Table-5 segmenter's fit ratio to its own training labels."""
    input:
        accuracies=expand(f"{R}/classifiers/{{clf}}/val_accuracy.json", clf=EXP.classifiers()),
        box_fill=rules.box_fill_baseline.output,
        stride_reference=rules.stride_reference.output,
        bap=pl_eval(EXP.table3_sets()["bap"]),
        segmenters=[f"{R}/{experiments.SegmenterEval(m).eval_file}" for m in EXP.table5_models().values()],
    output:
        csv=report(
            f"{TABLES}/health_checks.csv",
            category="Tables",
            caption="../report/health_checks.rst",
            labels={"table": "health_checks"},
        ),
        md=f"{TABLES}/health_checks.md",
    log:
        f"{R}/logs/tables/health_checks.log",
    benchmark:
        f"{R}/benchmarks/tables/health_checks.tsv"
    threads: 1
    resources:
        **job_resources(config, "health_checks", mem_mb=1000, runtime=30),
    params:
        classifiers=EXP.classifiers(),
        segmenters=list(EXP.table5_models().values()),
        code=script_code("health_checks"),
    script:
        "../workflow_scripts/health_checks.py"


rule fig3_heatmap:
    """Figure 3 as a heat map (rows damp 70, 15, 3; columns lambda)."""
    input:
        f"{TABLES}/fig3_lambda_damp.csv",
    output:
        report(f"{R}/figures/fig3_lambda_damp.png", category="Stage 3: segmentation", caption="../report/fig3.rst"),
    log:
        f"{R}/logs/fig3_heatmap.log",
    benchmark:
        f"{R}/benchmarks/fig3_heatmap.tsv"
    threads: 1
    resources:
        **job_resources(config, "fig3_heatmap", mem_mb=1000, runtime=30),
    params:
        code=script_code("fig3_heatmap"),
    script:
        "../workflow_scripts/fig3_heatmap.py"


rule report:
    """Snakemake's own HTML report of the run (tables and figures with captions, by stage)."""
    input:
        all_targets(),
    output:
        f"{R}/report.html",
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    threads: 1
    resources:
        **job_resources(config, "report", mem_mb=1000, runtime=30),
    params:
        snakefile=workflow.main_snakefile,
        config=config,
        targets=all_targets(),
    script:
        "../workflow_scripts/report.py"


rule seed_table:
    """One claim table over the config's seeds: mean, sd and n per cell (bana_core.seeds)."""
    input:
        lambda wc: [seed_table_csv(s, wc.table) for s in config["seeds"]],
    output:
        csv=report(
            f"{TABLES}/seeds/{{table}}.csv",
            category="Tables over seeds",
            caption="../report/seed_table.rst",
            labels={"table": "{table}"},
        ),
        md=f"{TABLES}/seeds/{{table}}.md",
    log:
        f"{R}/logs/tables/seeds/{{table}}.log",
    benchmark:
        f"{R}/benchmarks/tables/seeds/{{table}}.tsv"
    wildcard_constraints:
        table="|".join(CLAIM_TABLES),
    threads: 1
    resources:
        **job_resources(config, "seed_table", mem_mb=1000, runtime=30),
    params:
        seeds=config["seeds"],
        title=lambda wc: f"{tables.TABLE_SPECS[wc.table].caption}, mean ± sd over seeds {config['seeds']}",
        code=script_code("seed_table"),
    script:
        "../workflow_scripts/seed_table.py"


rule claims:
    """Each claim of the report as a delta of our tables, beside the paper's and [Re]'s, with a
    verdict over the config's seeds (each seed's claim tables)."""
    input:
        tables=seed_tables(config["seeds"][0]),
        further_seeds=[f for s in FURTHER_SEEDS for f in seed_tables(s)],
    output:
        csv=report(
            f"{TABLES}/claims.csv", category="Tables", caption="../report/claims.rst", labels={"table": "claims"}
        ),
        md=f"{TABLES}/claims.md",
    log:
        f"{R}/logs/tables/claims.log",
    benchmark:
        f"{R}/benchmarks/tables/claims.tsv"
    threads: 1
    resources:
        **job_resources(config, "claims", mem_mb=1000, runtime=30),
    params:
        published={t: published_results(t) for t in CLAIM_TABLES},  # shown whatever show_paper_results
        seeds=config["seeds"],
        code=script_code("claims"),
    script:
        "../workflow_scripts/claims.py"
