"""Stage-1 head (BAP + classifier) forward + backward: vectorised bap_head vs. a per-image / per-box loop.

One training batch as the paper's: 20 crops of 321 px -> features [20, 1024, 41, 41], about 2.5
boxes per crop, grid 4, roi 2x2. The loop baseline is written the straightforward way (loops over
images, grid cells, prototypes, boxes and bins; grid_sample at roi_align's sample points), and must
give the same logits and input gradients. Prints a table, then ``bap_head_speedup: <x>`` last.

    python benchmarks/bap_head.py [--repeats 5] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from bana_core.bap import bap_head, grid_padding, pool_foreground  # noqa: E402
from bana_core.devices import resolve_device, synchronize  # noqa: E402

CROP, STRIDE_OUT, N, C, L = 321, 41, 20, 1024, 21


def make_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, N)  # 1..4 boxes, mean 2.5
    rows, labels = [], []
    bg_img = np.ones((N, CROP, CROP), np.float32)
    for n, k in enumerate(counts):
        for _ in range(k):
            bw, bh = rng.integers(40, 220, 2)
            x1, y1 = rng.integers(0, CROP - bw), rng.integers(0, CROP - bh)
            rows.append([n, x1, y1, x1 + bw, y1 + bh])
            labels.append(int(rng.integers(1, L)))
            bg_img[n, y1:y1 + bh, x1:x1 + bw] = 0
    boxes = torch.tensor(rows, dtype=torch.float32)
    boxes[:, 1:] *= STRIDE_OUT / CROP  # feature pixels
    bg = F.interpolate(torch.from_numpy(bg_img)[:, None], size=(STRIDE_OUT, STRIDE_OUT), mode="nearest")
    g = torch.Generator().manual_seed(seed)
    feats = torch.relu(torch.randn(N, C, STRIDE_OUT, STRIDE_OUT, generator=g))
    feats += torch.relu(torch.randn(N, C, 1, 1, generator=g))  # a shared component, as real features have
    weight = torch.randn(L, C, generator=g) * 0.01
    return feats, bg, boxes, torch.tensor(labels), weight


# ------------------------------------------------------------------ the loop baseline

def _sample_positions(start: float, size: float, bins: int):
    """roi_align(aligned=True, sampling_ratio=0) sample coordinates of each bin along one axis."""
    n = max(math.ceil(size / bins), 0)
    step = size / bins
    return [[start + b * step + (i + 0.5) * step / n for i in range(n)] for b in range(bins)]


def loop_head(feats, bg, boxes, labels, weight, grid_size=4, roi_size=(2, 2), min_bg_fraction=1 / 8):
    n_img, c, h, w = feats.shape
    g = grid_size
    (pt, pb), (pl, pr) = grid_padding(h, g), grid_padding(w, g)
    ch, cw = (h + pt + pb) // g, (w + pl + pr) // g
    per_image = feats.unbind(0)  # one backward node, not a full-size zero gradient per feats[n]
    protos = []  # per image: list of valid prototypes
    for n in range(n_img):
        f = F.pad(per_image[n] * bg[n], (pl, pr, pt, pb))
        m = F.pad(bg[n], (pl, pr, pt, pb))
        cell_protos = []
        for a in range(g):
            for b in range(g):
                cm = m[:, a * ch:(a + 1) * ch, b * cw:(b + 1) * cw]
                if cm.sum() > 0:
                    cf = f[:, a * ch:(a + 1) * ch, b * cw:(b + 1) * cw]
                    cell_protos.append(cf.sum(dim=(1, 2)) / cm.sum())
        protos.append(cell_protos)
    rows, targets = [], []
    oh, ow = roi_size
    for n in range(n_img):
        reliable = bg[n].mean() > min_bg_fraction
        if reliable and protos[n]:
            fn = F.normalize(per_image[n], dim=0)
            acc = feats.new_zeros(h, w)
            for q in protos[n]:
                acc = acc + F.relu((fn * F.normalize(q, dim=0)[:, None, None]).sum(0))
            att = torch.where(bg[n, 0] >= 0.5, feats.new_ones(h, w), acc / len(protos[n]))
        else:
            att = feats.new_zeros(h, w)
        wmap = (1 - att)[None]
        stack = torch.cat([per_image[n] * wmap, wmap, per_image[n]], 0)[None]  # [1, 2C+1, h, w]
        for k in torch.nonzero(boxes[:, 0] == n)[:, 0].tolist():
            # one grid_sample per box (as the released code), its samples split into the bins after
            _, x1, y1, x2, y2 = boxes[k].tolist()
            ys = feats.new_tensor(_sample_positions(y1 - 0.5, y2 - y1, oh)).clamp(0, h - 1)  # [oh, ny]
            xs = feats.new_tensor(_sample_positions(x1 - 0.5, x2 - x1, ow)).clamp(0, w - 1)  # [ow, nx]
            gy, gx = ys.reshape(-1), xs.reshape(-1)
            grid = torch.stack(torch.broadcast_tensors(gx[None, :] * 2 / (w - 1) - 1,
                                                       gy[:, None] * 2 / (h - 1) - 1), -1)[None]
            s = F.grid_sample(stack, grid, mode="bilinear", align_corners=True)[0]  # [2C+1, oh*ny, ow*nx]
            for by in range(oh):
                for bx in range(ow):
                    ny, nx = ys.shape[1], xs.shape[1]
                    b = s[:, by * ny:(by + 1) * ny, bx * nx:(bx + 1) * nx].mean(dim=(1, 2))
                    num, den, plain = b[:c], b[c], b[c + 1:]
                    rows.append(num / den if den >= 1e-6 else plain)
                    targets.append(int(labels[k]))
    for n in range(n_img):
        for q in protos[n]:
            rows.append(q)
            targets.append(0)
    return torch.stack(rows) @ weight.t(), torch.tensor(targets)


# ------------------------------------------------------------------ timing

def run(fn, feats, weight):
    f = feats.clone().requires_grad_()
    wt = weight.clone().requires_grad_()
    synchronize(f.device)
    t0 = time.perf_counter()
    logits, targets = fn(f, wt)
    loss = F.cross_entropy(logits, targets.to(logits.device))
    loss.backward()
    synchronize(f.device)
    return time.perf_counter() - t0, logits.detach(), targets.to(logits.device), f.grad, wt.grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N]")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    feats, bg, boxes, labels, weight = (t.to(device) for t in make_batch())

    def vec(f, wt):
        return bap_head(f, bg, boxes, labels, wt, grid_size=4, roi_size=(2, 2))

    def loop(f, wt):
        return loop_head(f, bg, boxes, labels, wt)

    ref = run(loop, feats, weight)
    out = run(vec, feats, weight)
    assert torch.equal(ref[2], out[2]), "targets differ"
    for name, a, b in (("logits", out[1], ref[1]), ("d features", out[3], ref[3]), ("d weight", out[4], ref[4])):
        err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
        assert err < 1e-3, f"{name} differ: relative max error {err:.2e}"
    times = {"loop (per image / per box)": [], "bap_head (vectorised)": []}
    for _ in range(args.repeats):
        times["loop (per image / per box)"].append(run(loop, feats, weight)[0])
        times["bap_head (vectorised)"].append(run(vec, feats, weight)[0])
    # the pooling alone, against torchvision's roi_align (whose CPU backward dominates otherwise)
    att = (torch.rand(N, 1, STRIDE_OUT, STRIDE_OUT) * 0.9).to(device)
    for impl in ("matrix", "roi_align"):
        key = f"pool_foreground only, impl={impl}"
        times[key] = []
        for _ in range(args.repeats):
            f = feats.clone().requires_grad_()
            synchronize(device)
            t0 = time.perf_counter()
            pool_foreground(f, att, boxes, (2, 2), impl=impl).sum().backward()
            synchronize(device)
            times[key].append(time.perf_counter() - t0)

    print(f"batch: {N} x {C} x {STRIDE_OUT} x {STRIDE_OUT}, {len(boxes)} boxes, grid 4, roi 2x2, "
          f"{device}, {torch.get_num_threads()} CPU threads, median of {args.repeats}, forward + backward")
    print(f"{'method':<36} {'median ms':>10}")
    for k, v in times.items():
        print(f"{k:<36} {1000 * statistics.median(v):>10.1f}")
    speedup = statistics.median(times["loop (per image / per box)"]) / statistics.median(times["bap_head (vectorised)"])
    print(f"bap_head_speedup: {speedup:.2f}")


if __name__ == "__main__":
    main()
