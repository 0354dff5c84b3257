"""GPU readiness: the same inputs on the CPU and on CUDA give the same results.

BAP head (values and gradients, fp32 and under fp16 autocast), pseudo labels, NAL, a few training
steps of the stage-1 classifier and the stage-3 DeepLab through the shared loop (which trains
with fp16 autocast and a GradScaler on CUDA), stage-2 features under autocast, and the GPU
allocator with the devices this process sees. Marked ``gpu``; skipped where
``torch.cuda.is_available()`` is false. ``benchmarks/gpu_check.sh`` runs them with the demo and
the benchmarks on CUDA.

Tolerances: fp32 CUDA kernels sum in another order than the CPU ones (matmuls here are not TF32:
PyTorch's default), so fp32 results agree to ~1e-5; fp16 autocast to ~1e-2 relative.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs CUDA (torch.cuda.is_available() is false)")]

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    return torch.device("cuda")


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-5, what: str = "") -> None:
    torch.testing.assert_close(a.detach().float().cpu(), b.detach().float().cpu(), rtol=rtol, atol=atol, msg=what)


# -- BAP head ------------------------------------------------------------------------------------


def _bap_inputs(seed: int = 0):
    """3 images of 17 x 21 feature pixels; image 1 is covered by one box (no background)."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = 3, 32, 17, 21
    features = torch.randn(n, c, h, w, generator=g)
    boxes = torch.tensor([[0, 2.0, 3.0, 12.0, 15.0], [0, 8.0, 1.0, 21.0, 9.0], [1, 0.0, 0.0, 21.0, 17.0],
                          [2, 4.5, 6.0, 10.0, 16.5], [2, 12.0, 2.0, 19.0, 7.0]])
    labels = torch.tensor([3, 7, 1, 3, 15])
    bg = torch.ones(n, h, w)
    for b, x1, y1, x2, y2 in boxes.tolist():
        bg[int(b), int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = 0
    weight = torch.randn(21, c, generator=g)
    return features, bg, boxes, labels, weight


@pytest.mark.parametrize("pool", ["bap", "gap"])
def test_bap_head_cpu_equals_cuda(cuda, pool):
    from bana_core.bap import bap_head

    features, bg, boxes, labels, weight = _bap_inputs()
    out = []
    for dev in (CPU, cuda):
        f = features.to(dev).requires_grad_(True)
        wt = weight.to(dev).requires_grad_(True)
        logits, targets = bap_head(f, bg.to(dev), boxes.to(dev), labels.to(dev), wt, grid_size=3, pool=pool)
        probe = torch.linspace(-1, 1, logits.numel(), device=dev).reshape(logits.shape)
        (logits * probe).sum().backward()
        out.append((logits, targets, f.grad, wt.grad))
    (l_cpu, t_cpu, gf_cpu, gw_cpu), (l_gpu, t_gpu, gf_gpu, gw_gpu) = out
    assert l_gpu.device.type == "cuda" and l_cpu.shape == l_gpu.shape
    assert torch.equal(t_cpu, t_gpu.cpu())
    _close(l_cpu, l_gpu, what="logits")
    _close(gf_cpu, gf_gpu, what="feature gradient")
    _close(gw_cpu, gw_gpu, rtol=1e-4, atol=1e-4, what="weight gradient")


def test_bap_pooling_matrix_equals_roi_align_on_cuda(cuda):
    from bana_core.bap import background_attention, pool_foreground

    features, bg, boxes, _, _ = _bap_inputs(1)
    f, b = features.to(cuda), boxes.to(cuda)
    attention = background_attention(f, bg.to(cuda), grid_size=2)
    _close(pool_foreground(f, attention, b, impl="matrix"), pool_foreground(f, attention, b, impl="roi_align"))


def test_bap_head_under_autocast(cuda):
    # as in training: the backbone hands fp16 features to the head inside torch.autocast
    from bana_core.bap import bap_head

    features, bg, boxes, labels, weight = _bap_inputs(2)
    args = (bg.to(cuda), boxes.to(cuda), labels.to(cuda), weight.to(cuda))
    ref, _ = bap_head(features.to(cuda), *args, grid_size=2)
    f16 = features.to(cuda).half().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.float16):
        bg16 = args[0].half()
        logits, _ = bap_head(f16, bg16, args[1].half(), args[2], args[3], grid_size=2)
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
    scale = float(ref.abs().max())
    _close(logits, ref, rtol=2e-2, atol=2e-2 * scale, what="fp16 logits")
    F.cross_entropy(logits.float(), torch.zeros(len(logits), dtype=torch.int64, device=cuda)).backward()
    assert f16.grad is not None and torch.isfinite(f16.grad).all()


