"""The world's method-independent statistics, against which it is calibrated
(docs/synthetic_world.md): the box-fill baseline on val, objects per image, labels present in
val, and the foreground share of val's labelled pixels (VOC 2012 val: about 25 %). It lives
above the data layer because it scores the world with ``evaluation.box_fill_miou``.

    python -m bana_core.world_calibration config/config.yaml --seeds 0,1,2

renders ``dataset.synthetic`` of the config once per seed (into a temporary folder) and prints
one JSON line per seed. Nothing here looks at the method's results, by design.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from .classes import IGNORE_INDEX
from .config import load_yaml
from .data.synthetic import World, synthesize
from .data.voc import VocLayout, load_label, read_split
from .evaluation import box_fill_miou

_SIZES = ("image_size", "n_train", "n_val", "n_test", "n_sbd_only", "n_coco")


def foreground_share(voc_root: Path, image_ids) -> float:
    """Share of the labelled (not void) pixels of ``image_ids``' ground truth that are not
    background: how much of the images the objects cover."""
    layout = VocLayout(Path(voc_root))
    counts = np.zeros(256, dtype=np.int64)
    for image_id in image_ids:
        counts += np.bincount(load_label(layout.label_path(image_id)).ravel(), minlength=256)
    labelled = counts.sum() - counts[IGNORE_INDEX]
    return float((labelled - counts[0]) / labelled) if labelled else float("nan")


def world_statistics(settings: dict, seed: int, workdir: Path) -> dict:
    """Synthesize ``settings`` (a ``dataset.synthetic`` block) with ``seed`` under ``workdir``
    and measure it: box-fill mIoU on val (percent), objects per image (val, and all VOC-layout
    images), the labels present in val, the foreground share of val's labelled pixels (percent),
    and what the world drew (summary["world"]["voc"])."""
    world = World.from_settings(settings)
    sizes = {k: settings[k] for k in _SIZES}
    sizes["image_size"] = tuple(sizes["image_size"])
    root = Path(workdir) / f"seed{seed}"
    summary = synthesize(root, seed=seed, world=world, progress=False, **sizes)
    voc = root / "VOCdevkit" / "VOC2012"
    val_ids = read_split(voc / "ImageSets" / "Segmentation" / "val.txt")
    box_fill = box_fill_miou(voc, val_ids)
    splits = [s for s in ("train", "val", "test", "sbd_only") if summary["counts"][s]]
    n_images = sum(summary["counts"][s] for s in splits)
    return {
        "seed": seed,
        "box_fill_val": round(100 * box_fill["miou"], 1),
        "objects_per_image_val": summary["objects_per_image"]["val"],
        "objects_per_image_voc": round(sum(summary["objects_per_image"][s] * summary["counts"][s]
                                           for s in splits) / n_images, 3),
        "labels_in_val": len(summary["labels_in_val"]),
        "foreground_share_val": round(100 * foreground_share(voc, val_ids), 1),
        "world": summary["world"]["voc"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a config whose dataset.synthetic block is measured")
    parser.add_argument("--seeds", default="0", help="comma-separated dataset seeds (default 0)")
    args = parser.parse_args(argv)
    settings = load_yaml(args.config)["dataset"]["synthetic"]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            print(json.dumps(world_statistics(settings, seed, Path(tmp))), flush=True)


if __name__ == "__main__":  # pragma: no cover
    main()
