"""Devices: the config's ``device`` value as a ``torch.device``, and a clock-safe wait for a device.

``torch`` is imported inside the functions, so that importing this module (the plan does) never
loads it. A GPU of a job's own comes from ``bana_core.gpu_lease``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["resolve_device", "synchronize"]

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(spec: str = "auto") -> torch.device:
    """Return the ``torch.device`` named by the config value ``device``.

    ``auto``: CUDA when available, else CPU; ``cpu``; ``cuda`` (current CUDA device);
    ``cuda:N``. A malformed value, or a CUDA device this process cannot see, raises
    ConfigError naming the value.
    """
    import torch

    text = str(spec).strip().lower()
    m = _DEVICE_RE.match(text)
    if m is None or (m.group(1) != "cuda" and m.group(2) is not None):
        raise ConfigError(f"device: invalid value {spec!r} (expected auto, cpu, cuda or cuda:N)")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device: {spec!r} requested but CUDA is not available here (use 'auto' or 'cpu')")
    if index is None:
        return torch.device("cuda")
    count = torch.cuda.device_count()
    if int(index) >= count:
        raise ConfigError(
            f"device: {spec!r} requested but only {count} CUDA device(s) are visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})"
        )
    return torch.device("cuda", int(index))


def synchronize(device) -> None:
    """Wait for the work queued on ``device``: CUDA kernels run asynchronously, so a timing must
    wait for them before reading the clock; nothing to wait for on the CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
