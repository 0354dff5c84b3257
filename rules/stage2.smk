# Stage 2: pseudo labels in fixed shards, merged into one index and scored (mIoU).

PL = f"{R}/pseudo_labels/{{clf}}/gen{{gen}}/{{split}}/{{variant}}"
N_SHARDS = config["stage2"]["n_shards"]


rule pseudo_labels_shard:
    """Y_crf and Y_ret for shard k of n of one (classifier, generation grid, split, variant)."""
    input:
        model=f"{R}/classifiers/{{clf}}/model.pt",
        split=lambda wc: split_input(wc.split),
    output:
        directory(f"{PL}/shards/{{shard}}"),
    log:
        f"{R}/logs/pseudo_labels/{{clf}}_gen{{gen}}_{{split}}_{{variant}}_{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/pseudo_labels/{{clf}}_gen{{gen}}_{{split}}_{{variant}}_{{shard}}.tsv"
    group:
        "pseudo_shards"
    threads: 1
    resources:
        **job_resources(config, "pseudo_labels_shard", mem_mb=2000, runtime=30),
        gpu=GPUS,
    params:
        stage2=rule_params.stage2_shard(config),
        n_shards=N_SHARDS,
        split=lambda wc: split_file(wc.split),
        voc_root=VOC,
        device=config["device"],
        code=script_code("pseudo_labels_shard"),
    script:
        "../workflow_scripts/pseudo_labels_shard.py"


rule merge_pseudo_labels:
    """One index listing every image once; mIoU of Y_crf, Y_ret and 'Ycrf & Yret'."""
    input:
        expand(f"{PL}/shards/{{shard}}", shard=range(N_SHARDS), allow_missing=True),
    output:
        index=f"{PL}/index.json",
        eval=f"{PL}/eval.json",
    log:
        f"{R}/logs/pseudo_labels/{{clf}}_gen{{gen}}_{{split}}_{{variant}}_merge.log",
    benchmark:
        f"{R}/benchmarks/pseudo_labels/{{clf}}_gen{{gen}}_{{split}}_{{variant}}_merge.tsv"
    threads: 1
    resources:
        **job_resources(config, "merge_pseudo_labels", mem_mb=1000, runtime=30),
    params:
        code=script_code("merge_pseudo_labels"),
    script:
        "../workflow_scripts/merge_pseudo_labels.py"


rule figure_pseudo_labels:
    """Image, ground truth, Y_crf, Y_ret for a few val images (the report's Fig. 2)."""
    input:
        index=f"{R}/pseudo_labels/{EXP.table3_sets()['bap'].path}/index.json",
        dataset=voc_stamp(),
    output:
        report(
            f"{R}/figures/pseudo_labels.png", category="Stage 2: pseudo labels", caption="../report/pseudo_labels.rst"
        ),
    log:
        f"{R}/logs/figure_pseudo_labels.log",
    benchmark:
        f"{R}/benchmarks/figure_pseudo_labels.tsv"
    threads: 1
    resources:
        **job_resources(config, "figure_pseudo_labels", mem_mb=1000, runtime=10),
    params:
        voc_root=VOC,
        n_images=config["stage2"]["figure_images"],
        code=script_code("figure_pseudo_labels"),
    script:
        "../workflow_scripts/figure_pseudo_labels.py"
