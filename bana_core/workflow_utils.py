"""Glue shared by the Snakefile and the workflow scripts: code versions, logging, clean errors."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

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


def run_script(snakemake, main: Callable[..., None]) -> None:
    """Run a workflow script's ``main(snakemake)`` with logging to the rule's log file.

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
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    log = logging.getLogger("bana")
    try:
        main(snakemake)
    except BanaError as e:
        log.error("%s", e)
        sys.exit(f"error: {e}")
    except Exception:
        log.error("unexpected failure:\n%s", traceback.format_exc())
        raise
