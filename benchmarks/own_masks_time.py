"""Masks from your own boxes: how long each step takes per 1,000 images (README, "Masks from your
own boxes").

Runs the library path of the own-data rules on a synthetic dataset in the VOC layout (``--n-images``
images around ``--image-size``): the dataset check and internal layout (rule own_dataset), stage 1's
BAP classifier (rule own_train_classifier: ``--iterations`` timed, projected to the template's
8,000), and the masks (rule own_masks_shard: features on ``--device``, DenseCRF on the CPU, PNG and
RLE writing). The backbone is a VGG16 of ``--width`` (1.0: the paper's and config/own_data.yaml's;
0.125: the demo's), randomly initialised: the weights do not change the cost. The baseline, in
the same run, is filling the boxes (what the masks are scored against). Prints a table, then
``masks_s_per_1000_images: <seconds>`` last.

    python benchmarks/own_masks_time.py [--device cpu|cuda] [--width 1.0] [--image-size 500 375]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from bana_core.config import load_config  # noqa: E402
from bana_core.data.own import OwnLayout, read_voc_dataset, write_own_dataset  # noqa: E402
from bana_core.data.synthetic import synthesize  # noqa: E402
from bana_core.data.voc import read_voc_xml  # noqa: E402
from bana_core.devices import resolve_device  # noqa: E402
from bana_core.evaluation import box_fill_label  # noqa: E402
from bana_core.io import save_label_png  # noqa: E402
from bana_core.own_masks import masks_shard  # noqa: E402
from bana_core.settings import own_classifier, own_masks  # noqa: E402
from bana_core.stage1 import classifier_from_weights, train_classifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--image-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    ap.add_argument("--n-images", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = load_config(ROOT / "config" / "own_data.yaml", ROOT / "config" / "schema.yaml")  # with defaults
    stage1 = own_classifier(config)
    stage1["backbone"] = {**stage1["backbone"], "width": args.width, "pretrained": None}
    planned_iterations = stage1["iterations"]
    stage1.update(iterations=args.iterations, checkpoint_every=args.iterations)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "world", image_size=tuple(args.image_size), n_train=args.n_images, n_val=0, n_test=0,
                   n_sbd_only=0, n_coco=0, seed=0, progress=False)
        voc = tmp / "world" / "VOCdevkit" / "VOC2012"
        (voc / "ImageSets" / "Main").mkdir(parents=True)
        train_ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text()
        (voc / "ImageSets" / "Main" / "all.txt").write_text(train_ids)

        t0 = time.perf_counter()
        write_own_dataset(read_voc_dataset(voc, "all"), tmp / "own", progress=False)
        t_dataset = time.perf_counter() - t0
        own = OwnLayout.open(tmp / "own")
        ids = own.image_ids

        t0 = time.perf_counter()
        train_classifier(voc_root=own.voc.root, image_ids=ids, pool="bap", grid_size=stage1["grid_size"], cfg=stage1,
                         pretrained=None, out=tmp / "model.pt", work_dir=tmp / "clf", device=device, seed=0,
                         progress=False, class_names=own.class_names)
        t_iteration = (time.perf_counter() - t0) / args.iterations
        model = classifier_from_weights(tmp / "model.pt", device)

        t0 = time.perf_counter()
        for image_id in ids:  # the baseline: every box filled with its class
            ann = read_voc_xml(own.voc.annotation_path(image_id), class_names=own.class_names)
            save_label_png(tmp / "fill" / f"{image_id}.png", box_fill_label(ann.height, ann.width, ann.boxes()))
        t_fill = time.perf_counter() - t0

        t0 = time.perf_counter()
        meta = masks_shard(model=model, dataset_dir=tmp / "own", image_ids=ids, cfg=own_masks(config),
                           out_dir=tmp / "shard", device=device, progress=False)
        t_masks = time.perf_counter() - t0

    per_1000 = 1000 / len(ids)
    print(f"{len(ids)} images around {args.image_size[0]} x {args.image_size[1]}, VGG16 width {args.width}, "
          f"device {device}, {args.threads} CPU threads")
    print(f"{'step':<44}{'seconds per 1,000 images':>26}")
    print(f"{'dataset check + layout (own_dataset)':<44}{t_dataset * per_1000:>26.0f}")
    print(f"{'box fill (baseline)':<44}{t_fill * per_1000:>26.0f}")
    print(f"{'masks (own_masks_shard)':<44}{t_masks * per_1000:>26.0f}")
    for key, value in meta["timings_s"].items():
        print(f"{'  of which ' + key:<44}{value * per_1000:>26.0f}")
    print(f"stage 1: {t_iteration:.3f} s/iteration at batch {stage1['batch_size']}, crop {stage1['crop_size']}: "
          f"{t_iteration * planned_iterations / 3600:.2f} h for the template's {planned_iterations} iterations "
          "(independent of the image count)")
    print(f"masks_s_per_1000_images: {t_masks * per_1000:.0f}")


if __name__ == "__main__":
    main()
