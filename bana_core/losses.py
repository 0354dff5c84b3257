"""Stage-3 losses on a cosine classifier: the noise-aware loss (NAL, Eq. 8-12) and its rivals.

Every loss takes ``cosine`` = cos(phi(p), W_c) as a Tensor[N, K, H, W] in [-1, 1] (logits are
``temperature * cosine``) and integer label maps [N, H, W] (0 = background, 255 = void). The
labels must have the spatial size of ``cosine``: the caller upsamples its scores to label size
first (bilinear keeps cosines in [-1, 1]); a size mismatch raises ValueError.

Regions (as the released code): S = pixels where Y_crf == Y_ret, with target Y_crf; ~S = pixels
where they differ. A pixel that is void in either label is in neither. A term over an empty
region is 0 (never NaN), so a batch without disagreement trains on L_ce alone.

Which losses exist, their parameters and the tables they appear in: the registry,
``bana_core.loss_registry``. ``build_loss(name, **params)`` gives the trainer one signature for
all of them: ``loss(cosine, y_crf, y_ret) -> (total, parts)`` with ``parts`` detached floats.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .classes import IGNORE_INDEX
from .errors import ConfigError
from .loss_registry import LOSSES, validate_params

Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------
# shared pieces


def _check(cosine: Tensor, *labels: Tensor) -> tuple[Tensor, ...]:
    if cosine.dim() != 4:
        raise ValueError(f"cosine must be [N, K, H, W], got shape {tuple(cosine.shape)}")
    out = []
    for y in labels:
        if y.shape != cosine.shape[:1] + cosine.shape[2:]:
            raise ValueError(f"labels of shape {tuple(y.shape)} do not match cosine {tuple(cosine.shape)}: "
                             "upsample the scores to label size before the loss")
        out.append(y.long())
    return tuple(out)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (with a zero gradient) when the mask is empty."""
    return torch.where(mask, values, 0).sum() / mask.sum().clamp_min(1)


def _regions(y_crf: Tensor, y_ret: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    valid = (y_crf != ignore_index) & (y_ret != ignore_index)
    agree = y_crf == y_ret
    return valid & agree, valid & ~agree


def _pixel_ce(logits: Tensor, target: Tensor, valid: Tensor, ignore_index: int) -> Tensor:
    """Per-pixel CE [N,H,W]; 0 where not ``valid`` (those pixels get no gradient)."""
    target = torch.where(valid, target, ignore_index)
    return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")


def _floats(**parts: Tensor) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in parts.items()}


def _ratio(d_star: Tensor, d_max: Tensor) -> Tensor:
    """D_{c*} / max_c D_c per pixel. All D_c = 0 means every class ties at cos = -1: c* is an
    argmax, ratio 1 (no 0/0)."""
    ok = d_max > 0
    return torch.where(ok, d_star / torch.where(ok, d_max, 1), 1)


