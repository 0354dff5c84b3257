"""Channels-last conv weights (``bana_core.models.place_model``) vs. PyTorch's default layout.

Times, in one run and on the same inputs, the steps the demo spends its CPU time in:

* ``stage1 train step``: forward + backward of the demo classifier (VGG16 width 1/8, BN, BAP)
  on a batch of 8 crops of 96 px with 2 boxes each;
* ``stage3 v2 train step``: forward + backward of the demo DeepLab-V2 (ResNet-18 width 1/4);
* ``vgg16 forward 500x375``: the full-width stride-8 VGG16 of stage 2 on one VOC-sized image.

Both layouts must give the same outputs (assert close). Prints a table, then
``channels_last_speedup: <x>`` last (the stage-1 training step, the demo's hot loop).

    python benchmarks/channels_last.py [--repeats 10] [--threads 1] [--device cpu]
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
from bana_core.models import build_segmenter, place_model  # noqa: E402
from bana_core.stage1 import build_classifier  # noqa: E402


def stage1_case(device):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 96, 96, generator=g)
    bg = (torch.rand(8, 96, 96, generator=g) > 0.5).float()
    boxes = torch.tensor([[i, 10.0, 10.0, 60.0, 70.0] for i in range(8)]
                         + [[i, 40.0, 30.0, 90.0, 90.0] for i in range(8)])
    labels = torch.randint(1, 21, (16,), generator=g)
    inputs = [t.to(device) for t in (images, bg, boxes, labels)]

    def build():
        torch.manual_seed(0)
        return build_classifier({"width": 0.125, "batch_norm": True}, pool="bap", grid_size=4).train()

    def run(model):
        model.zero_grad(set_to_none=True)
        logits, targets = model(*inputs)
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        return loss.detach()

    return build, run


def stage3_case(device):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, 96, 96, generator=g).to(device)
    target = torch.randint(0, 21, (8, 96, 96), generator=g).to(device)

    def build():
        torch.manual_seed(0)
        return build_segmenter("v2", resnet_depth=18, width=0.25, aspp_rates=(2, 4, 6, 8)).train()

    def run(model):
        model.zero_grad(set_to_none=True)
        logits = model(images)["logits"]
        loss = F.cross_entropy(F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False),
                               target)
        loss.backward()
        return loss.detach()

    return build, run


def vgg_case(device):
    image = torch.randn(1, 3, 375, 500, generator=torch.Generator().manual_seed(2)).to(device)

    def build():
        torch.manual_seed(0)
        return build_classifier({"width": 1.0, "batch_norm": False}, pool="bap", grid_size=1).eval()

    def run(model):
        with torch.no_grad():
            return model.features(image)

    return build, run


def timed(run, model, repeats: int, device) -> tuple[float, torch.Tensor]:
    out = run(model)  # warm-up (kernel selection), not counted
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        out = run(model)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: a demo training job)")
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cases = {"stage1 train step": stage1_case, "stage3 v2 train step": stage3_case,
             "vgg16 forward 500x375": vgg_case}
    print(f"device {device}, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'step':<24}{'default ms':>12}{'channels-last ms':>18}{'speedup':>9}")
    speedups = {}
    for name, make in cases.items():
        build, run = make(device)
        base_ms, base_out = timed(run, build().to(device), args.repeats, device)
        ours_ms, ours_out = timed(run, place_model(build(), device), args.repeats, device)
        torch.testing.assert_close(ours_out, base_out, rtol=1e-3, atol=1e-3)
        speedups[name] = base_ms / ours_ms
        print(f"{name:<24}{base_ms * 1e3:>12.1f}{ours_ms * 1e3:>18.1f}{speedups[name]:>9.2f}")
    print(f"channels_last_speedup: {speedups['stage1 train step']:.2f}")


if __name__ == "__main__":
    main()
