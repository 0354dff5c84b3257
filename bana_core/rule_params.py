"""The config keys each rule's job reads, chosen by inclusion.

Rules pass these dicts as params, so a change to a key reruns exactly the jobs that read it: a
key added to a config block reruns nothing until some code reads it (and is added here). Each
list names what the bana_core function behind the rule reads; keep them in step with that code
(a key missing here fails the job with a KeyError: tests/test_workflow.py runs every rule on them).
"""

from __future__ import annotations

from .experiments import Segmenter

# bana_core.stage1.train_classifier (+ the script's backbone.pretrained); the grid comes from
# the classifier's name, and grid_sizes / trainsets only choose which classifiers exist.
STAGE1_TRAIN_KEYS = ("backbone", "roi_size", "min_bg_fraction", "crop_size", "batch_size", "iterations", "lr",
                     "momentum", "weight_decay", "lr_steps", "lr_gamma", "augment", "checkpoint_every")
# bana_core.data.synthetic.write_pretrain_set (rule pretrain_set: rendered once for both
# backbones) and bana_core.stage1.pretrain_backbone (the schedule), and the backbone's shape.
PRETRAIN_SET_KEYS = ("n_per_class", "image_size", "clutter")
PRETRAIN_KEYS = ("iterations", "batch_size", "lr")
PRETRAIN_BACKBONE_KEYS = {"vgg": ("width", "batch_norm"), "resnet": ("depth", "width")}
# bana_core.stage3.train_segmenter, for every segmenter; lam and damp only when the segmenter
# does not carry its own (the Fig. 3 grid), see bana_core.stage3.loss_params.
STAGE3_TRAIN_KEYS = ("crop_size", "momentum", "weight_decay", "lr_power", "warmup", "classifier_lr_mult", "temperature",
                     "detach_sigma", "bootstrap_beta", "augment", "checkpoint_every")
# The arch block as training reads it (and stores in the weights' meta for prediction); its
# `crf` belongs to the CRF step (rule crf_segmenter).
ARCH_TRAIN_KEYS = {"v1": ("width", "batch_norm", "fc6_dilation", "dropout", "pretrained", "lr", "batch_size",
                          "iterations"),
                   "v2": ("depth", "aspp_rates", "width", "feat_dim", "pretrained", "lr", "batch_size", "iterations")}
# bana_core.stage2.generate_shard (its grid comes from the label set's name) and
# bana_core.voc_to_coco.generate_coco_shard (the default generation grid).
STAGE2_SHARD_KEYS = ("bg_threshold", "crf")
COCO_SHARD_KEYS = ("grid_size", "bg_threshold", "crf")
# A user's own data (dataset.source: local): one BAP classifier at stage 1's grid, and
# bana_core.own_masks.masks_shard (which pseudo label becomes the mask).
OWN_CLASSIFIER_KEYS = (*STAGE1_TRAIN_KEYS, "grid_size")
OWN_MASKS_KEYS = ("grid_size", "bg_threshold", "crf", "masks")


def pick(block: dict, keys) -> dict:
    """``{k: block[k]}`` for ``keys``: a KeyError names a key the config lacks."""
    return {k: block[k] for k in keys}


def stage1_train(config: dict) -> dict:
    return pick(config["stage1"], STAGE1_TRAIN_KEYS)


def pretrain_set(config: dict) -> dict:
    return pick(config["pretrain"], PRETRAIN_SET_KEYS)


def pretrain(config: dict) -> dict:
    return pick(config["pretrain"], PRETRAIN_KEYS)


def pretrain_backbone(config: dict, net: str) -> dict:
    """The backbone a pretraining builds: stage 1's VGG16, or the ResNet of DeepLab-V2."""
    block = config["stage1"]["backbone"] if net == "vgg" else config["stage3"]["arch"]["v2"]
    return pick(block, PRETRAIN_BACKBONE_KEYS[net])


def stage3_train(config: dict, seg: Segmenter) -> dict:
    """Exactly the stage-3 keys one segmenter's training reads (its own arch block only)."""
    s3 = config["stage3"]
    out = pick(s3, STAGE3_TRAIN_KEYS)
    if seg.lam is None:
        out["lam"] = s3["lam"]
    if seg.damp is None:
        out["damp"] = s3["damp"]
    out["arch"] = {seg.arch: pick(s3["arch"][seg.arch], ARCH_TRAIN_KEYS[seg.arch])}
    return out


def stage2_shard(config: dict) -> dict:
    return pick(config["stage2"], STAGE2_SHARD_KEYS)


def coco_shard(config: dict) -> dict:
    return pick(config["stage2"], COCO_SHARD_KEYS)


def own_classifier(config: dict) -> dict:
    return pick(config["stage1"], OWN_CLASSIFIER_KEYS)


def own_masks(config: dict) -> dict:
    return pick(config["stage2"], OWN_MASKS_KEYS)
