# Stage 3: DeepLab-V1/V2 on the pseudo labels (NAL and rivals), prediction, CRF, scoring.

SEG = f"{R}/segmenters/{{model}}"


rule train_segmenter:
    """DeepLab-V1 / V2 with one loss (ce_crf, ce_ret, nal, baseline, er, bootstrap), or with CE on
    the ground truth (ce_gt, full supervision: the train_aug split stands in for the labels)."""
    input:
        labels=segmenter_labels,
        dataset=voc_stamp(),
        pretrained=segmenter_pretrained,
    output:
        model=f"{SEG}/model.pt",
        log_csv=f"{SEG}/train_log.csv",  # rewritten in full from the checkpoint on a resume
    log:
        f"{R}/logs/train_segmenter_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/train_segmenter_{{model}}.tsv"
    threads: config["train_threads"]
    resources:
        **job_resources(config, "train_segmenter", mem_mb=2000, runtime=60),
        gpu=GPUS,
    params:
        stage3=lambda wc: rule_params.stage3_train(config, experiments.parse_segmenter(wc.model)),
        voc_root=VOC,
        work_dir=lambda wc: f"{R}/segmenters/{wc.model}",
        device=config["device"],
        seed=config["seed"],
        code=script_code("train_segmenter"),
    script:
        "../workflow_scripts/train_segmenter.py"


rule predict_segmenter:
    """Logits averaged over scales and flips, saved per image for the CRF step."""
    input:
        model=rules.train_segmenter.output.model,
        split=segmentation_split,
    output:
        directory(f"{SEG}/logits/{{segsplit}}"),
    log:
        f"{R}/logs/predict_{{model}}_{{segsplit}}.log",
    benchmark:
        f"{R}/benchmarks/predict_{{model}}_{{segsplit}}.tsv"
    threads: 1
    resources:
        **job_resources(config, "predict_segmenter", mem_mb=2000, runtime=30),
        gpu=GPUS,
    params:
        voc_root=VOC,
        scales=config["stage3"]["eval_scales"],
        flip=config["stage3"]["eval_flip"],
        device=config["device"],
        code=script_code("predict_segmenter"),
    script:
        "../workflow_scripts/predict_segmenter.py"


rule crf_segmenter:
    """Raw argmax and DenseCRF-refined label PNGs (per-arch CRF parameters) from saved logits."""
    input:
        logits=rules.predict_segmenter.output,
        dataset=segmentation_split,
    output:
        directory(f"{SEG}/pred/{{segsplit}}"),
    log:
        f"{R}/logs/crf_{{model}}_{{segsplit}}.log",
    benchmark:
        f"{R}/benchmarks/crf_{{model}}_{{segsplit}}.tsv"
    threads: 1
    resources:
        **job_resources(config, "crf_segmenter", mem_mb=2000, runtime=30),
    params:
        voc_root=VOC,
        crf=lambda wc: config["stage3"]["arch"][experiments.parse_segmenter(wc.model).arch]["crf"],
        code=script_code("crf_segmenter"),
    script:
        "../workflow_scripts/crf_segmenter.py"


rule eval_segmenter:
    """mIoU before and after CRF (a split without ground truth says 'submit')."""
    input:
        pred=rules.crf_segmenter.output,
        dataset=segmentation_split,
    output:
        f"{SEG}/eval_{{segsplit}}.json",
    log:
        f"{R}/logs/eval_{{model}}_{{segsplit}}.log",
    benchmark:
        f"{R}/benchmarks/eval_segmenter_{{model}}_{{segsplit}}.tsv"
    threads: 1
    resources:
        **job_resources(config, "eval_segmenter", mem_mb=1000, runtime=30),
    params:
        voc_root=VOC,
        code=script_code("eval_segmenter"),
    script:
        "../workflow_scripts/eval_segmenter.py"


rule archive_test:
    """Test predictions (CRF) as palette PNGs in the VOC server layout, archived for submission."""
    input:
        f"{SEG}/pred/test",
    output:
        f"{SEG}/{{model}}_comp6_test_cls.tar.gz",
    log:
        f"{R}/logs/archive_test_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/archive_test_{{model}}.tsv"
    threads: 1
    resources:
        **job_resources(config, "archive_test", mem_mb=1000, runtime=30),
    params:
        code=script_code("archive_test"),
    script:
        "../workflow_scripts/archive_test.py"


rule training_curve:
    """Loss parts and lr over iterations of one segmenter."""
    input:
        rules.train_segmenter.output.log_csv,
    output:
        report(
            f"{R}/figures/training/{{model}}.png",
            category="Stage 3: segmentation",
            subcategory="training curves",
            caption="../report/training_curve.rst",
        ),
    log:
        f"{R}/logs/training_curve_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/training_curve_{{model}}.tsv"
    threads: 1
    resources:
        **job_resources(config, "training_curve", mem_mb=1000, runtime=30),
    params:
        code=script_code("training_curve"),
    script:
        "../workflow_scripts/training_curve.py"
