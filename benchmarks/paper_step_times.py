"""Seconds per training iteration at the paper's shapes (config/voc2012.yaml), for sizing the SLURM
profile's runtime and memory.

Times the three training rules' steps on random tensors (random initialisation: the sizes, not the
weights, set the cost): the stage-1 BAP classifier (VGG-16, grid 4, batch 20, crop 321, two boxes an
image), the V1 segmenter (VGG-16 LargeFOV, batch 20) and the V2 segmenter (ResNet-101 ASPP, batch 10),
both with NAL, under the fp16 autocast and GradScaler that bana_core.train uses on CUDA. Data loading
is left out (the workers run beside the GPU). For each: s/iteration, the whole run's projected hours
(iterations in the config x s/iteration), and peak GPU memory. The baseline is fp32 (no autocast), the
same steps in the same run; the headline is the V2 run's projected hours under autocast.

    python benchmarks/paper_step_times.py --device cuda [--steps 20]
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from bana_core.data.transforms import normalize
from bana_core.losses import build_loss
from bana_core.models import place_model
from bana_core.stage1 import build_classifier
from bana_core.stage3 import predict_logits, segmenter_from_config

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def classifier_case(cfg: dict, device: torch.device):
    s1 = cfg["stage1"]
    model = place_model(build_classifier(s1["backbone"], pool="bap",
                                         grid_size=s1["grid_size"], roi_size=s1["roi_size"],
                                         min_bg_fraction=s1["min_bg_fraction"]), device)
    n, size = s1["batch_size"], s1["crop_size"]
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device)
    bg = torch.ones(n, size, size, device=device)
    bg[:, 60:260, 40:200] = 0
    boxes = torch.tensor([[i, 40.0, 60.0, 200.0, 260.0] for i in range(n)]
                         + [[i, 150.0, 20.0, 300.0, 140.0] for i in range(n)], device=device)
    labels = torch.randint(1, 21, (2 * n,), device=device)

    def loss():
        logits, targets = model(normalize(images), bg, boxes, labels)
        return F.cross_entropy(logits.float(), targets)
    return model, loss, s1["iterations"]


def segmenter_case(cfg: dict, arch: str, device: torch.device):
    s3 = cfg["stage3"]
    arch_cfg = s3["arch"][arch]
    model = place_model(segmenter_from_config(arch, arch_cfg, temperature=s3["temperature"], pretrained=None), device)
    n, size = arch_cfg["batch_size"], s3["crop_size"]
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device)
    y_crf = torch.randint(0, 21, (n, size, size), device=device)
    y_ret = torch.where(torch.rand(n, size, size, device=device) < 0.1, 255, y_crf)
    nal = build_loss("nal", temperature=s3["temperature"], lam=s3["lam"], damp=s3["damp"])

    def loss():
        cosine = model(normalize(images))["cosine"].float()
        cosine = F.interpolate(cosine, size=(size, size), mode="bilinear", align_corners=False)
        return nal(cosine, y_crf, y_ret)[0]
    return model, loss, arch_cfg["iterations"]


def time_steps(model, loss_fn, device: torch.device, *, steps: int, amp: bool) -> tuple[float, float]:
    """(s per step after two warm-up steps, peak GPU GiB)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if amp else None
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    _sync(device)
    per_step = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return per_step, peak


def time_prediction(cfg: dict, arch: str, device: torch.device, *, images: int = 10) -> float:
    """s per VOC-sized image (500 x 375) of predict_segmenter: the config's scales x flips."""
    s3 = cfg["stage3"]
    model = segmenter_from_config(arch, s3["arch"][arch], temperature=s3["temperature"])
    model = place_model(model, device).eval()
    image = torch.randint(0, 256, (375, 500, 3), dtype=torch.uint8).numpy()
    with torch.no_grad():
        for i in range(images + 1):
            if i == 1:
                _sync(device)
                t0 = time.perf_counter()
            predict_logits(model, image, scales=s3["eval_scales"], flip=s3["eval_flip"], device=device)
    _sync(device)
    return (time.perf_counter() - t0) / images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config" / "voc2012.yaml"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    if device.type == "cuda":
        print("device:", torch.cuda.get_device_name(device), "| torch", torch.__version__)
    cases = {"train_classifier (bap-g4)": lambda: classifier_case(cfg, device),
             "train_segmenter v1": lambda: segmenter_case(cfg, "v1", device),
             "train_segmenter v2": lambda: segmenter_case(cfg, "v2", device)}
    headline = None
    for name, make in cases.items():
        for amp in (False, True) if device.type == "cuda" else (False,):
            model, loss_fn, iterations = make()
            per_step, peak = time_steps(model, loss_fn, device, steps=args.steps, amp=amp)
            hours = per_step * iterations / 3600
            print(f"{name:26s} {'fp16 autocast' if amp else 'fp32 baseline':14s} {per_step:7.3f} s/it  "
                  f"x {iterations} it = {hours:6.2f} h   peak GPU {peak:5.1f} GiB", flush=True)
            headline = hours
            del model, loss_fn
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for arch in ("v1", "v2"):
        per_image = time_prediction(cfg, arch, device)
        print(f"predict_segmenter {arch}: {per_image:.3f} s/image (500 x 375, scales {cfg['stage3']['eval_scales']}, "
              f"flip {cfg['stage3']['eval_flip']}) = {per_image * 1449 / 60:.1f} min for VOC val (1449)")
    print(f"host peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    print(f"v2_projected_hours: {headline:.2f}")


if __name__ == "__main__":
    main()
