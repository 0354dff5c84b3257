"""Backbone initialisation: torchvision ImageNet weights (fc6/fc7 decimated as DeepLab did), or a
local state dict, or nothing (random init).

``init_backbone(model, pretrained)`` is the one entry point; ``pretrained`` is the config's value:
``None`` (random), ``"imagenet"`` (torchvision's weights, downloaded or from torch's hub cache), or a
path to a local state dict.
"""

from __future__ import annotations

import http.client
import logging
from pathlib import Path
from typing import Mapping, NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from ..errors import ConfigError, DataError
from .resnet import ResNetTrunk
from .vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16DeepLab

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadResult",
    "decimate_vgg16_fc",
    "vgg16_to_deeplab",
    "fetch_torchvision_state_dict",
    "imagenet_state_dict",
    "load_local_state_dict",
    "init_backbone",
    "fetch_imagenet_checkpoint",
    "resolve_pretrained",
]

log = logging.getLogger(__name__)

# torchvision VGG16 fully-connected layers: classifier.0 = fc6 (25088 = 512 x 7 x 7 -> 4096),
# classifier.3 = fc7 (4096 -> 4096)
_VGG16_FC_SHAPES = {
    "classifier.0.weight": (4096, 512 * 7 * 7),
    "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096),
    "classifier.3.bias": (4096,),
}
FC_STEP = 4  # 4096 -> 1024 filters (and fc7 inputs)
TAP_STEP = 3  # 7x7 -> 3x3 taps 0, 3, 6


