# Shared helpers: config validation, paths, experiment lists, code-version params.
import sys
from pathlib import Path

from bana_core import experiments
from bana_core.config import validate_config
from bana_core.errors import ConfigError
from bana_core.workflow_utils import code_version

try:
    _validated = validate_config(config, workflow.source_path("../config/schema.yaml"))
except ConfigError as _err:
    sys.exit(f"Configuration error: {_err}")
config.clear()
config.update(_validated)

RUN = config["run"]
R = f"results/{RUN}"
DATA = f"data/{config['dataset']['name']}"
VOC = f"{DATA}/VOCdevkit/VOC2012"
SBD = f"{DATA}/benchmark_RELEASE/dataset"
COCO = f"{DATA}/coco"
DATA_LOGS = f"data/logs/{config['dataset']['name']}"
SYNTHETIC = config["dataset"]["source"] == "synthetic"
GPUS = config["gpus_per_job"]
EXP = experiments.Experiments(config)


wildcard_constraints:
    archive="voc_trainval|sbd|coco_train|coco_annotations",
    clf=experiments.CLASSIFIER_RE,
    gen=r"\d+",
    split="train_aug|train|val",
    variant="std|nou0|agnostic",
    shard=r"\d+",
    model=experiments.SEGMENTER_RE,
    segsplit="val|test",


def voc_stamp():
    """The file whose existence means VOC trainval is in place."""
    return f"{DATA}/synthetic_summary.json" if SYNTHETIC else f"{DATA}/manifests/voc_trainval.json"


def sbd_stamp():
    return f"{DATA}/synthetic_summary.json" if SYNTHETIC else f"{DATA}/manifests/sbd.json"


def coco_stamps():
    if SYNTHETIC:
        return [f"{DATA}/synthetic_summary.json"]
    return [f"{DATA}/manifests/coco_train.json", f"{DATA}/manifests/coco_annotations.json"]


def voc_test_stamp():
    return f"{DATA}/synthetic_summary.json" if SYNTHETIC else f"{DATA}/manifests/voc_test.json"


def gpu_resources():
    return GPUS


def paper_results(table):
    """The published numbers of one table, when the config asks to show them."""
    if not config["show_paper_results"]:
        return {}
    import yaml

    with open(workflow.source_path("../config/paper_results.yaml")) as f:
        return yaml.safe_load(f).get(table, {})


def split_file(split):
    return f"{VOC}/ImageSets/Segmentation/{split}.txt"


def split_input(split):
    """What makes a split list exist: build_train_aug for train_aug, the dataset itself otherwise."""
    if split == "train_aug":
        return split_file(split)
    return voc_test_stamp() if split == "test" else voc_stamp()
