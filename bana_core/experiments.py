"""Which experiments the tables need, and how they are named.

A classifier is ``{pool}-g{grid}-{trainset}`` (e.g. ``bap-g4-aug``); a pseudo-label set is a
classifier x generation grid x split x variant; a segmenter is ``{arch}-{loss}`` or, for the
lambda/damp grid of Fig. 3, ``v1-nal-lam{lam}-damp{damp}``. Only what some table needs is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .loss_registry import LOSSES, losses_in

POOLS = ("bap", "gap")
TRAINSETS = ("aug", "noaug")
ARCHS = ("v1", "v2")
CLASSIFIER_RE = rf"({'|'.join(POOLS)})-g(\d+)-({'|'.join(TRAINSETS)})"
# the losses of the registry (bana_core.loss_registry), longest first so none stops at a prefix
SEGMENTER_RE = (rf"({'|'.join(ARCHS)})-({'|'.join(sorted(LOSSES, key=len, reverse=True))})"
                r"(-lam[0-9.]+-damp[0-9.]+)?")
# ce_gt: the same segmenter and recipe trained on the ground truth, the reference box-supervised
# papers judge against ("x % of full supervision"; Table 5 and the health checks).
FULL_SUPERVISION = "ce_gt"
LOSSES_TABLE5 = losses_in("table5")
LOSSES_TABLE7 = losses_in("table7")


@dataclass(frozen=True)
class LabelSet:
    classifier: str
    gen_grid: int
    split: str
    variant: str  # std | nou0 | agnostic

    @property
    def path(self) -> str:
        return f"{self.classifier}/gen{self.gen_grid}/{self.split}/{self.variant}"

    @property
    def eval_file(self) -> str:
        """Its scores (rule merge_pseudo_labels), relative to results/<run>/."""
        return f"pseudo_labels/{self.path}/eval.json"


@dataclass(frozen=True)
class SegmenterEval:
    """One segmenter scored on one split (rule eval_segmenter)."""

    model: str
    split: str = "val"

    @property
    def eval_file(self) -> str:
        return f"segmenters/{self.model}/eval_{self.split}.json"


@dataclass(frozen=True)
class CocoEval:
    """A classifier's VOC-to-COCO pseudo labels scored with COCOeval (rule coco_eval)."""

    classifier: str

    @property
    def eval_file(self) -> str:
        return f"coco/{self.classifier}/eval.json"


@dataclass(frozen=True)
class Segmenter:
    arch: str
    loss: str
    lam: float | None = None
    damp: float | None = None

    @property
    def full_supervision(self) -> bool:
        """Trains on the train_aug ground truth instead of pseudo labels."""
        return self.loss == FULL_SUPERVISION

    @property
    def name(self) -> str:
        base = f"{self.arch}-{self.loss}"
        if self.lam is None:
            return base
        return f"{base}-lam{_fmt(self.lam)}-damp{_fmt(self.damp)}"


def _fmt(x: float) -> str:
    return f"{x:g}"


def parse_classifier(name: str) -> tuple[str, int, str]:
    m = re.fullmatch(CLASSIFIER_RE, name)
    if not m:
        raise ValueError(f"not a classifier name: {name!r}")
    return m.group(1), int(m.group(2)), m.group(3)


def parse_segmenter(name: str) -> Segmenter:
    m = re.fullmatch(rf"({'|'.join(ARCHS)})-([a-z0-9_]+?)(?:-lam([0-9.]+)-damp([0-9.]+))?", name)
    if not m:
        raise ValueError(f"not a segmenter name: {name!r}")
    lam = float(m.group(3)) if m.group(3) else None
    damp = float(m.group(4)) if m.group(4) else None
    return Segmenter(m.group(1), m.group(2), lam, damp)


def train_split(trainset: str) -> str:
    """The split a classifier trained on ``trainset`` is scored on as 'train' (Table 8)."""
    return "train_aug" if trainset == "aug" else "train"


# The config keys that decide which experiments exist (Experiments reads only these).
EXPERIMENT_KEYS = {"stage1": ("grid_size", "grid_sizes", "trainsets"), "stage2": ("grid_size", "gen_grid_sizes"),
                   "stage3": ("fig3_lambdas", "fig3_damps"), "coco": ("enabled",),
                   "dataset": ("source", "voc_test_archive")}


