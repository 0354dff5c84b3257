"""Noise-aware loss forward + backward: vectorised ``noise_aware_loss`` vs. a per-class Python loop.

One stage-3 training batch as the paper's DeepLab-V1: 20 crops of 321 px, 21 classes, scores
upsampled to label size -> cosine [20, 21, 321, 321] uniform in [-1, 1]; Y_crf random with 5%
void, Y_ret agreeing with it on ~70% of pixels and 5% void of its own. The loop baseline follows
Eq. 8 and 11 literally (sum over classes c of the pixels of S_c and ~S_c, boolean indexing per
class) and must give the same loss and input gradient. Prints a table, then ``nal_speedup: <x>``
last.

    python benchmarks/nal.py [--repeats 3] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from bana_core.devices import resolve_device, synchronize  # noqa: E402
from bana_core.losses import ce_loss, noise_aware_loss  # noqa: E402

N, K, S, IGNORE = 20, 21, 321, 255
T, DAMP, LAM = 20.0, 7.0, 0.1


def make_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cos = torch.rand(N, K, S, S, generator=g) * 2 - 1
    y_crf = torch.randint(0, K, (N, S, S), generator=g)
    other = torch.randint(0, K, (N, S, S), generator=g)
    y_ret = torch.where(torch.rand(N, S, S, generator=g) < 0.7, y_crf, other)
    y_crf = torch.where(torch.rand(N, S, S, generator=g) < 0.05, IGNORE, y_crf)
    y_ret = torch.where(torch.rand(N, S, S, generator=g) < 0.05, IGNORE, y_ret)
    return cos, y_crf, y_ret


# ------------------------------------------------------------------ the loop baseline

def loop_nal(cos, y_crf, y_ret, temperature=T, damp=DAMP, lam=LAM, ignore_index=IGNORE):
    """Eq. 8-12 class by class: S_c / ~S_c are the pixels of S / ~S labelled c in Y_crf."""
    logp = F.log_softmax(temperature * cos, dim=1)
    d = 1 + cos
    d_max = d.max(dim=1).values
    valid = (y_crf != ignore_index) & (y_ret != ignore_index)
    agree = valid & (y_crf == y_ret)
    disagree = valid & (y_crf != y_ret)
    ce_sum, n_s = cos.new_zeros(()), 0
    wce_num, wce_den = cos.new_zeros(()), cos.new_zeros(())
    for c in range(cos.shape[1]):
        s_c = agree & (y_crf == c)
        ns_c = disagree & (y_crf == c)
        logp_c = logp[:, c]
        ce_sum = ce_sum - logp_c[s_c].sum()
        n_s += int(s_c.sum())
        sigma_c = (d[:, c][ns_c] / d_max[ns_c]) ** damp
        wce_num = wce_num - (sigma_c * logp_c[ns_c]).sum()
        wce_den = wce_den + sigma_c.sum()
    return ce_sum / max(n_s, 1) + lam * wce_num / wce_den


# ------------------------------------------------------------------ timing

def run(fn, cos, y_crf, y_ret):
    c = cos.clone().requires_grad_()
    synchronize(c.device)
    t0 = time.perf_counter()
    loss = fn(c, y_crf, y_ret)
    loss.backward()
    synchronize(c.device)
    return time.perf_counter() - t0, loss.detach(), c.grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N]")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cos, y_crf, y_ret = (t.to(device) for t in make_batch())

    methods = {
        "loop (per class)": loop_nal,
        "noise_aware_loss (vectorised)": lambda c, a, b: noise_aware_loss(c, a, b, temperature=T, damp=DAMP, lam=LAM),
        "ce_loss on Y_crf (reference)": lambda c, a, b: ce_loss(c, a, temperature=T),
    }
    _, ref_loss, ref_grad = run(methods["loop (per class)"], cos, y_crf, y_ret)
    _, loss, grad = run(methods["noise_aware_loss (vectorised)"], cos, y_crf, y_ret)
    rel = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    assert rel < 1e-5, f"loss differs: {loss.item()} vs loop {ref_loss.item()} (relative {rel:.1e})"
    grad_err = (grad - ref_grad).abs().max().item() / ref_grad.abs().max().item()
    assert grad_err < 1e-4, f"gradients differ: relative max error {grad_err:.2e}"

    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            times[name].append(run(fn, cos, y_crf, y_ret)[0])

    agree = ((y_crf == y_ret) & (y_crf != IGNORE)).float().mean().item()
    print(f"batch: cosine {N} x {K} x {S} x {S}, {100 * agree:.1f}% of pixels in S, "
          f"{device}, {torch.get_num_threads()} CPU threads, median of {args.repeats}, forward + backward")
    print(f"loss {loss.item():.6f} (loop {ref_loss.item():.6f}), gradient max relative error {grad_err:.1e}")
    print(f"{'method':<34} {'median ms':>10}")
    for k, v in times.items():
        print(f"{k:<34} {1000 * statistics.median(v):>10.1f}")
    speedup = statistics.median(times["loop (per class)"]) / statistics.median(times["noise_aware_loss (vectorised)"])
    print(f"nal_speedup: {speedup:.2f}")


if __name__ == "__main__":
    main()
