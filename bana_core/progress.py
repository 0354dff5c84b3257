"""Progress of long loops, for a person at a terminal and for a rule's log file.

A tqdm bar is drawn only when stderr is a terminal: under Snakemake or SLURM stderr is a file,
where a bar is noise. Independently, a plain log line (``logging``, so it reaches the rule's log
through ``bana_core.script_runner.run_script``) reports the count done, the rate and the time
left about every tenth of the work, so a job's log says where it is while it runs.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger("bana.progress")


def on_terminal() -> bool:
    return sys.stderr.isatty()


def _eta(seconds: float) -> str:
    return str(timedelta(seconds=int(round(seconds))))


class ProgressLog:
    """Log ``desc: <unit> done/total (pct), <extra>, <rate>/s, ETA h:mm:ss`` every ``every`` steps
    (default: a tenth of ``total``) and at the last one."""

    def __init__(self, desc: str, total: int, *, start: int = 0, unit: str = "iteration", every: int | None = None):
        self.desc, self.total, self.unit = desc, total, unit
        self.every = every or max(1, total // 10)
        self.start = start
        self.t0 = time.monotonic()

    def update(self, done: int, **extra: str) -> None:
        """``done`` steps of ``total`` are finished."""
        if done % self.every and done != self.total:
            return
        elapsed = time.monotonic() - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = _eta((self.total - done) / rate) if rate > 0 else "?"
        parts = [f"{self.unit} {done}/{self.total} ({100 * done / max(self.total, 1):.0f} %)"]
        parts += [f"{k} {v}" for k, v in extra.items()]
        parts += [f"{rate:.2f} {self.unit}s/s", f"ETA {eta}"]
        log.info("%s: %s", self.desc, ", ".join(parts))


def progress(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "image",
             enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a terminal bar (when stderr is one) and a log line every tenth."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    total = len(items) if total is None else total  # type: ignore[arg-type]
    logger = ProgressLog(desc, total, unit=unit) if enabled else None
    for done, item in enumerate(tqdm(items, total=total, desc=desc, disable=not (enabled and on_terminal()),
                                     mininterval=5), start=1):
        yield item
        if logger is not None:
            logger.update(done)