def experiment_settings(config: dict) -> dict:
    """The part of ``config`` that ``Experiments`` reads: enough to rebuild it inside a job."""
    return {block: {k: config[block][k] for k in keys} for block, keys in EXPERIMENT_KEYS.items()}


class Experiments:
    """Everything the tables need for one config (or its ``experiment_settings``)."""

    def __init__(self, config: dict):
        s1, s2, s3 = config["stage1"], config["stage2"], config["stage3"]
        self.grid = s1["grid_size"]
        self.gen = s2["grid_size"]
        self.grid_sizes = list(s1["grid_sizes"])
        self.gen_grid_sizes = list(s2["gen_grid_sizes"])
        self.trainsets = list(s1["trainsets"])
        self.default_classifier = f"bap-g{self.grid}-aug"
        self.lambdas = list(s3["fig3_lambdas"])
        self.damps = list(s3["fig3_damps"])
        self.coco = bool(config.get("coco", {}).get("enabled", False))
        dataset = config.get("dataset", {})
        # Real VOC 2012 test images need a login (dataset.voc_test_archive); synthetic data has its own.
        self.test_images = dataset.get("source") == "synthetic" or bool(dataset.get("voc_test_archive"))

    # --- stage 1 -------------------------------------------------------------------------
    def classifier(self, pool: str, trainset: str = "aug", grid: int | None = None) -> str:
        return f"{pool}-g{self.grid if grid is None else grid}-{trainset}"

    def classifiers(self) -> list[str]:
        names = {self.classifier("bap", "aug", g) for g in self.grid_sizes}
        names |= {self.classifier(p, t) for p in ("bap", "gap") for t in self.trainsets}
        names.add(self.classifier("gap"))
        return sorted(names)

    # --- stage 2 -------------------------------------------------------------------------
    def label_set(self, classifier: str, split: str, variant: str = "std", gen: int | None = None) -> LabelSet:
        return LabelSet(classifier, self.gen if gen is None else gen, split, variant)

    def training_labels(self) -> LabelSet:
        """The pseudo labels stage 3 trains on: default classifier and generation grid."""
        return self.label_set(self.default_classifier, "train_aug")

    def table3_sets(self) -> dict[str, LabelSet]:
        return {
            "gap": self.label_set(self.classifier("gap"), "val"),
            "bap_nou0": self.label_set(self.default_classifier, "val", "nou0"),
            "bap": self.label_set(self.default_classifier, "val"),
        }

    def table6_sets(self) -> dict[tuple[int, int], LabelSet]:
        return {
            (g, gen): self.label_set(self.classifier("bap", "aug", g), "val", "std", gen)
            for g in self.grid_sizes for gen in self.gen_grid_sizes
        }

    def table8_sets(self) -> dict[tuple[str, str, str, str], LabelSet]:
        """(pool, variant, trainset, scored split) -> label set."""
        out = {}
        for pool in ("gap", "bap"):
            for variant in ("nou0", "std"):
                for t in self.trainsets:
                    for which, split in (("train", train_split(t)), ("val", "val")):
                        out[(pool, variant, t, which)] = self.label_set(self.classifier(pool, t), split, variant)
        return out

    def table9_sets(self) -> dict[str, LabelSet]:
        return {
            "cam": self.label_set(self.default_classifier, "train_aug", "std"),
            "agnostic": self.label_set(self.default_classifier, "train_aug", "agnostic"),
        }

    def label_sets(self) -> list[LabelSet]:
        sets = set(self.table3_sets().values()) | set(self.table6_sets().values())
        sets |= set(self.table8_sets().values()) | set(self.table9_sets().values())
        sets.add(self.training_labels())
        return sorted(sets, key=lambda s: s.path)

    # --- stage 3 -------------------------------------------------------------------------
    def table5_models(self) -> dict[tuple[str, str], str]:
        return {(a, loss): Segmenter(a, loss).name for a in ARCHS for loss in LOSSES_TABLE5}

    def table7_models(self) -> dict[str, str]:
        return {loss: Segmenter("v1", loss).name for loss in LOSSES_TABLE7}

    def fig3_models(self) -> dict[tuple[float, float], str]:
        return {(lam, d): Segmenter("v1", "nal", lam, d).name for d in self.damps for lam in self.lambdas}

    def segmenters(self) -> list[str]:
        names = set(self.table5_models().values()) | set(self.table7_models().values())
        names |= set(self.fig3_models().values())
        return sorted(names)
