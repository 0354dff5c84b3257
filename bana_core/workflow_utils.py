"""Glue shared by the Snakefile and the workflow scripts: code versions, logging, clean errors."""

from __future__ import annotations

import ast
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


def _module_file(dotted: list[str]) -> Path | None:
    """The file of ``bana_core.<dotted>`` (a module, or a package's ``__init__.py``), if any."""
    base = PACKAGE_DIR.joinpath(*dotted)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_files(path: Path) -> set[Path]:
    """bana_core files that ``path`` imports directly (anywhere in it, lazy imports included),
    with the ``__init__.py`` of every package on the way, since Python runs those too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    # The dotted package ``path`` is in, relative to bana_core (None: outside bana_core).
    package = list(path.parent.relative_to(PACKAGE_DIR).parts) if path.is_relative_to(PACKAGE_DIR) else None
    targets: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == "bana_core"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = package[: len(package) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "bana_core":
                module = node.module.split(".")[1:]
            else:
                continue
            targets.append(module)
            # `from bana_core.data import voc` imports the submodule data/voc.
            targets += [module + [a.name] for a in node.names if _module_file(module + [a.name]) is not None]
    files = set()
    for dotted in targets:
        for depth in range(len(dotted) + 1):  # bana_core/__init__, data/__init__, data/voc
            f = _module_file(dotted[:depth])
            if f is not None:
                files.add(f)
    return files


@functools.lru_cache(maxsize=None)
def script_modules(script: str | Path) -> tuple[str, ...]:
    """The bana_core files a workflow script runs: what it imports, transitively inside
    bana_core (static analysis of ``import`` statements), as sorted paths relative to bana_core."""
    script = Path(script).resolve()
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for f in _imported_files(todo.pop()):
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return tuple(sorted(str(f.relative_to(PACKAGE_DIR)) for f in seen))


@functools.lru_cache(maxsize=None)
def code_version(script: str | Path) -> str:
    """Content hash of the bana_core files ``script`` runs (``script_modules``).

    Rules pass it as a param, so that editing library code a rule runs reruns that rule and
    nothing else (Snakemake's own `code` trigger only sees the rule's script, not the library).
    The set is derived from the imports, never listed by hand, so it cannot drift.
    """
    digest = hashlib.sha256()
    for name in script_modules(script):
        digest.update(name.encode())
        digest.update((PACKAGE_DIR / name).read_bytes())
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
    lease = acquire_gpu()
    with lease as lease_index:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        if lease_index is None:
            log.info("GPU lease: none (no GPU visible), running on the CPU")
        elif lease.lock_path is None:  # a SLURM grant of one device: this job's alone
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
