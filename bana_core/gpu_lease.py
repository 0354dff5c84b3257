"""A GPU of a job's own: a lock-file allocator so parallel Snakemake jobs never share a GPU.

``acquire_gpu`` gives the calling job a GPU of its own for as long as the ``with`` block runs::

    with acquire_gpu() as gpu:          # gpu: physical index, or None when there is no GPU
        device = resolve_device("auto")  # cuda:0 is now the leased GPU (bana_core.devices)
        ...

Where the job runs decides what it does:

* Under SLURM with ``CUDA_VISIBLE_DEVICES`` set, SLURM has already granted devices to this job
  alone (``--gpus`` / ``--gres``): they are used as they are, no lock is taken.
* Elsewhere (one machine, ``snakemake --cores``), each device ``i`` has a lock file
  ``<lock_dir>/gpu<i>.lock``; the job holds an exclusive ``flock`` on one of them and sets
  ``CUDA_VISIBLE_DEVICES`` to that device. An existing ``CUDA_VISIBLE_DEVICES`` (set by the user)
  limits the choice to the devices it names. The kernel drops a ``flock`` when its file is
  closed, so a lease also ends when the process dies, even by SIGKILL: no stale locks.

The variable must be set before CUDA initialises in the process, so lease first, then touch
CUDA. ``torch`` is imported lazily: leasing with an explicit ``n_devices`` never loads it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .errors import BanaError

__all__ = ["GpuLease", "GpuLockTimeout", "acquire_gpu", "cuda_visible_entries", "default_lock_dir", "job_gpu"]

# CUDA reads CUDA_VISIBLE_DEVICES up to the first entry it cannot parse (e.g. "-1" or SLURM's
# "NoDevFiles"): integer indices, or GPU-/MIG- UUIDs.
_VISIBLE_ENTRY_RE = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


def default_lock_dir() -> Path:
    """``$BANA_GPU_LOCK_DIR``, else ``<system tmp>/bana-gpu-locks``: shared by all jobs on a machine."""
    env = os.environ.get("BANA_GPU_LOCK_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "bana-gpu-locks"


class GpuLockTimeout(BanaError, TimeoutError):
    """No GPU became free within the timeout."""


def cuda_visible_entries(value: str) -> list[str]:
    """The devices ``CUDA_VISIBLE_DEVICES=value`` exposes, the way CUDA parses it."""
    entries = []
    for raw in value.split(","):
        entry = raw.strip()
        if not _VISIBLE_ENTRY_RE.match(entry):
            break
        entries.append(entry)
    return entries


def _in_slurm_allocation() -> bool:
    return "SLURM_JOB_ID" in os.environ


def _candidates(n_devices: int | None) -> tuple[list[tuple[int, str]], bool]:
    """[(index, CUDA_VISIBLE_DEVICES entry)] to choose from, and whether locking is needed."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = cuda_visible_entries(visible)
        cands = [(int(e) if e.isdigit() else pos, e) for pos, e in enumerate(entries)]
        # A SLURM grant of one device is this job's alone: nothing to arbitrate. A grant of
        # several (salloc --gpus=4, then snakemake --resources gpu=4 inside it) is shared by
        # the jobs Snakemake runs there: they lease among the granted devices.
        return cands, not _in_slurm_allocation() or len(cands) > 1
    if n_devices is None:
        import torch

        # device_count() reads NVML and does not initialise CUDA, so setting
        # CUDA_VISIBLE_DEVICES afterwards still takes effect.
        n_devices = torch.cuda.device_count()
    return [(i, str(i)) for i in range(n_devices)], True


def _lock_file(lock_dir: Path, entry: str) -> Path:
    return lock_dir / f"gpu{re.sub(r'[^0-9A-Za-z_.-]', '_', entry)}.lock"