def decimate_vgg16_fc(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """DeepLab's fc6/fc7 from torchvision VGG16's fully-connected layers, by subsampling.

    fc6: ``classifier.0.weight`` [4096, 25088] viewed [4096, 512, 7, 7] (torchvision flattens
    pool5 as c * 49 + y * 7 + x), every 4th filter and taps 0, 3, 6 of each axis ->
    [1024, 512, 3, 3]; bias every 4th. Taking every 3rd tap of a 7x7 kernel that ran at stride 32 is
    why LargeFOV's fc6 at stride 8 has dilation 12 (= 4 x 3). fc7: ``classifier.3.weight``
    [4096, 4096], every 4th row and column -> [1024, 1024, 1, 1]; bias every 4th.

    Returns ``{"fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"}`` (copies, contiguous).
    """
    for key, shape in _VGG16_FC_SHAPES.items():
        if key not in state_dict:
            raise DataError(None, f"torchvision VGG16 state dict has no {key!r} (keys: {_preview(state_dict)})")
        if tuple(state_dict[key].shape) != shape:
            raise DataError(None, f"torchvision VGG16 state dict: {key!r} has shape "
                                  f"{tuple(state_dict[key].shape)}, expected {shape}")
    w6 = state_dict["classifier.0.weight"].reshape(4096, 512, 7, 7)[::FC_STEP, :, ::TAP_STEP, ::TAP_STEP]
    w7 = state_dict["classifier.3.weight"][::FC_STEP, ::FC_STEP]
    return {
        "fc6.weight": w6.clone(memory_format=torch.contiguous_format),
        "fc6.bias": state_dict["classifier.0.bias"][::FC_STEP].clone(),
        "fc7.weight": w7.reshape(1024, 1024, 1, 1).clone(memory_format=torch.contiguous_format),
        "fc7.bias": state_dict["classifier.3.bias"][::FC_STEP].clone(),
    }


def vgg16_to_deeplab(state_dict: Mapping[str, Tensor], model: VGG16DeepLab) -> dict[str, Tensor]:
    """Map a torchvision ``vgg16`` state dict onto ``model``'s keys.

    The 13 convs go by position (``features.{i}`` of torchvision, in index order, onto
    ``model.conv_layers()``); fc6/fc7 by :func:`decimate_vgg16_fc`.
    """
    _check_imagenet_vgg(model)
    indices = sorted({int(k.split(".")[1]) for k, v in state_dict.items()
                      if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4})
    convs = model.conv_layers()
    if len(indices) != len(convs):
        raise DataError(None, f"torchvision VGG16 state dict has {len(indices)} conv layers, expected {len(convs)}")
    out: dict[str, Tensor] = {}
    for index, (prefix, conv) in zip(indices, convs, strict=True):
        for part, param in (("weight", conv.weight), ("bias", conv.bias)):
            src = state_dict[f"features.{index}.{part}"]
            if src.shape != param.shape:
                raise DataError(None, f"torchvision VGG16 features.{index}.{part} has shape {tuple(src.shape)}, "
                                      f"{prefix}.{part} needs {tuple(param.shape)}")
            out[f"{prefix}.{part}"] = src
    out.update(decimate_vgg16_fc(state_dict))
    return out


def _check_imagenet_vgg(model: VGG16DeepLab) -> None:
    if model.width != 1.0 or model.batch_norm or model.out_channels != 1024:
        raise ConfigError(
            "pretrained: 'imagenet' needs the paper's VGG16 (width: 1.0, batch_norm: false, fc_dim 1024), "
            f"got width={model.width}, batch_norm={model.batch_norm}, fc_dim={model.out_channels}; "
            "use `pretrained: null` (random init) or `pretrained: <path to a state dict>` for other sizes")


def _check_imagenet_resnet(model: ResNetTrunk) -> None:
    if model.width != 1.0:
        raise ConfigError(f"pretrained: 'imagenet' needs width: 1.0 for ResNet-{model.depth}, got width={model.width}; "
                          "use `pretrained: null` (random init) or `pretrained: <path to a state dict>`")
    if model.depth not in _RESNET_WEIGHTS:
        raise ConfigError(f"pretrained: no torchvision ImageNet weights wired for ResNet-{model.depth}")


_RESNET_WEIGHTS = {18: "ResNet18_Weights", 34: "ResNet34_Weights", 50: "ResNet50_Weights",
                   101: "ResNet101_Weights", 152: "ResNet152_Weights"}


def fetch_torchvision_state_dict(weights) -> dict[str, Tensor]:
    """``weights.get_state_dict(progress=True)`` (a torchvision ``WeightsEnum`` member), turning any
    failure to reach the file into a ConfigError that says what to do instead."""
    try:
        return weights.get_state_dict(progress=True)
    except (OSError, http.client.HTTPException) as e:  # URLError, socket/SSL errors, timeouts are OSError
        url = getattr(weights, "url", "?")
        cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        raise ConfigError(
            f"pretrained: 'imagenet' needs torchvision's {weights} weights ({url}), and this machine cannot "
            f"download them ({type(e).__name__}: {e}). Either copy that file to {cache} (torchvision's cache, "
            "read without network), or set `pretrained: <path>` to a local state dict of this backbone "
            "(a file made by torch.save(model.state_dict())), or set `pretrained: null` for random init."
        ) from e


def fetch_imagenet_checkpoint(url: str, hub_dir: str | Path, progress: bool = True) -> Path:
    """Download ``url`` into ``<hub_dir>/checkpoints/`` (torch hub's layout, so torchvision reads
    it from there without network once ``torch.hub.set_dir(hub_dir)``), checking the SHA-256
    prefix in its name; the path of the file. A failed check leaves no file behind."""
    target = Path(hub_dir) / "checkpoints" / url.rsplit("/", 1)[-1]
    try:
        torch.hub.load_state_dict_from_url(url, model_dir=str(target.parent), progress=progress, check_hash=True,
                                           weights_only=True)
    except RuntimeError as e:  # torch.hub's hash mismatch
        target.unlink(missing_ok=True)
        raise DataError(target, f"downloaded from {url}, but {e}") from None
    except (OSError, http.client.HTTPException) as e:
        raise ConfigError(f"cannot download torchvision's ImageNet weights {url} ({type(e).__name__}: {e}); "
                          f"copy the file to {target} by hand, then rerun") from e
    return target


def resolve_pretrained(setting: str | None, inputs) -> str | None:
    """What a training job passes to :func:`init_backbone`: the config's ``pretrained`` setting,
    given the rule's ``pretrained`` inputs. ``imagenet`` reads the checkpoint that the local rule
    ``imagenet_weights`` fetched into ``<hub>/checkpoints/`` (the job sets torch's hub folder to
    it: no network on a compute node); ``pretrain`` (demo) the run's backbone file."""
    inputs = list(inputs or [])
    if not inputs:
        return setting
    if isinstance(setting, str) and setting.strip().lower() == "imagenet":
        torch.hub.set_dir(str(Path(inputs[0]).parents[1]))
        return "imagenet"
    return str(inputs[0])


def imagenet_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """torchvision's ImageNet weights for ``model`` (VGG16DeepLab or ResNetTrunk), keyed as ``model``."""
    import torchvision.models as tvm

    if isinstance(model, VGG16DeepLab):
        _check_imagenet_vgg(model)  # before the (slow, maybe impossible) download
        return vgg16_to_deeplab(fetch_torchvision_state_dict(tvm.VGG16_Weights.IMAGENET1K_V1), model)
    if isinstance(model, ResNetTrunk):
        _check_imagenet_resnet(model)
        weights = getattr(tvm, _RESNET_WEIGHTS[model.depth]).IMAGENET1K_V1
        state = fetch_torchvision_state_dict(weights)
        return {k: v for k, v in state.items() if not k.startswith("fc.")}  # the trunk has no fc
    raise ConfigError(f"pretrained: 'imagenet' is available for VGG16 and ResNet backbones, not {type(model).__name__}")


class LoadResult(NamedTuple):
    """Keys of the model absent from the file, and keys of the file absent from the model."""

    missing: list[str]
    unexpected: list[str]


def _preview(keys, n: int = 8) -> str:
    keys = list(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _extract_state_dict(obj, path: Path) -> dict[str, Tensor]:
    """A raw state dict, or the one under 'model' / 'state_dict' of a checkpoint dict."""
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(path, "not a state dict: expected a dict of tensors, or a checkpoint dict with 'model' "
                              "or 'state_dict'")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise DataError(path, f"not a state dict: entries {_preview(bad)} are not tensors")
    return dict(obj)


def _map_keys(state: dict[str, Tensor], key_map: Mapping[str, str | None] | None) -> dict[str, Tensor]:
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    if not key_map:
        return state
    prefixes = sorted(key_map, key=len, reverse=True)  # longest prefix wins
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                new = key_map[prefix]
                if new is None:
                    break  # dropped
                out[new + key[len(prefix):]] = value
                break
        else:
            out[key] = value
    return out


def load_local_state_dict(model: nn.Module, path: str | Path, *, key_map: Mapping[str, str | None] | None = None,
                          strict: bool = True) -> LoadResult:
    """Load a local state dict file into ``model``.

    The file holds a raw state dict or a checkpoint dict with ``'model'`` or ``'state_dict'``
    (as ``bana_core.train.save_weights`` writes). Names: a ``module.`` prefix on every key is
    stripped; then ``key_map`` maps prefixes (longest first): ``{"backbone.": ""}`` strips one,
    ``{"classifier.": None}`` drops those keys. A shape mismatch is always an error naming the key,
    the file and both shapes; missing / unexpected keys are an error naming the file when
    ``strict``, else a warning (the matching keys are loaded).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "pretrained weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or holds pickled objects
        raise DataError(path, f"cannot read weights ({type(e).__name__}: {e})") from None
    state = _map_keys(_extract_state_dict(obj, path), key_map)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    for key in own:
        if key in state and state[key].shape != own[key].shape:
            raise DataError(path, f"{key}: shape {tuple(state[key].shape)} in the file, "
                                  f"{tuple(own[key].shape)} in the model (another width / depth / class count?)")
    if missing or unexpected:
        problem = (f"state dict does not match {type(model).__name__}: "
                   f"missing keys [{_preview(missing)}], unexpected keys [{_preview(unexpected)}]")
        if strict:
            raise DataError(path, problem)
        log.warning("%s: %s; loading the %d matching keys", path, problem, len(own) - len(missing))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return LoadResult(missing, unexpected)


def init_backbone(model: nn.Module, pretrained: str | Path | None, *, strict: bool = True,
                  key_map: Mapping[str, str | None] | None = None) -> nn.Module:
    """Initialise ``model`` in place from the config's ``pretrained`` value; returns ``model``.

    ``None``: keep the random init. ``"imagenet"``: torchvision's weights
    (:func:`imagenet_state_dict`; ConfigError when they cannot be fetched or the model is not the
    full-size one). Anything else: a local file (:func:`load_local_state_dict`).
    """
    if pretrained is None:
        return model
    if isinstance(pretrained, str) and pretrained.strip().lower() == "imagenet":
        model.load_state_dict(imagenet_state_dict(model), strict=True)
        log.info("%s initialised from torchvision ImageNet weights", type(model).__name__)
        return model
    if not isinstance(pretrained, (str, Path)) or not str(pretrained).strip() or not Path(pretrained).is_file():
        raise ConfigError(
            f"pretrained: {str(pretrained)!r} is not 'imagenet', null, or an existing file "
            "(`pretrain` is replaced by the pretrain_backbone rule's output inside the workflow)")
    result = load_local_state_dict(model, pretrained, key_map=key_map, strict=strict)
    log.info("%s initialised from %s (%d missing, %d unexpected keys)", type(model).__name__, pretrained,
             len(result.missing), len(result.unexpected))
    return model
