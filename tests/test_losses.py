"""Stage-3 losses: NAL (Eq. 8-12) by hand, its limits and gradients, the rival losses, the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bana_core.errors import ConfigError
from bana_core.loss_registry import LOSSES
from bana_core.losses import (
    baseline_loss,
    bootstrapping_loss,
    build_loss,
    ce_loss,
    entropy_regularized_loss,
    noise_aware_loss,
    noise_confidence,
)

T, DAMP, LAM = 20.0, 7.0, 0.1

# 1 image, 3 classes, 1 x 4 pixels: p0 in S (both 1), p1 and p2 in ~S (crf 2 / ret 0, crf 0 / ret 1),
# p3 void in y_ret (excluded although y_crf says 1).
COS = [[0.2, 0.3, 0.6, 0.9],
       [0.5, -0.4, -0.2, 0.1],
       [-0.1, 0.1, 0.4, -0.5]]
Y_CRF = [[[1, 2, 0, 1]]]
Y_RET = [[[1, 0, 1, 255]]]


def _tiny():
    cos = torch.tensor(COS, dtype=torch.float64).reshape(1, 3, 1, 4)
    return cos, torch.tensor(Y_CRF), torch.tensor(Y_RET)


def _ce(col: int, target: int) -> float:
    z = [T * COS[k][col] for k in range(3)]
    return math.log(sum(math.exp(v) for v in z)) - z[target]


def _sigma(col: int, target: int) -> float:
    d = [1 + COS[k][col] for k in range(3)]
    return (d[target] / max(d)) ** DAMP


def _random(seed=0, n=2, k=5, h=6, w=7, agree=0.7, void=0.1):
    g = torch.Generator().manual_seed(seed)
    cos = torch.rand(n, k, h, w, generator=g, dtype=torch.float64) * 2 - 1
    y_crf = torch.randint(0, k, (n, h, w), generator=g)
    other = torch.randint(0, k, (n, h, w), generator=g)
    y_ret = torch.where(torch.rand(n, h, w, generator=g) < agree, y_crf, other)
    y_crf = torch.where(torch.rand(n, h, w, generator=g) < void, 255, y_crf)
    y_ret = torch.where(torch.rand(n, h, w, generator=g) < void, 255, y_ret)
    return cos, y_crf, y_ret


def test_nal_hand_computed():
    cos, y_crf, y_ret = _tiny()
    l_ce = _ce(0, 1)
    s1, s2 = _sigma(1, 2), _sigma(2, 0)
    assert s2 == pytest.approx(1.0)  # c* = 0 is the argmax at p2
    assert 0 < s1 < 1
    l_wce = (s1 * _ce(1, 2) + s2 * _ce(2, 0)) / (s1 + s2)
    total, parts = noise_aware_loss(cos, y_crf, y_ret, temperature=T, damp=DAMP, lam=LAM, return_parts=True)
    assert total.item() == pytest.approx(l_ce + LAM * l_wce, rel=1e-12)
    assert parts == pytest.approx({"ce": l_ce, "wce": l_wce}, rel=1e-12)
    assert isinstance(parts["ce"], float)


def test_nal_gradient_step_raises_target_cosine():
    cos, y_crf, y_ret = _tiny()
    for detach in (False, True):
        c = cos.clone().requires_grad_(True)
        loss = noise_aware_loss(c, y_crf, y_ret, detach_sigma=detach)
        loss.backward()
        stepped = (c - 0.01 * c.grad).detach()
        assert noise_aware_loss(stepped, y_crf, y_ret, detach_sigma=detach) < loss
        assert stepped[0, 1, 0, 0] > cos[0, 1, 0, 0]  # S pixel: target class 1 up
        assert stepped[0, 0, 0, 0] < cos[0, 0, 0, 0]  # ... the rival class 0 down
        assert c.grad[0, :, 0, 3].abs().sum() == 0  # void pixel: no gradient
    # with sigma detached, the ~S pixel's target (Y_crf = 2) also rises
    assert stepped[0, 2, 0, 1] > cos[0, 2, 0, 1]


def test_nal_equals_ce_when_labels_agree():
    cos, y_crf, _ = _random(1)
    ce = ce_loss(cos, y_crf)
    for lam in (0.0, 0.1, 3.0):
        assert noise_aware_loss(cos, y_crf, y_crf.clone(), lam=lam).item() == pytest.approx(ce.item(), rel=1e-12)
    torch.testing.assert_close(ce, F.cross_entropy(T * cos, y_crf, ignore_index=255))


def test_sigma_range_and_argmax():
    cos, y_crf, _ = _random(2, void=0.0)
    sigma = noise_confidence(cos, y_crf, damp=DAMP)
    assert sigma.shape == y_crf.shape
    assert (sigma > 0).all() and (sigma <= 1).all()
    at_max = cos.argmax(1) == y_crf
    assert at_max.any() and (~at_max).any()
    assert (sigma[at_max] == 1).all()
    assert (sigma[~at_max] < 1).all()
    # larger damp -> smaller weights off the argmax
    assert (noise_confidence(cos, y_crf, damp=15)[~at_max] < sigma[~at_max]).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_void_pixels_never_contribute(name):
    fn = build_loss(name)
    cos, y_crf, y_ret = _random(3, void=0.3)
    void = (y_crf == 255) | (y_ret == 255)
    if name in ("ce_crf", "ce_gt"):  # ce_gt: the trainer passes the ground truth as y_crf (and y_ret)
        void = y_crf == 255
    elif name == "ce_ret":
        void = y_ret == 255
    assert void.any()
    c1 = cos.clone().requires_grad_(True)
    l1, _ = fn(c1, y_crf, y_ret)
    l1.backward()
    other = torch.where(void[:, None], -cos, cos)
    c2 = other.clone().requires_grad_(True)
    l2, _ = fn(c2, y_crf, y_ret)
    l2.backward()
    assert l1.item() == pytest.approx(l2.item(), rel=1e-12)
    mask = void[:, None].expand_as(cos)
    assert c1.grad[mask].abs().max() == 0 and c2.grad[mask].abs().max() == 0
    assert c1.grad[~mask].abs().max() > 0


def _autograd_nal(cos, y_crf, y_ret, detach_sigma=False):
    """Eq. 8-12 composed from autograd ops: the reference for the hand-written backward."""
    valid = (y_crf != 255) & (y_ret != 255)
    s, not_s = valid & (y_crf == y_ret), valid & (y_crf != y_ret)
    target = torch.where(valid, y_crf, 0)
    ce = F.cross_entropy(T * cos, target, reduction="none")
    d = 1 + cos
    sigma = (d.gather(1, target[:, None])[:, 0] / d.amax(1)) ** DAMP
    if detach_sigma:
        sigma = sigma.detach()
    l_ce = ce[s].sum() / s.sum()
    l_wce = (sigma * ce)[not_s].sum() / sigma[not_s].sum()
    return l_ce + LAM * l_wce


@pytest.mark.parametrize("detach", [False, True])
def test_nal_backward_matches_autograd(detach):
    cos, y_crf, y_ret = _random(7, n=2, k=6, h=9, w=8)
    grads = []
    for fn in (noise_aware_loss, _autograd_nal):
        c = cos.clone().requires_grad_(True)
        loss = fn(c, y_crf, y_ret, detach_sigma=detach)
        loss.backward()
        grads.append((loss.detach(), c.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-12, atol=0)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-9, atol=1e-12)
    # and against finite differences, scores away from ties
    small = (cos[:1, :4, :3, :3] * 0.9).clone().requires_grad_(True)
    yc, yr = y_crf[:1, :3, :3] % 4, torch.where(y_ret[:1, :3, :3] == 255, 255, y_ret[:1, :3, :3] % 4)
    assert torch.autograd.gradcheck(lambda c: noise_aware_loss(c, yc, yr, detach_sigma=detach), (small,))


def test_nal_float32_and_half_inputs():
    cos, y_crf, y_ret = _random(8)
    ref = noise_aware_loss(cos, y_crf, y_ret)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 5e-2)):
        c = cos.to(dtype).requires_grad_(True)
        loss = noise_aware_loss(c, y_crf, y_ret)
        loss.backward()
        assert loss.item() == pytest.approx(ref.item(), rel=tol)
        assert c.grad.dtype == dtype and torch.isfinite(c.grad.float()).all()


def test_detach_sigma_changes_gradient_not_value():
    cos, y_crf, y_ret = _random(4)
    grads, values = [], []
    for detach in (False, True):
        c = cos.clone().requires_grad_(True)
        loss = noise_aware_loss(c, y_crf, y_ret, detach_sigma=detach)
        loss.backward()
        values.append(loss.item())
        grads.append(c.grad)
    assert values[0] == values[1]
    assert (grads[0] - grads[1]).abs().max() > 1e-6
    # S-only losses see no difference: the change comes from L_wce alone
    agree = (y_crf == y_ret)[:, None].expand_as(cos)
    torch.testing.assert_close(grads[0][agree], grads[1][agree])


def test_empty_regions_are_zero_not_nan():
    cos, y_crf, _ = _random(5, void=0.0)
    disagree = (y_crf + 1) % cos.shape[1]
    total, parts = noise_aware_loss(cos, y_crf, disagree, return_parts=True)
    assert parts["ce"] == 0.0 and parts["wce"] > 0
    assert total.item() == pytest.approx(LAM * parts["wce"])
    all_void = torch.full_like(y_crf, 255)
    for name in sorted(LOSSES):
        c = cos.clone().requires_grad_(True)
        loss, parts = build_loss(name)(c, all_void, all_void)
        loss.backward()
        assert loss.item() == 0.0 and all(v == 0.0 for v in parts.values())
        assert c.grad.abs().max() == 0


def test_rival_losses_by_hand():
    cos, y_crf, y_ret = _tiny()
    assert baseline_loss(cos, y_crf, y_ret).item() == pytest.approx(_ce(0, 1), rel=1e-12)
    # ce on Y_ret counts p0, p1, p2 (p3 void in y_ret)
    assert ce_loss(cos, y_ret).item() == pytest.approx((_ce(0, 1) + _ce(1, 0) + _ce(2, 1)) / 3, rel=1e-12)
    assert ce_loss(cos, y_crf).item() == pytest.approx((_ce(0, 1) + _ce(1, 2) + _ce(2, 0) + _ce(3, 1)) / 4,
                                                       rel=1e-12)

    def entropy(col):
        z = [T * COS[k][col] for k in range(3)]
        lse = math.log(sum(math.exp(v) for v in z))
        return -sum(math.exp(v - lse) * (v - lse) for v in z)

    er = entropy_regularized_loss(cos, y_crf, y_ret, lam=0.5).item()
    assert er == pytest.approx(_ce(0, 1) + 0.5 * (entropy(1) + entropy(2)) / 2, rel=1e-12)
    beta = 0.8
    boot = bootstrapping_loss(cos, y_crf, y_ret, lam=0.5, beta=beta).item()
    soft = [beta * _ce(c, t) + (1 - beta) * entropy(c) for c, t in ((1, 2), (2, 0))]
    assert boot == pytest.approx(_ce(0, 1) + 0.5 * sum(soft) / 2, rel=1e-12)
    # uniform scores: the entropy is log K
    flat = torch.zeros(1, 3, 1, 4, dtype=torch.float64)
    assert entropy_regularized_loss(flat, y_crf, y_ret, lam=1.0).item() == pytest.approx(2 * math.log(3))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_finite_and_decrease_on_a_tiny_head(name):
    fn = build_loss(name, temperature=10.0, lam=0.5, damp=7, detach_sigma=False, beta=0.95)
    g = torch.Generator().manual_seed(6)
    n, c, k, h, w = 2, 8, 4, 5, 5
    feats = torch.randn(n, c, h, w, generator=g)
    y_crf = torch.randint(0, k, (n, h, w), generator=g)
    y_ret = torch.where(torch.rand(n, h, w, generator=g) < 0.7, y_crf, torch.randint(0, k, (n, h, w), generator=g))
    y_crf[:, 0, 0] = 255
    weight = torch.randn(k, c, generator=g, requires_grad=True)
    opt = torch.optim.SGD([weight], lr=0.5)

    def cosine():
        return torch.einsum("nchw,kc->nkhw", F.normalize(feats, dim=1), F.normalize(weight, dim=1))

    for y2 in (y_crf, torch.full_like(y_crf, 255)):  # all-agree and all-void are finite too
        loss, _ = fn(cosine(), y_crf, y2)
        assert torch.isfinite(loss)
    losses = []
    for _ in range(15):
        loss, parts = fn(cosine(), y_crf, y_ret)
        assert torch.isfinite(loss) and all(math.isfinite(v) for v in parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_build_loss_parts_and_errors():
    cos, y_crf, y_ret = _tiny()
    keys = {"ce_crf": {"ce"}, "ce_ret": {"ce"}, "baseline": {"ce"}, "er": {"ce", "entropy"},
            "bootstrap": {"ce", "bootstrap"}, "nal": {"ce", "wce"}, "ce_gt": {"ce"}}
    assert set(LOSSES) == set(keys)
    settings = {"temperature": T, "lam": LAM, "damp": DAMP, "detach_sigma": False, "beta": 0.95}
    for name, expected in keys.items():
        total, parts = build_loss(name, **settings)(cos, y_crf, y_ret)
        assert set(parts) == expected and total.dim() == 0
    total, _ = build_loss("nal", **settings)(cos, y_crf, y_ret)
    assert total.item() == noise_aware_loss(cos, y_crf, y_ret).item()
    with pytest.raises(ConfigError, match="unknown loss 'focal'.*ce_crf, ce_ret, baseline, er, bootstrap, nal, ce_gt"):
        build_loss("focal")
    with pytest.raises(ConfigError, match="gamma"):
        build_loss("nal", gamma=7)
    with pytest.raises(ConfigError, match="'beta'"):
        build_loss("bootstrap", beta=1.5)
    with pytest.raises(ConfigError, match="'temperature'"):
        build_loss("nal", temperature=0)


def test_label_size_must_match():
    cos, y_crf, y_ret = _tiny()
    with pytest.raises(ValueError, match="upsample"):
        noise_aware_loss(cos, y_crf[..., :2], y_ret[..., :2])
