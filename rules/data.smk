# Datasets: download (or synthesize) -> train_aug -> background masks from boxes.


rule synthesize:
    """The embedded demo dataset, in the public VOC / SBD / COCO layouts, from a seed."""
    output:
        f"{DATA}/synthetic_summary.json",
    log:
        f"{DATA_LOGS}/synthesize.log",
    benchmark:
        f"{DATA_LOGS}/synthesize.benchmark.tsv"
    priority: 1  # on stage 1's critical path, ahead of the ResNet pretraining
    threads: 2
    resources:
        **job_resources(config, "synthesize", mem_mb=2000, runtime=30),
    params:
        settings=config["dataset"]["synthetic"],
        code=script_code("synthesize"),
    script:
        "../workflow_scripts/synthesize.py"


rule download:
    """Fetch one public archive (resumable, MD5-checked) and extract it safely into data/."""
    output:
        f"{DATA}/manifests/{{archive}}.json",
    log:
        f"{DATA_LOGS}/download_{{archive}}.log",
    benchmark:
        f"{DATA_LOGS}/download_{{archive}}.benchmark.tsv"
    retries: 3
    threads: 1
    resources:
        **job_resources(config, "download", mem_mb=1000, runtime=600),
    params:
        spec=lambda wc: config["dataset"]["download"][wc.archive],
        data_dir=lambda wc, output: str(Path(output[0]).parents[1]),
        code=script_code("download"),
    script:
        "../workflow_scripts/download.py"


rule voc_test:
    """VOC 2012 test images need a login: extract the archive the user gives in config."""
    output:
        f"{DATA}/manifests/voc_test.json",
    log:
        f"{DATA_LOGS}/voc_test.log",
    benchmark:
        f"{DATA_LOGS}/voc_test.benchmark.tsv"
    resources:
        **job_resources(config, "voc_test", mem_mb=2000, runtime=60),
    params:
        archive=config["dataset"]["voc_test_archive"],
        data_dir=lambda wc, output: str(Path(output[0]).parents[1]),
        code=script_code("voc_test"),
    script:
        "../workflow_scripts/voc_test.py"


rule build_train_aug:
    """SBD cls/*.mat -> SegmentationClassAug PNGs; train_aug = SBD train+val + VOC train - VOC val."""
    input:
        voc=voc_stamp(),
        sbd=sbd_stamp(),
    output:
        split=f"{VOC}/ImageSets/Segmentation/train_aug.txt",
        summary=f"{DATA}/manifests/train_aug.json",
    log:
        f"{DATA_LOGS}/build_train_aug.log",
    benchmark:
        f"{DATA_LOGS}/build_train_aug.benchmark.tsv"
    priority: 1  # on stage 1's critical path, ahead of the ResNet pretraining
    threads: 2
    resources:
        **job_resources(config, "build_train_aug", mem_mb=2000, runtime=60),
    params:
        voc_root=lambda wc, output: str(Path(output.split).parents[2]),
        sbd_root=SBD,
        expected=config["dataset"]["expected_train_aug"],
        code=script_code("build_train_aug"),
    script:
        "../workflow_scripts/build_train_aug.py"


rule box_masks:
    """BgMaskfromBoxes/<id>.png (1 outside every box, 0 inside) for train_aug, train and val."""
    input:
        train_aug=rules.build_train_aug.output.split,
    output:
        f"{DATA}/manifests/box_masks.json",
    log:
        f"{DATA_LOGS}/box_masks.log",
    benchmark:
        f"{DATA_LOGS}/box_masks.benchmark.tsv"
    priority: 1  # on stage 1's critical path, ahead of the ResNet pretraining
    threads: 1
    resources:
        **job_resources(config, "box_masks", mem_mb=2000, runtime=60),
    params:
        voc_root=lambda wc, input: str(Path(input.train_aug).parents[2]),
        splits=["train_aug", "train", "val"],
        code=script_code("box_masks"),
    script:
        "../workflow_scripts/box_masks.py"


rule data:
    """Every dataset target of this config (`snakemake --cores 2 data`)."""
    input:
        rules.box_masks.output,
        coco_stamps() if config["coco"]["enabled"] else [],