def noise_confidence(cosine: Tensor, y: Tensor, *, damp: float = 7, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """sigma of Eq. 10, [N,H,W]: ((1 + cos_{c*}) / max_c (1 + cos_c)) ** damp with c* = ``y``.

    In [0, 1], exactly 1 where c* is an argmax of the cosine; void pixels get an arbitrary value
    (the losses mask them). D_c = 1 + cos (Eq. 9) is clamped at 0 against rounding below -1.
    """
    cos_star = cosine.gather(1, torch.where(y == ignore_index, 0, y).long().unsqueeze(1)).squeeze(1)
    return _ratio((1 + cos_star).clamp_min(0), (1 + cosine.amax(1)).clamp_min(0)).pow(damp)


class _NoiseAwareLoss(torch.autograd.Function):
    """Eq. 8-12 with a hand-written backward.

    Autograd through log_softmax, gather, max and the masks materialises about ten full
    [N,K,H,W] tensors (zeros to scatter into, masks, products); here forward and backward make
    one each: exp(T cos - T max cos), and the gradient T (softmax - onehot) * dL/dCE plus the two
    sigma terms scattered at c* and at the argmax (they cancel where c* is the argmax).
    """

    @staticmethod
    def forward(ctx, cosine, y, s, not_s, temperature, damp, lam, detach_sigma):
        # Half-precision input is summed in float32; float64 stays float64 (gradcheck).
        x = cosine if cosine.dtype in (torch.float32, torch.float64) else cosine.float()
        cmax, cidx = x.max(1)
        y = y.unsqueeze(1)
        cos_star = x.gather(1, y).squeeze(1)
        e = (x * temperature).sub_((temperature * cmax).unsqueeze(1)).exp_()  # in (0, 1]
        sumexp = e.sum(1)
        ce = temperature * (cmax - cos_star) + sumexp.log()  # logsumexp(T cos) - T cos_{c*}

        n_s = s.sum().clamp_min(1)
        l_ce = torch.where(s, ce, 0).sum() / n_s
        d_star, d_max = 1 + cos_star, 1 + cmax
        r = _ratio(d_star.clamp_min(0), d_max.clamp_min(0))
        sigma = torch.where(not_s, r.pow(damp), 0)
        den = sigma.sum()
        has_wce = den > 0
        den_safe = torch.where(has_wce, den, 1)
        l_wce = torch.where(has_wce, (sigma * ce).sum() / den_safe, 0)
        total = l_ce + lam * l_wce

        # dL/dCE per pixel, and dL/dcos at c* and at the argmax through sigma.
        w = s.to(ce.dtype) / n_s + (lam / den_safe) * sigma
        g_star = torch.zeros_like(ce)
        g_max = torch.zeros_like(ce)
        if not detach_sigma and damp != 0:
            dl_dr = torch.where(not_s, (lam / den_safe) * (ce - l_wce) * damp * r.pow(damp - 1), 0)
            ok = d_max > 0
            inv = 1 / torch.where(ok, d_max, 1)
            g_star = torch.where(ok & (d_star > 0), dl_dr * inv, 0)
            g_max = torch.where(ok, -dl_dr * r * inv, 0)
        ctx.save_for_backward(e, sumexp, y, cidx, w, g_star, g_max)
        ctx.temperature, ctx.in_dtype = temperature, cosine.dtype
        parts = torch.stack([l_ce, l_wce]).detach()
        ctx.mark_non_differentiable(parts)
        return total, parts

    @staticmethod
    def backward(ctx, grad_total, grad_parts):
        e, sumexp, y, cidx, w, g_star, g_max = ctx.saved_tensors
        t = ctx.temperature
        grad = e * (t * w / sumexp).unsqueeze(1)  # T softmax * dL/dCE
        grad.scatter_add_(1, y, (g_star - t * w).unsqueeze(1))
        grad.scatter_add_(1, cidx.unsqueeze(1), g_max.unsqueeze(1))
        grad.mul_(grad_total)
        return grad.to(ctx.in_dtype), None, None, None, None, None, None, None


# --------------------------------------------------------------------------------------------
# the losses


def noise_aware_loss(cosine: Tensor, y_crf: Tensor, y_ret: Tensor, *, temperature: float = 20, damp: float = 7,
                     lam: float = 0.1, ignore_index: int = IGNORE_INDEX, detach_sigma: bool = False,
                     return_parts: bool = False):
    """NAL (Eq. 12): L_ce over S + lam * L_wce over ~S.

    L_ce (Eq. 8) is the mean CE of ``temperature * cosine`` against Y_crf over S. L_wce (Eq. 11)
    is sum(sigma * CE(Y_crf)) / sum(sigma) over ~S, with sigma from Eq. 9-10 (``noise_confidence``).
    ``detach_sigma=False`` (default, as the released code) lets gradients flow through sigma.
    Returns the total, or ``(total, {'ce': float, 'wce': float})`` with ``return_parts``.
    Vectorised, with a hand-written backward (checked against autograd in the tests).
    """
    y_crf, y_ret = _check(cosine, y_crf, y_ret)
    s, not_s = _regions(y_crf, y_ret, ignore_index)
    target = torch.where(s | not_s, y_crf, 0)  # any in-range class at excluded pixels: masked out
    total, parts = _NoiseAwareLoss.apply(cosine, target, s, not_s, float(temperature), float(damp), float(lam),
                                         bool(detach_sigma))
    if return_parts:
        ce, wce = parts.tolist()
        return total, {"ce": ce, "wce": wce}
    return total


def ce_loss(cosine: Tensor, y: Tensor, *, temperature: float = 20, ignore_index: int = IGNORE_INDEX,
            return_parts: bool = False):
    """Plain CE of ``temperature * cosine`` against one label map (Y_crf or Y_ret), void ignored."""
    (y,) = _check(cosine, y)
    valid = y != ignore_index
    loss = _masked_mean(_pixel_ce(temperature * cosine, y, valid, ignore_index), valid)
    return (loss, _floats(ce=loss)) if return_parts else loss


def baseline_loss(cosine: Tensor, y_crf: Tensor, y_ret: Tensor, *, temperature: float = 20,
                  ignore_index: int = IGNORE_INDEX, return_parts: bool = False):
    """Table 7 'Baseline': CE against Y_crf over S only (~S is ignored)."""
    y_crf, y_ret = _check(cosine, y_crf, y_ret)
    s, _ = _regions(y_crf, y_ret, ignore_index)
    loss = _masked_mean(_pixel_ce(temperature * cosine, y_crf, s, ignore_index), s)
    return (loss, _floats(ce=loss)) if return_parts else loss


def entropy_regularized_loss(cosine: Tensor, y_crf: Tensor, y_ret: Tensor, *, temperature: float = 20,
                             lam: float = 0.1, ignore_index: int = IGNORE_INDEX, return_parts: bool = False):
    """Table 7 'Entropy Regularization': CE over S + lam * mean softmax entropy over ~S."""
    y_crf, y_ret = _check(cosine, y_crf, y_ret)
    s, not_s = _regions(y_crf, y_ret, ignore_index)
    logits = temperature * cosine
    l_ce = _masked_mean(_pixel_ce(logits, y_crf, s, ignore_index), s)
    logp = F.log_softmax(logits, 1)
    entropy = -(logp.exp() * logp).sum(1)
    l_ent = _masked_mean(entropy, not_s)
    total = l_ce + lam * l_ent
    return (total, _floats(ce=l_ce, entropy=l_ent)) if return_parts else total


def bootstrapping_loss(cosine: Tensor, y_crf: Tensor, y_ret: Tensor, *, temperature: float = 20,
                       lam: float = 0.1, beta: float = 0.95, ignore_index: int = IGNORE_INDEX,
                       return_parts: bool = False):
    """Table 7 'Bootstrapping': CE over S + lam * soft bootstrapping over ~S (Reed et al., 2014).

    Per pixel of ~S: -sum_k (beta t_k + (1 - beta) p_k) log p_k, t = one-hot Y_crf, p = softmax;
    as in Reed et al., p in the target is not detached, so the term equals
    beta * CE(Y_crf) + (1 - beta) * entropy(p).
    """
    y_crf, y_ret = _check(cosine, y_crf, y_ret)
    s, not_s = _regions(y_crf, y_ret, ignore_index)
    logits = temperature * cosine
    ce = _pixel_ce(logits, y_crf, s | not_s, ignore_index)
    l_ce = _masked_mean(ce, s)
    logp = F.log_softmax(logits, 1)
    entropy = -(logp.exp() * logp).sum(1)
    l_boot = _masked_mean(beta * ce + (1 - beta) * entropy, not_s)
    total = l_ce + lam * l_boot
    return (total, _floats(ce=l_ce, bootstrap=l_boot)) if return_parts else total


# --------------------------------------------------------------------------------------------
# registry for the trainer


# --------------------------------------------------------------------------------------------
# builders named by the registry (bana_core.loss_registry.LOSSES): settings -> loss function

LossFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, dict[str, float]]]