def _try_lock(path: Path) -> int | None:
    """Open and flock ``path`` without blocking; the fd on success, else None."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        # Lock file made by another user: flock works on a read-only descriptor too.
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    try:  # who holds it, for the timeout message; purely informational
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass
    return fd


def _holders(lock_dir: Path, cands: list[tuple[int, str]]) -> str:
    parts = []
    for _, entry in cands:
        try:
            pid = _lock_file(lock_dir, entry).read_text().strip() or "?"
        except OSError:
            pid = "?"
        parts.append(f"gpu {entry}: pid {pid}")
    return ", ".join(parts)


def _check_cuda_not_initialised() -> None:
    torch = sys.modules.get("torch")  # only if the caller imported it: never import it here
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError(
            "acquire_gpu() must run before CUDA is initialised in this process: "
            "CUDA_VISIBLE_DEVICES set later has no effect"
        )


class GpuLease:
    """An exclusive claim on one GPU; use as a context manager (see ``acquire_gpu``).

    ``index`` is the leased device: its physical index, or, when ``CUDA_VISIBLE_DEVICES``
    names devices by UUID, the position of the chosen UUID in that list; None means CPU.
    """

    def __init__(self, n_devices: int | None = None, lock_dir: str | Path | None = None,
                 timeout: float | None = None, poll: float = 0.5, set_env: bool = True):
        if n_devices is not None and n_devices < 0:
            raise ValueError(f"n_devices must be >= 0, got {n_devices}")
        if poll <= 0:
            raise ValueError(f"poll must be > 0, got {poll}")
        self.n_devices = n_devices
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        self.timeout = timeout
        self.poll = poll
        self.set_env = set_env
        self.index: int | None = None
        self.lock_path: Path | None = None
        self._fd: int | None = None
        self._acquired = False
        self._saved_env: str | None = None
        self._env_set = False

    def _wait_for_lock(self, cands: list[tuple[int, str]]) -> tuple[int, str]:
        """Lock one of ``cands``, polling until ``timeout``; keeps the fd and the lock's path."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        # Start at a pid-dependent device so simultaneous starters do not all probe gpu0 first.
        start = os.getpid() % len(cands)
        order = cands[start:] + cands[:start]
        while True:
            for cand in order:
                path = _lock_file(self.lock_dir, cand[1])
                fd = _try_lock(path)
                if fd is not None:
                    self._fd, self.lock_path = fd, path
                    return cand
            if deadline is not None and time.monotonic() >= deadline:
                raise GpuLockTimeout(
                    f"no free GPU after {self.timeout:g} s in {self.lock_dir} "
                    f"({_holders(self.lock_dir, cands)}); lower the number of parallel GPU jobs "
                    f"(snakemake --resources gpu=N) or raise the timeout"
                )
            time.sleep(self.poll if deadline is None else max(0.0, min(self.poll, deadline - time.monotonic())))

    def acquire(self) -> int | None:
        """Claim a device (waiting up to ``timeout`` s; None = forever) and return its index."""
        if self._acquired:
            raise RuntimeError("GpuLease already acquired")
        cands, need_lock = _candidates(self.n_devices)
        if need_lock and _in_slurm_allocation():
            # Keyed on the allocation: another job on this node sees its own devices under the
            # same indices, and must not wait for ours.
            self.lock_dir = self.lock_dir / f"slurm-{os.environ['SLURM_JOB_ID']}"
        if self.set_env and need_lock and cands:
            _check_cuda_not_initialised()
        chosen: tuple[int, str] | None = None
        if cands:
            chosen = self._wait_for_lock(cands) if need_lock else cands[0]
        self._acquired = True
        self.index = None if chosen is None else chosen[0]
        if self.set_env and chosen is not None and need_lock:
            self._saved_env = os.environ.get("CUDA_VISIBLE_DEVICES")
            self._env_set = True
            os.environ["CUDA_VISIBLE_DEVICES"] = chosen[1]
        return self.index

    def release(self) -> None:
        """Give the device back (idempotent) and restore ``CUDA_VISIBLE_DEVICES``."""
        if not self._acquired:
            return
        self._acquired = False
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
        if self._env_set:
            self._env_set = False
            if self._saved_env is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = self._saved_env
        self.lock_path = None
        self._saved_env = None

    def __enter__(self) -> int | None:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self):  # a forgotten lease must not outlive its object
        try:
            self.release()
        except Exception:
            pass


def acquire_gpu(
    n_devices: int | None = None,
    lock_dir: str | Path | None = None,
    timeout: float | None = None,
    poll: float = 0.5,
    set_env: bool = True,
) -> GpuLease:
    """A lease on one GPU for the calling job: ``with acquire_gpu() as index: ...``.

    ``index`` is the device's physical index (None without GPUs: run on the CPU). Inside the
    block ``CUDA_VISIBLE_DEVICES`` names only that device, so ``cuda:0`` is it.

    n_devices: devices on this machine; default ``torch.cuda.device_count()``, ignored when
        ``CUDA_VISIBLE_DEVICES`` is set (its devices are the candidates).
    lock_dir: where ``gpu<i>.lock`` live; default ``$BANA_GPU_LOCK_DIR`` or
        ``<tmp>/bana-gpu-locks``. All jobs sharing GPUs must use the same directory.
    timeout: seconds to wait for a free device (None: wait forever); then GpuLockTimeout.
    poll: seconds between attempts while every device is taken.
    set_env: set ``CUDA_VISIBLE_DEVICES`` to the leased device (restored on release).
    """
    return GpuLease(n_devices=n_devices, lock_dir=lock_dir, timeout=timeout, poll=poll, set_env=set_env)


@contextlib.contextmanager
def job_gpu(device: str | None, log: logging.Logger | None = None) -> Iterator[None]:
    """Hold a GPU of this job's own while the block runs (see ``acquire_gpu``).

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
