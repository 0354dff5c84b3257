# torchvision's ImageNet weights (pretrained: imagenet), for the paper's stages and a user's own data.


rule imagenet_weights:
    """torchvision's ImageNet weights of one backbone (pretrained: imagenet), fetched once into
    data/imagenet/checkpoints/ (SHA-256 prefix of the name checked), on the submitting host: the
    training jobs read the file and never need the network."""
    output:
        f"{IMAGENET_HUB}/checkpoints/{{weights_file}}",
    log:
        f"data/logs/imagenet_{{weights_file}}.log",
    benchmark:
        f"data/logs/imagenet_{{weights_file}}.benchmark.tsv"
    retries: 3
    threads: 1
    resources:
        **job_resources(config, "imagenet_weights", mem_mb=1000, runtime=60),
    params:
        url=lambda wc: imagenet_url_of_file(wc.weights_file),
        hub=lambda wc, output: str(Path(output[0]).parents[1]),
        code=script_code("imagenet_weights"),
    script:
        "../workflow_scripts/imagenet_weights.py"
