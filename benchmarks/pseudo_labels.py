"""Stage-2 cost per image: where the time goes next to the DenseCRF.

One 500 x 375 image, 3 present classes in 4 boxes, through the pipeline's own code: the paper's
stage-1 classifier (full-width VGG16-DeepLab, 1024-d fc7, randomly initialised: weights do not
change the cost), features by ``bana_core.stage2.image_features`` on ``--device`` (as the
pseudo_labels rules run it: fp16 autocast on CUDA, the result copied to the CPU), then setup +
attention + unaries + CRF (pydensecrf, 10 iterations) + retrieval (bana_core.pseudo_labels, at
feature resolution, never upsampled), then I/O (both label PNGs). Prints a table, the share
without the backbone, then ``non_crf_share: <(total - crf) / crf>`` last (everything but the
CRF, backbone included, over the CRF time). The CRF always runs on the CPU, so the share depends
on where the backbone runs: the paper config runs it on a GPU.

    python benchmarks/pseudo_labels.py [--repeats 3] [--threads N] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from bana_core.devices import resolve_device  # noqa: E402
from bana_core.io import save_label_png  # noqa: E402
from bana_core.models import place_model  # noqa: E402
from bana_core.pseudo_labels import pseudo_label_parts  # noqa: E402
from bana_core.stage1 import build_classifier  # noqa: E402
from bana_core.stage2 import image_features  # noqa: E402

H, W = 375, 500
BOXES = np.array([[20, 30, 220, 340, 15], [180, 60, 420, 300, 7], [300, 150, 495, 370, 15],
                  [60, 200, 200, 360, 12]])


def make_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    image = np.stack([128 + 60 * np.sin(xx / 40 + c) * np.cos(yy / 30 - c) for c in range(3)], -1)
    for x1, y1, x2, y2, _ in BOXES:  # objects of another colour inside the boxes
        cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
        inside = ((yy - cy) / (0.4 * (y2 - y1))) ** 2 + ((xx - cx) / (0.4 * (x2 - x1))) ** 2 <= 1
        image[inside] = rng.integers(0, 255, 3)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto", help="where the backbone runs: auto (CUDA if present) | cpu | cuda[:N]")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = make_image()
    model = place_model(build_classifier({"width": 1.0, "batch_norm": False}, pool="bap", grid_size=1), device).eval()
    weight = model.classifier_weight.detach().float().cpu()
    steps = ("features", "setup", "attention", "unaries", "crf", "retrieval", "io")
    runs: dict[str, list[float]] = {k: [] for k in steps}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for rep in range(args.repeats + 1):  # the first run warms up and is not counted
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            feats = image_features(model, image, device)  # [1024, 47, 63] on the CPU (copy synchronises)
            t["features"] = time.perf_counter() - t0
            parts = pseudo_label_parts(image, feats, weight, BOXES, grid_size=1, timings=t)
            t0 = time.perf_counter()
            save_label_png(Path(tmp) / "y_crf.png", parts["y_crf"])
            save_label_png(Path(tmp) / "y_ret.png", parts["y_ret"])
            t["io"] = time.perf_counter() - t0
            if rep:
                for k in steps:
                    runs[k].append(t[k])
    med = {k: statistics.median(v) for k, v in runs.items()}
    crf = med["crf"]
    total = sum(med.values())
    print(f"image {W}x{H}, {len(BOXES)} boxes, {len(np.unique(BOXES[:, 4]))} classes, features "
          f"{tuple(feats.shape)}, backbone on {device}, {torch.get_num_threads()} CPU threads, "
          f"median of {args.repeats}")
    print(f"{'step':<12} {'ms':>9} {'/ crf':>7}")
    for k in steps:
        print(f"{k:<12} {1000 * med[k]:>9.1f} {med[k] / crf:>7.3f}")
    print(f"{'total':<12} {1000 * total:>9.1f}")
    print(f"non_crf_share_without_features: {(total - crf - med['features']) / crf:.4f}")
    print(f"non_crf_share: {(total - crf) / crf:.4f}")


if __name__ == "__main__":
    main()