# -- pseudo labels --------------------------------------------------------------------------------


def _tensors(parts: dict) -> dict:
    return {k: v for k, v in parts.items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("grid_size,align,use_u0,seen", [(1, False, True, None), (2, True, True, [5]),
                                                         (3, False, False, None), (2, False, False, [9])])
def test_pseudo_labels_cpu_equals_cuda(cuda, grid_size, align, use_u0, seen):
    from bana_core.pseudo_labels import pseudo_label_parts

    rng = np.random.default_rng(grid_size)
    image = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    low = torch.from_numpy(rng.normal(0.5, 1.0, (16, 6, 8)).astype(np.float32))  # backbone-size features
    weight = torch.from_numpy(rng.normal(0, 1, (21, 16)).astype(np.float32))
    boxes = np.array([[3, 2, 30, 40, 5], [20, 10, 58, 30, 9], [40, 25, 61, 45, 5]])
    kw = dict(grid_size=grid_size, crf=None, align_corners=align, use_u0=use_u0, seen_classes=seen)
    a = pseudo_label_parts(image, low, weight, boxes, **kw)
    b = pseudo_label_parts(image, low.to(cuda), weight.to(cuda), boxes, **kw)
    assert b["corr"].device.type == "cuda"
    for key, value in _tensors(a).items():
        _close(value, b[key], what=key)
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    for key in ("y_crf", "y_ret"):  # argmaxes: a near-tie may flip at a pixel or two, no more
        assert (a[key] == b[key]).mean() > 0.999, key


def test_pseudo_labels_with_crf_cpu_equals_cuda_on_a_clear_scene(cuda):
    from test_pseudo_labels import BOXES, _scene

    from bana_core.pseudo_labels import pseudo_label_parts

    image, feats, weight, gt = _scene()
    a = pseudo_label_parts(image, feats, weight, BOXES)
    b = pseudo_label_parts(image, feats.to(cuda), weight.to(cuda), BOXES)
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-4)
    assert np.array_equal(a["y_crf"], b["y_crf"]) and np.array_equal(a["y_ret"], b["y_ret"])


def test_stage2_features_under_autocast(cuda):
    # stage 2 runs the backbone with fp16 autocast on CUDA and the label math on the CPU
    from bana_core.models import place_model
    from bana_core.stage1 import build_classifier
    from bana_core.stage2 import image_features

    torch.manual_seed(0)
    model = build_classifier({"width": 0.125, "batch_norm": True}, pool="bap", grid_size=2).eval()
    image = np.random.default_rng(0).integers(0, 256, (75, 100, 3), dtype=np.uint8)
    ref = image_features(place_model(model, CPU), image, CPU)
    got = image_features(place_model(model, cuda), image, cuda)
    assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == ref.shape
    scale = float(ref.abs().max())
    _close(got, ref, rtol=2e-2, atol=2e-2 * scale, what="fp16 features")


# -- NAL ------------------------------------------------------------------------------------------


def _nal_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cosine = torch.rand(2, 21, 33, 29, generator=g) * 2 - 1
    y_crf = torch.randint(0, 21, (2, 33, 29), generator=g)
    y_ret = torch.where(torch.rand(2, 33, 29, generator=g) < 0.7, y_crf, torch.randint(0, 21, (2, 33, 29), generator=g))
    y_crf[torch.rand(2, 33, 29, generator=g) < 0.05] = 255
    y_ret[torch.rand(2, 33, 29, generator=g) < 0.05] = 255
    return cosine, y_crf, y_ret


