# A user's own boxes to masks (dataset.source: local; config/own_data.yaml): the dataset checked and
# laid out once, one BAP classifier (stage 1), masks in fixed shards (stage 2), merged into
# results/<run>/masks/, an overlay figure, and with ground truth a score table. With
# stage3.segmenter, a DeepLab trained on both pseudo labels writes results/<run>/segmenter_masks/
# the same way. Paths and helpers: rules/common.smk (OWN, own_targets, ...).


rule own_dataset:
    """Check the user's dataset (boxes, classes, images, lists) and write the internal layout."""
    input:
        own_source_files(),
    output:
        directory(OWN),
    log:
        f"{DATA_LOGS}/own_dataset.log",
    benchmark:
        f"{DATA_LOGS}/own_dataset.benchmark.tsv"
    threads: 1
    resources:
        **job_resources(config, "own_dataset", mem_mb=2000, runtime=60),
    params:
        local=OWN_LOCAL,
        code=script_code("own_dataset"),
    script:
        "../workflow_scripts/own_dataset.py"


rule own_train_classifier:
    """Stage 1: the BAP classifier on every image of the user's dataset."""
    input:
        dataset=OWN,
        pretrained=own_pretrained(),
    output:
        f"{R}/classifier/model.pt",
    log:
        f"{R}/logs/own_train_classifier.log",
    benchmark:
        f"{R}/benchmarks/own_train_classifier.tsv"
    threads: config["train_threads"]
    resources:
        **job_resources(config, "own_train_classifier", mem_mb=2000, runtime=60),
        gpu=GPUS,
    params:
        stage1=rule_params.own_classifier(config),
        work_dir=lambda wc, output: str(Path(output[0]).parent),
        device=config["device"],
        seed=config["seed"],
        code=script_code("own_train_classifier"),
    script:
        "../workflow_scripts/own_train_classifier.py"


rule own_masks_shard:
    """Stage 2: the masks (Y_crf or Y_ret) of shard k of n, as PNGs and COCO RLE results."""
    input:
        model=rules.own_train_classifier.output,
        dataset=OWN,
    output:
        directory(f"{OWN_SHARDS}/{{shard}}"),
    log:
        f"{R}/logs/masks/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/masks/{{shard}}.tsv"
    group:
        "pseudo_shards"
    threads: 1
    resources:
        **job_resources(config, "own_masks_shard", mem_mb=2000, runtime=30),
        gpu=GPUS,
    params:
        stage2=rule_params.own_masks(config),
        keep_labels=bool(OWN_SEGMENTER),  # both pseudo labels, for the segmenter
        n_shards=N_OWN_SHARDS,
        device=config["device"],
        code=script_code("own_masks_shard"),
    script:
        "../workflow_scripts/own_masks_shard.py"


rule own_masks:
    """results/<run>/masks/: png/<id>.png, coco_results.json, instances.json, labels.txt."""
    input:
        shards=expand(f"{OWN_SHARDS}/{{shard}}", shard=range(N_OWN_SHARDS)),
        dataset=OWN,
    output:
        directory(f"{R}/masks"),
    log:
        f"{R}/logs/masks/merge.log",
    benchmark:
        f"{R}/benchmarks/masks/merge.tsv"
    threads: 1
    resources:
        **job_resources(config, "own_masks", mem_mb=1000, runtime=30),
    params:
        code=script_code("own_masks"),
    script:
        "../workflow_scripts/own_masks.py"


rule own_scores:
    """With ground truth: the masks (and the segmenter's) against it beside filling the boxes (mIoU
    or COCO segm AP)."""
    input:
        shards=expand(f"{OWN_SHARDS}/{{shard}}", shard=range(N_OWN_SHARDS)),
        segmenter_shards=own_segmenter_shards(),
        dataset=OWN,
    output:
        csv=f"{TABLES}/own_masks.csv",
        md=f"{TABLES}/own_masks.md",
    log:
        f"{R}/logs/masks/scores.log",
    benchmark:
        f"{R}/benchmarks/masks/scores.tsv"
    threads: 1
    resources:
        **job_resources(config, "own_scores", mem_mb=2000, runtime=30),
    params:
        label=config["stage2"]["masks"],
        segmenter=OWN_SEGMENTER,
        code=script_code("own_scores"),
    script:
        "../workflow_scripts/own_scores.py"


