# VOC-to-COCO (Table 4): class-agnostic pseudo labels on COCO train2017, segm AP.

COCO_OUT = f"{R}/coco/{{clf}}"
N_COCO_SHARDS = config["coco"]["n_shards"]
COCO_ANNOTATIONS = f"{COCO}/annotations/instances_train2017.json"
COCO_IMAGES = f"{COCO}/train2017"


rule coco_index:
    """Read the COCO annotation file (and probe for grayscale images) once for all shards."""
    input:
        coco=coco_stamps(),
    output:
        f"{R}/coco/index.npz",
    log:
        f"{R}/logs/coco/index.log",
    benchmark:
        f"{R}/benchmarks/coco/index.tsv"
    threads: 1
    resources:
        **job_resources(config, "coco_index", mem_mb=2000, runtime=30),
    params:
        annotations=COCO_ANNOTATIONS,
        images=COCO_IMAGES,
        drop_grayscale=config["dataset"]["coco_drop_grayscale"],
        code=script_code("coco_index"),
    script:
        "../workflow_scripts/coco_index.py"


rule coco_pseudo_labels_shard:
    """Pseudo labels + instance results for shard k of the COCO images (VOC classifier)."""
    input:
        model=f"{R}/classifiers/{{clf}}/model.pt",
        index=rules.coco_index.output,
        coco=coco_stamps(),
    output:
        directory(f"{COCO_OUT}/shards/{{shard}}"),
    log:
        f"{R}/logs/coco/{{clf}}_{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/coco/{{clf}}_{{shard}}.tsv"
    group:
        "pseudo_shards"
    threads: 1
    resources:
        **job_resources(config, "coco_pseudo_labels_shard", mem_mb=2000, runtime=30),
        gpu=GPUS,
    params:
        cfg=rule_params.coco_shard(config),
        images=COCO_IMAGES,
        n_shards=N_COCO_SHARDS,
        max_images=config["coco"]["max_images"],
        device=config["device"],
        code=script_code("coco_pseudo_labels_shard"),
    script:
        "../workflow_scripts/coco_pseudo_labels_shard.py"


rule coco_eval:
    """COCOeval (segm): AP, AP50, AP75, AP_S, AP_M, AP_L of Y_crf and Y_ret."""
    input:
        shards=expand(f"{COCO_OUT}/shards/{{shard}}", shard=range(N_COCO_SHARDS), allow_missing=True),
        coco=coco_stamps(),
    output:
        f"{COCO_OUT}/eval.json",
    log:
        f"{R}/logs/coco/{{clf}}_eval.log",
    benchmark:
        f"{R}/benchmarks/coco/{{clf}}_eval.tsv"
    threads: 1
    resources:
        **job_resources(config, "coco_eval", mem_mb=2000, runtime=30),
    params:
        annotations=COCO_ANNOTATIONS,
        code=script_code("coco_eval"),
    script:
        "../workflow_scripts/coco_eval.py"