@pytest.mark.parametrize("detach_sigma", [False, True])
def test_noise_aware_loss_cpu_equals_cuda(cuda, detach_sigma):
    from bana_core.losses import noise_aware_loss

    cosine, y_crf, y_ret = _nal_inputs()
    out = []
    for dev in (CPU, cuda):
        c = cosine.to(dev).requires_grad_(True)
        total, parts = noise_aware_loss(c, y_crf.to(dev), y_ret.to(dev), detach_sigma=detach_sigma,
                                        return_parts=True)
        total.backward()
        out.append((total, parts, c.grad))
    (t_cpu, p_cpu, g_cpu), (t_gpu, p_gpu, g_gpu) = out
    assert t_gpu.device.type == "cuda"
    _close(t_cpu, t_gpu, what="loss")
    assert p_cpu == pytest.approx(p_gpu, rel=1e-5)
    _close(g_cpu, g_gpu, rtol=1e-4, atol=1e-5 * float(g_cpu.abs().max()), what="gradient")


def test_noise_aware_loss_inside_autocast_stays_fp32(cuda):
    # stage 3 computes the loss inside the autocast block, on cosines cast back to fp32
    from bana_core.losses import noise_aware_loss

    cosine, y_crf, y_ret = (t.to(cuda) for t in _nal_inputs(1))
    cosine = cosine.half().float()  # what an fp16 forward hands on
    ref = noise_aware_loss(cosine, y_crf, y_ret)
    with torch.autocast("cuda", dtype=torch.float16):
        got = noise_aware_loss(cosine, y_crf, y_ret)
    assert got.dtype == torch.float32
    _close(got, ref, rtol=1e-5, atol=1e-6, what="loss under autocast")  # no op of it drops to fp16


# -- training steps -------------------------------------------------------------------------------


def _train_both(cuda, build, make_batch, loss_of, iterations: int = 4):
    """Run the shared loop on the CPU (fp32) and on CUDA (fp16 autocast + GradScaler) from the same
    weights and batches; returns per device (history, update = final - initial weights)."""
    from bana_core.models import place_model
    from bana_core.train import TrainSpec, train

    torch.manual_seed(0)
    model = build()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batches = [make_batch(i) for i in range(iterations)]
    out = []
    for dev in (CPU, cuda):
        m = build()
        m.load_state_dict(init)
        for mod in m.modules():  # the CPU and CUDA generators draw different dropout masks
            if isinstance(mod, torch.nn.modules.dropout._DropoutNd):
                mod.p = 0.0
        m = place_model(m, dev)
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)

        def step(model, batch, dev=dev):
            return loss_of(model, {k: v.to(dev) for k, v in batch.items()}), {}

        spec = TrainSpec(iterations=iterations, lr=1e-3, lr_factor=lambda it: 1.0, seed=0, progress=False)
        history = train(m, opt, lambda start: batches[start:], step, spec, dev)
        update = torch.cat([(p.detach().cpu() - init[k]).flatten() for k, p in m.named_parameters()])
        out.append(([row["loss"] for row in history], update))
    (h_cpu, u_cpu), (h_gpu, u_gpu) = out
    assert len(h_cpu) == len(h_gpu) == iterations and all(np.isfinite(h_gpu))
    # iteration 0 runs on identical weights: the fp16 forward alone separates the two
    assert h_gpu[0] == pytest.approx(h_cpu[0], rel=2e-2)
    assert h_gpu == pytest.approx(h_cpu, rel=5e-2)
    # the GradScaler's scaling is undone and the steps go the same way (a step it skips on an
    # overflow would shorten the update, not turn it)
    assert float(u_gpu.norm()) > 0
    assert 0.3 < float(u_gpu.norm() / u_cpu.norm()) < 1.5
    assert float(F.cosine_similarity(u_cpu, u_gpu, dim=0)) > 0.9


def test_stage1_training_steps_cpu_vs_cuda(cuda):
    from bana_core.data.transforms import normalize
    from bana_core.stage1 import build_classifier

    def build():
        return build_classifier({"width": 0.125, "batch_norm": True}, pool="bap", grid_size=2)

    def make_batch(i):
        g = torch.Generator().manual_seed(100 + i)
        images = torch.randint(0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8)
        boxes = torch.tensor([[0, 4, 4, 40, 36], [1, 10, 20, 60, 60], [2, 0, 0, 30, 64], [3, 16, 8, 56, 48],
                              [3, 2, 40, 20, 62]], dtype=torch.float32)
        bg = torch.ones(4, 64, 64)
        for b, x1, y1, x2, y2 in boxes.int().tolist():
            bg[b, y1:y2, x1:x2] = 0
        return {"images": images, "bg_mask": bg, "boxes": boxes, "labels": torch.tensor([3, 7, 1, 3, 12])}

    def loss_of(model, batch):  # stage1.train_classifier's step
        logits, targets = model(normalize(batch["images"]), batch["bg_mask"], batch["boxes"], batch["labels"])
        return F.cross_entropy(logits.float(), targets)

    _train_both(cuda, build, make_batch, loss_of)