rule own_overlay:
    """A few masks over their images, with the boxes."""
    input:
        masks=rules.own_masks.output,
        dataset=OWN,
    output:
        f"{R}/figures/masks.png",
    log:
        f"{R}/logs/masks/overlay.log",
    benchmark:
        f"{R}/benchmarks/masks/overlay.tsv"
    threads: 1
    resources:
        **job_resources(config, "own_overlay", mem_mb=1000, runtime=10),
    params:
        n_images=config["stage2"]["figure_images"],
        code=script_code("own_overlay"),
    script:
        "../workflow_scripts/own_overlay.py"


if OWN_SEGMENTER:

    rule own_train_segmenter:
        """Stage 3: the segmenter stage3.segmenter names, trained on both pseudo labels of every image."""
        input:
            shards=expand(f"{OWN_SHARDS}/{{shard}}", shard=range(N_OWN_SHARDS)),
            dataset=OWN,
            pretrained=own_segmenter_pretrained(),
        output:
            model=f"{OWN_SEG_DIR}/model.pt",
            log_csv=f"{OWN_SEG_DIR}/train_log.csv",
        log:
            f"{R}/logs/own_train_segmenter.log",
        benchmark:
            f"{R}/benchmarks/own_train_segmenter.tsv"
        threads: config["train_threads"]
        resources:
            **job_resources(config, "own_train_segmenter", mem_mb=2000, runtime=60),
            gpu=GPUS,
        params:
            segmenter=OWN_SEGMENTER,
            stage3=rule_params.stage3_train(config, experiments.parse_segmenter(OWN_SEGMENTER)),
            work_dir=lambda wc, output: str(Path(output.model).parent),
            device=config["device"],
            seed=config["seed"],
            code=script_code("own_train_segmenter"),
        script:
            "../workflow_scripts/own_train_segmenter.py"

    rule own_segmenter_shard:
        """Stage 3's masks of shard k of n: prediction (scales, flips) refined by the arch's CRF."""
        input:
            model=rules.own_train_segmenter.output.model,
            dataset=OWN,
        output:
            directory(f"{OWN_SEG_DIR}/shards/{{shard}}"),
        log:
            f"{R}/logs/segmenter_masks/{{shard}}.log",
        benchmark:
            f"{R}/benchmarks/segmenter_masks/{{shard}}.tsv"
        threads: 1
        resources:
            **job_resources(config, "own_segmenter_shard", mem_mb=2000, runtime=30),
            gpu=GPUS,
        params:
            scales=config["stage3"]["eval_scales"],
            flip=config["stage3"]["eval_flip"],
            crf=config["stage3"]["arch"][experiments.parse_segmenter(OWN_SEGMENTER).arch]["crf"],
            n_shards=N_OWN_SHARDS,
            device=config["device"],
            code=script_code("own_segmenter_shard"),
        script:
            "../workflow_scripts/own_segmenter_shard.py"

    rule own_segmenter_masks:
        """results/<run>/segmenter_masks/: the segmenter's masks, as results/<run>/masks/ holds stage 2's."""
        input:
            shards=own_segmenter_shards(),
            dataset=OWN,
        output:
            directory(f"{R}/segmenter_masks"),
        log:
            f"{R}/logs/segmenter_masks/merge.log",
        benchmark:
            f"{R}/benchmarks/segmenter_masks/merge.tsv"
        threads: 1
        resources:
            **job_resources(config, "own_segmenter_masks", mem_mb=1000, runtime=30),
        params:
            code=script_code("own_masks"),
        script:
            "../workflow_scripts/own_masks.py"
