"""The one entry point of every workflow script: logging to the rule's log, a GPU lease, clean errors."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from .errors import BanaError
from .gpu_lease import job_gpu


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
