# Tables 3-9, Fig. 3, the stage-1 checks, the figures, and the HTML report.

TABLES = f"{R}/tables"


TABLE_INPUTS = {
    "table3_pseudo_labels": keyed((k, pl_eval(s)) for k, s in EXP.table3_sets().items()),
    "table6_grid_size": keyed((k, pl_eval(s)) for k, s in EXP.table6_sets().items()),
    "table8_bap_vs_gap": keyed((k, pl_eval(s)) for k, s in EXP.table8_sets().items()),
    "table9_class_agnostic": keyed((k, pl_eval(s)) for k, s in EXP.table9_sets().items()),
    "table5_segmentation": keyed(
        ((arch, loss, split), seg_eval(m, split))
        for (arch, loss), m in EXP.table5_models().items()
        for split in (("val", "test") if loss == "nal" else ("val",))
    ),
    "table7_losses": keyed((k, seg_eval(m)) for k, m in EXP.table7_models().items()),
    "fig3_lambda_damp": keyed((k, seg_eval(m)) for k, m in EXP.fig3_models().items()),
}
if config["coco"]["enabled"]:
    TABLE_INPUTS["table4_voc_to_coco"] = keyed([("all", f"{R}/coco/{EXP.default_classifier}/eval.json")])

TABLE_CAPTIONS = {
    "table3_pseudo_labels": "Table 3: pseudo labels on val (mIoU)",
    "table4_voc_to_coco": "Table 4: VOC-to-COCO pseudo labels (segm AP on COCO train2017)",
    "table5_segmentation": "Table 5: DeepLab-V1/V2 trained on pseudo labels (mIoU after CRF)",
    "table6_grid_size": "Table 6: BAP Ycrf on val by train / generation grid size (mIoU)",
    "table7_losses": "Table 7: losses for the unreliable regions, DeepLab-V1 (mIoU before / after CRF)",
    "table8_bap_vs_gap": "Table 8: BAP vs GAP, with and without SBD augmentation (mIoU)",
    "table9_class_agnostic": "Table 9: class-agnostic pseudo labels on train_aug (mIoU)",
    "fig3_lambda_damp": "Figure 3: DeepLab-V1 with NAL on val by lambda and damp (mIoU before CRF)",
}


rule table:
    """One table of the report as .csv and .md (published numbers beside ours when configured)."""
    input:
        lambda wc: TABLE_INPUTS[wc.table][1],
    output:
        csv=report(f"{TABLES}/{{table}}.csv", category="Tables", caption="../report/table.rst",
                   labels={"table": "{table}"}),
        md=f"{TABLES}/{{table}}.md",
    params:
        table_keys=lambda wc: TABLE_INPUTS[wc.table][0],
        title=lambda wc: TABLE_CAPTIONS[wc.table],
        published=lambda wc: paper_results(wc.table),
        code=script_code("make_table"),
    wildcard_constraints:
        table="|".join(TABLE_CAPTIONS),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/bana.yaml"
    log:
        f"{R}/logs/tables/{{table}}.log",
    benchmark:
        f"{R}/benchmarks/tables/{{table}}.tsv"
    script:
        "../workflow_scripts/make_table.py"


rule box_fill_baseline:
    """Every GT box filled with its class (smaller boxes on top), scored on val: the 'Box' baseline."""
    input:
        split_input("val"),
    output:
        f"{R}/pseudo_labels/box_fill_val.json",
    params:
        split=split_file("val"),
        voc_root=VOC,
        code=script_code("box_fill_baseline"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/bana.yaml"
    log:
        f"{R}/logs/box_fill_baseline.log",
    benchmark:
        f"{R}/benchmarks/box_fill_baseline.tsv"
    script:
        "../workflow_scripts/box_fill_baseline.py"


rule stage1_checks:
    """Did the models learn? Val box accuracy of every classifier; BAP Ycrf vs the box fill."""
    input:
        accuracies=expand(f"{R}/classifiers/{{clf}}/val_accuracy.json", clf=EXP.classifiers()),
        box_fill=rules.box_fill_baseline.output,
        bap=pl_eval(EXP.table3_sets()["bap"]),
    output:
        csv=report(f"{TABLES}/stage1_checks.csv", category="Tables", caption="../report/stage1_checks.rst",
                   labels={"table": "stage1_checks"}),
        md=f"{TABLES}/stage1_checks.md",
    params:
        classifiers=EXP.classifiers(),
        code=script_code("stage1_checks"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/bana.yaml"
    log:
        f"{R}/logs/tables/stage1_checks.log",
    benchmark:
        f"{R}/benchmarks/tables/stage1_checks.tsv"
    script:
        "../workflow_scripts/stage1_checks.py"


rule fig3_heatmap:
    """Figure 3 as a heat map (rows damp 70, 15, 3; columns lambda)."""
    input:
        f"{TABLES}/fig3_lambda_damp.csv",
    output:
        report(f"{R}/figures/fig3_lambda_damp.png", category="Stage 3: segmentation",
               caption="../report/fig3.rst"),
    params:
        code=script_code("fig3_heatmap"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/bana.yaml"
    log:
        f"{R}/logs/fig3_heatmap.log",
    benchmark:
        f"{R}/benchmarks/fig3_heatmap.tsv"
    script:
        "../workflow_scripts/fig3_heatmap.py"


rule report:
    """Snakemake's own HTML report of the run (tables and figures with captions, by stage)."""
    input:
        all_targets(),
    output:
        f"{R}/report.html",
    params:
        snakefile=workflow.main_snakefile,
        config=config,
        targets=all_targets(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/bana.yaml"
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    script:
        "../workflow_scripts/report.py"
