# Stage 1: (demo) backbone pretraining, then the box classifiers with BAP / GAP.


rule pretrain_set:
    """Demo only: the labelled single-object images both pretrainings read, rendered once."""
    output:
        f"{R}/pretrain/images.npz",
    log:
        f"{R}/logs/pretrain_set.log",
    benchmark:
        f"{R}/benchmarks/pretrain_set.tsv"
    priority: 1
    # Both cores: it is on stage 1's critical path, and when it ends both cores are free, so the
    # 2-thread VGG pretraining (priority 1) starts before the ResNet one instead of waiting for it.
    threads: lambda wc: config["pretrain"]["threads"] or config["train_threads"]
    resources:
        **job_resources(config, "pretrain_set", mem_mb=2000, runtime=30),
    params:
        pretrain_set=lambda wc: rule_params.pretrain_set(config),
        seed=config["seed"],
        code=script_code("pretrain_set"),
    script:
        "../workflow_scripts/pretrain_set.py"


rule shipped_backbone:
    """Demo (pretrain.weights: shipped): the package's pretrained backbone, checksummed, made by
    the config's pretraining recipe (checked when the workflow starts)."""
    input:
        lambda wc: str(shipped_weights.weights_path(wc.net)),
    output:
        f"{R}/pretrain/{{net}}/shipped.pt",
    log:
        f"{R}/logs/shipped_backbone_{{net}}.log",
    benchmark:
        f"{R}/benchmarks/shipped_backbone_{{net}}.tsv"
    wildcard_constraints:
        net="vgg|resnet",
    threads: 1
    resources:
        **job_resources(config, "shipped_backbone", mem_mb=1000, runtime=10),
    params:
        recipe=lambda wc: shipped_weights.recipe(config, wc.net),
        code=script_code("shipped_backbone"),
    script:
        "../workflow_scripts/shipped_backbone.py"


rule pretrain_backbone:
    """Demo only: single-object classification on synthetic images, ImageNet's role."""
    input:
        rules.pretrain_set.output,
    output:
        f"{R}/pretrain/{{net}}/backbone.pt",
    log:
        f"{R}/logs/pretrain_{{net}}.log",
    benchmark:
        f"{R}/benchmarks/pretrain_{{net}}.tsv"
    wildcard_constraints:
        net="vgg|resnet",
    priority: lambda wc: 1 if wc.net == "vgg" else 0
    # Stage 1 waits for the VGG pretraining alone; the ResNet one (stage 3) can run beside it
    threads: lambda wc: (config["pretrain"]["threads"] if wc.net == "vgg" else None) or config["train_threads"]
    resources:
        **job_resources(config, "pretrain_backbone", mem_mb=2000, runtime=60),
        gpu=GPUS,
    params:
        pretrain=lambda wc: rule_params.pretrain(config),  # only a job of this rule needs the block
        backbone=lambda wc: rule_params.pretrain_backbone(config, wc.net),
        work_dir=lambda wc: f"{R}/pretrain/{wc.net}",
        device=config["device"],
        seed=config["seed"],
        code=script_code("pretrain_backbone"),
    script:
        "../workflow_scripts/pretrain_backbone.py"


rule train_classifier:
    """Stage 1: one classifier = pool (bap|gap) x train grid x train set (aug|noaug)."""
    input:
        masks=rules.box_masks.output,
        split=lambda wc: split_input(classifier_train_split(wc)),
        pretrained=pretrained_input(config["stage1"]["backbone"]["pretrained"], "vgg"),
    output:
        f"{R}/classifiers/{{clf}}/model.pt",
    log:
        f"{R}/logs/train_classifier_{{clf}}.log",
    benchmark:
        f"{R}/benchmarks/train_classifier_{{clf}}.tsv"
    threads: config["train_threads"]
    resources:
        **job_resources(config, "train_classifier", mem_mb=2000, runtime=60),
        gpu=GPUS,
    params:
        stage1=rule_params.stage1_train(config),
        split=lambda wc: split_file(classifier_train_split(wc)),
        voc_root=VOC,
        work_dir=lambda wc: f"{R}/classifiers/{wc.clf}",
        device=config["device"],
        seed=config["seed"],
        code=script_code("train_classifier"),
    script:
        "../workflow_scripts/train_classifier.py"


rule eval_classifier:
    """Box classification accuracy on val (BAP-pooled), a check that stage 1 learned."""
    input:
        model=rules.train_classifier.output,
        split=split_input("val"),
    output:
        f"{R}/classifiers/{{clf}}/val_accuracy.json",
    log:
        f"{R}/logs/eval_classifier_{{clf}}.log",
    benchmark:
        f"{R}/benchmarks/eval_classifier_{{clf}}.tsv"
    threads: 1
    resources:
        **job_resources(config, "eval_classifier", mem_mb=2000, runtime=30),
        gpu=GPUS,
    params:
        split=split_file("val"),
        voc_root=VOC,
        device=config["device"],
        code=script_code("eval_classifier"),
    script:
        "../workflow_scripts/eval_classifier.py"
