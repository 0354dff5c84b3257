"""Stage-2 cost per image: where the time goes next to the DenseCRF.

One 500 x 375 image, 3 present classes in 4 boxes, 1024-d features at output stride 8 from a
randomly initialised VGG16-DeepLab-like stack (the stage-1 backbone's shape and cost; weights do
not change the cost). Steps: features (backbone forward), setup + attention + unaries +
retrieval (bana_core.pseudo_labels, low-resolution features, never upsampled), CRF
(pydensecrf, 10 iterations), I/O (both label PNGs). Prints a table, then the share without the
backbone, then ``non_crf_share: <(total - crf) / crf>`` last (everything but the CRF, backbone
included, over the CRF time).

    python benchmarks/pseudo_labels.py [--repeats 3] [--threads N]
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
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from bana_core.io import save_label_png  # noqa: E402
from bana_core.pseudo_labels import pseudo_label_parts  # noqa: E402

H, W = 375, 500
BOXES = np.array([[20, 30, 220, 340, 15], [180, 60, 420, 300, 7], [300, 150, 495, 370, 15],
                  [60, 200, 200, 360, 12]])


def vgg_like() -> nn.Module:
    """VGG16 conv1-conv5 (pool4/pool5 stride 1, conv5 dilation 2) + fc6 3x3 -> 1024 + fc7 1x1: stride 8."""
    layers: list[nn.Module] = []
    c_in = 3
    for n_conv, c_out, pool_stride, dil in ((2, 64, 2, 1), (2, 128, 2, 1), (3, 256, 2, 1), (3, 512, 1, 1),
                                            (3, 512, 1, 2)):
        for _ in range(n_conv):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=dil, dilation=dil), nn.ReLU(inplace=True)]
            c_in = c_out
        layers.append(nn.MaxPool2d(3, pool_stride, 1))
    layers += [nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(1024, 1024, 1),
               nn.ReLU(inplace=True)]
    return nn.Sequential(*layers).eval()


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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = make_image()
    backbone = vgg_like()
    weight = torch.randn(21, 1024) * 0.01
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - 0.5
    steps = ("features", "setup", "attention", "unaries", "crf", "retrieval", "io")
    runs: dict[str, list[float]] = {k: [] for k in steps}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for rep in range(args.repeats + 1):  # the first run warms up and is not counted
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            feats = backbone(x)[0]  # [1024, 47, 63]
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
          f"{tuple(feats.shape)}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'step':<12} {'ms':>9} {'/ crf':>7}")
    for k in steps:
        print(f"{k:<12} {1000 * med[k]:>9.1f} {med[k] / crf:>7.3f}")
    print(f"{'total':<12} {1000 * total:>9.1f}")
    print(f"non_crf_share_without_features: {(total - crf - med['features']) / crf:.4f}")
    print(f"non_crf_share: {(total - crf) / crf:.4f}")


if __name__ == "__main__":
    main()