def _ce_on(which: str) -> Callable[[dict], LossFn]:
    def build(p: dict) -> LossFn:
        def fn(cosine, y_crf, y_ret):
            return ce_loss(cosine, y_crf if which == "crf" else y_ret, temperature=p["temperature"],
                           ignore_index=p["ignore_index"], return_parts=True)
        return fn
    return build


build_ce_crf = _ce_on("crf")
build_ce_ret = _ce_on("ret")


def build_baseline(p: dict) -> LossFn:
    return lambda cosine, y_crf, y_ret: baseline_loss(cosine, y_crf, y_ret, temperature=p["temperature"],
                                                      ignore_index=p["ignore_index"], return_parts=True)


def build_entropy_regularized(p: dict) -> LossFn:
    return lambda cosine, y_crf, y_ret: entropy_regularized_loss(
        cosine, y_crf, y_ret, temperature=p["temperature"], lam=p["lam"], ignore_index=p["ignore_index"],
        return_parts=True)


def build_bootstrapping(p: dict) -> LossFn:
    return lambda cosine, y_crf, y_ret: bootstrapping_loss(
        cosine, y_crf, y_ret, temperature=p["temperature"], lam=p["lam"], beta=p["beta"],
        ignore_index=p["ignore_index"], return_parts=True)


def build_noise_aware(p: dict) -> LossFn:
    return lambda cosine, y_crf, y_ret: noise_aware_loss(
        cosine, y_crf, y_ret, temperature=p["temperature"], damp=p["damp"], lam=p["lam"],
        ignore_index=p["ignore_index"], detach_sigma=p["detach_sigma"], return_parts=True)


def build_loss(name: str, **params) -> LossFn:
    """The registered loss ``name`` as ``fn(cosine, y_crf, y_ret) -> (total, parts)``.

    ``params`` may hold any key of ``loss_registry.PARAMS``; keys a loss does not read are ignored
    (the trainer passes one settings dict to every loss).
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    fn = globals()[LOSSES[name].build](validate_params(params))
    fn.__name__ = f"loss_{name}"
    return fn
