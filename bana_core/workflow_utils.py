"""Glue shared by the Snakefile and the workflow scripts: code versions, logging, clean errors."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterator

from .devices import acquire_gpu
from .errors import BanaError

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def code_version(*modules: str) -> str:
    """Content hash of the named bana_core modules ("bap", "models", "data/voc", ...).

    Rules pass it as a param, so that editing library code a rule runs reruns that rule
    (Snakemake's own `code` trigger only sees the rule's script, not the library).
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        target = PACKAGE_DIR / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        if not files or not all(f.exists() for f in files):
            raise FileNotFoundError(f"code_version: no module bana_core/{name}")
        for f in files:
            digest.update(str(f.relative_to(PACKAGE_DIR)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def job_gpu(device: str | None, log: logging.Logger | None = None) -> Iterator[None]:
    """Hold a GPU of this job's own while the block runs (see ``bana_core.devices.acquire_gpu``).

    ``device`` is the config's ``device`` value: ``auto`` and ``cuda`` take a lease (locally an
    exclusive lock on one device, which becomes ``cuda:0``; under SLURM the granted
    ``CUDA_VISIBLE_DEVICES`` as is); ``cpu``, ``cuda:N`` (a device the user pinned) and None
    (a rule without a device) take none. Each outcome is logged, so a job's log says which
    device it ran on.
    """
    log = log or logging.getLogger("bana")
    if device is None or str(device).strip().lower() not in ("auto", "cuda"):
        yield
        return
    with acquire_gpu() as lease_index:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        if lease_index is None:
            log.info("GPU lease: none (no GPU visible), running on the CPU")
        elif "SLURM_JOB_ID" in os.environ and visible != "<unset>":
            log.info("GPU lease: SLURM grant used as is (CUDA_VISIBLE_DEVICES=%s)", visible)
        else:
            log.info("GPU lease: device %s (CUDA_VISIBLE_DEVICES=%s)", lease_index, visible)
        try:
            yield
        finally:
            if lease_index is not None:
                log.info("GPU lease: device %s released", lease_index)


def run_script(snakemake, main: Callable[..., None]) -> None:
    """Run a workflow script's ``main(snakemake)`` with logging to the rule's log file.

    A rule with a ``device`` param runs ``main`` holding a GPU lease (``job_gpu``), so that
    parallel GPU jobs never share a device. torch's thread count is set only if the script
    already imported torch: jobs that do not need it (CRF, scoring, tables) never load it.

    A BanaError (bad data, bad config) ends the job with its one-line message instead of a
    traceback; anything else keeps its traceback in the log, where it helps debugging.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
    threads = max(1, int(getattr(snakemake, "threads", 1) or 1))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    log = logging.getLogger("bana")
    try:
        with job_gpu(getattr(snakemake.params, "device", None), log):
            main(snakemake)
    except BanaError as e:
        log.error("%s", e)
        sys.exit(f"error: {e}")
    except Exception:
        log.error("unexpected failure:\n%s", traceback.format_exc())
        raise