def test_stage3_training_steps_cpu_vs_cuda(cuda):
    from bana_core.data.transforms import normalize
    from bana_core.losses import noise_aware_loss
    from bana_core.models.deeplab import resize_bilinear
    from bana_core.stage3 import segmenter_from_config

    def build():
        return segmenter_from_config("v2", {"depth": 18, "width": 0.125, "aspp_rates": [2, 4, 6, 8]}, temperature=20)

    def make_batch(i):
        g = torch.Generator().manual_seed(200 + i)
        images = torch.randint(0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8)
        y_crf = torch.zeros(4, 64, 64, dtype=torch.int64)
        y_crf[:, 16:48, 8:40] = torch.tensor([3, 7, 1, 12])[:, None, None]
        y_ret = y_crf.clone()
        y_ret[:, 16:24] = 0
        y_crf[:, :2] = 255
        return {"images": images, "y_crf": y_crf, "y_ret": y_ret}

    def loss_of(model, batch):  # stage3.train_segmenter's step
        cosine = model(normalize(batch["images"]))["cosine"].float()
        cosine = resize_bilinear(cosine, batch["y_crf"].shape[-2:])
        return noise_aware_loss(cosine, batch["y_crf"], batch["y_ret"])

    _train_both(cuda, build, make_batch, loss_of)


# -- the GPU allocator ----------------------------------------------------------------------------

_LEASE_SCRIPT = """
import json, os
from bana_core.gpu_lease import job_gpu
from bana_core.devices import resolve_device
before = os.environ.get("CUDA_VISIBLE_DEVICES")
with job_gpu("cuda"):
    import torch  # CUDA initialises inside the lease, as in a workflow job
    dev = resolve_device("auto")
    x = torch.arange(4.0, device=dev)
    inside = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "count": torch.cuda.device_count(),
              "device": str(x.device), "sum": float(x.sum())}
print(json.dumps({"before": before, "inside": inside, "after": os.environ.get("CUDA_VISIBLE_DEVICES")}))
"""


def _visible_entries() -> list[str]:
    from bana_core.gpu_lease import cuda_visible_entries as parse

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return parse(visible) if visible is not None else [str(i) for i in range(torch.cuda.device_count())]


def test_job_lease_runs_on_one_visible_device(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env.update(BANA_GPU_LOCK_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _LEASE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["inside"]["visible"] in _visible_entries()  # one of the devices this process sees
    assert got["inside"]["count"] == 1 and got["inside"]["device"] == "cuda:0" and got["inside"]["sum"] == 6.0
    assert got["after"] == got["before"]  # the lease restores the variable
    assert list(tmp_path.glob("gpu*.lock")), "no lock file: the lease did not arbitrate"


def test_leases_cover_every_visible_device_once(tmp_path, monkeypatch):
    from bana_core.devices import resolve_device
    from bana_core.gpu_lease import GpuLockTimeout, acquire_gpu

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)  # under SLURM a grant is used as is, unlocked
    env_before = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = _visible_entries()
    leases = [acquire_gpu(lock_dir=tmp_path, timeout=5, poll=0.01, set_env=False) for _ in entries]
    try:
        got = [lease.acquire() for lease in leases]
        assert len(set(got)) == len(entries)  # each visible device leased once
        with pytest.raises(GpuLockTimeout, match="no free GPU"):
            acquire_gpu(lock_dir=tmp_path, timeout=0.2, poll=0.01, set_env=False).acquire()
    finally:
        for lease in leases:
            lease.release()
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == env_before
    n = torch.cuda.device_count()
    assert resolve_device(f"cuda:{n - 1}") == torch.device("cuda", n - 1)
    from bana_core.errors import ConfigError

    with pytest.raises(ConfigError, match=f"only {n} CUDA device"):
        resolve_device(f"cuda:{n}")
