"""Device selection, and a local GPU allocator so parallel Snakemake jobs never share a GPU.

``resolve_device`` turns the config's ``device`` value into a ``torch.device``.

``acquire_gpu`` gives the calling job a GPU of its own for as long as the ``with`` block runs::

    with acquire_gpu() as gpu:          # gpu: physical index, or None when there is no GPU
        device = resolve_device("auto")  # cuda:0 is now the leased GPU
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

import errno
import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BanaError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["GpuLease", "GpuLockTimeout", "acquire_gpu", "default_lock_dir", "resolve_device", "synchronize"]

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
# CUDA reads CUDA_VISIBLE_DEVICES up to the first entry it cannot parse (e.g. "-1" or SLURM's
# "NoDevFiles"): integer indices, or GPU-/MIG- UUIDs.
_VISIBLE_ENTRY_RE = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


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


def default_lock_dir() -> Path:
    """``$BANA_GPU_LOCK_DIR``, else ``<system tmp>/bana-gpu-locks``: shared by all jobs on a machine."""
    env = os.environ.get("BANA_GPU_LOCK_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "bana-gpu-locks"


class GpuLockTimeout(BanaError, TimeoutError):
    """No GPU became free within the timeout."""


def _visible_entries(value: str) -> list[str]:
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


class GpuLease:
    """An exclusive claim on one GPU; use as a context manager (see ``acquire_gpu``).

    ``index`` is the leased device: its physical index, or, when ``CUDA_VISIBLE_DEVICES``
    names devices by UUID, the position of the chosen UUID in that list; None means CPU.
    """

    def __init__(
        self,
        n_devices: int | None = None,
        lock_dir: str | Path | None = None,
        timeout: float | None = None,
        poll: float = 0.5,
        set_env: bool = True,
    ):
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

    # -- candidates -------------------------------------------------------------------------
    def _candidates(self) -> tuple[list[tuple[int, str]], bool]:
        """[(index, CUDA_VISIBLE_DEVICES entry)] to choose from, and whether locking is needed."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            entries = _visible_entries(visible)
            cands = [(int(e) if e.isdigit() else pos, e) for pos, e in enumerate(entries)]
            # A SLURM grant of one device is this job's alone: nothing to arbitrate. A grant of
            # several (salloc --gpus=4, then snakemake --resources gpu=4 inside it) is shared by
            # the jobs Snakemake runs there: they lease among the granted devices.
            return cands, not _in_slurm_allocation() or len(cands) > 1
        n = self.n_devices
        if n is None:
            import torch

            # device_count() reads NVML and does not initialise CUDA, so setting
            # CUDA_VISIBLE_DEVICES afterwards still takes effect.
            n = torch.cuda.device_count()
        return [(i, str(i)) for i in range(n)], True

    def _lock_file(self, entry: str) -> Path:
        return self.lock_dir / f"gpu{re.sub(r'[^0-9A-Za-z_.-]', '_', entry)}.lock"

    def _try_lock(self, entry: str) -> int | None:
        """Open and flock ``gpu<entry>.lock`` without blocking; the fd on success, else None."""
        path = self._lock_file(entry)
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
        self.lock_path = path
        return fd

    def _holders(self, cands: list[tuple[int, str]]) -> str:
        parts = []
        for _, entry in cands:
            path = self._lock_file(entry)
            try:
                pid = path.read_text().strip() or "?"
            except OSError:
                pid = "?"
            parts.append(f"gpu {entry}: pid {pid}")
        return ", ".join(parts)

    # -- public -----------------------------------------------------------------------------
    def acquire(self) -> int | None:
        """Claim a device (waiting up to ``timeout`` s; None = forever) and return its index."""
        if self._acquired:
            raise RuntimeError("GpuLease already acquired")
        cands, need_lock = self._candidates()
        if need_lock and _in_slurm_allocation():
            # Keyed on the allocation: another job on this node sees its own devices under the
            # same indices, and must not wait for ours.
            self.lock_dir = self.lock_dir / f"slurm-{os.environ['SLURM_JOB_ID']}"
        if self.set_env and need_lock and cands:
            self._check_cuda_not_initialised()
        chosen: tuple[int, str] | None = None
        if not cands:
            chosen = None
        elif not need_lock:
            chosen = cands[0]
        else:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            # Start at a pid-dependent device so simultaneous starters do not all probe gpu0 first.
            start = os.getpid() % len(cands)
            order = cands[start:] + cands[:start]
            while chosen is None:
                for cand in order:
                    fd = self._try_lock(cand[1])
                    if fd is not None:
                        self._fd, chosen = fd, cand
                        break
                if chosen is not None:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise GpuLockTimeout(
                        f"no free GPU after {self.timeout:g} s in {self.lock_dir} "
                        f"({self._holders(cands)}); lower the number of parallel GPU jobs "
                        f"(snakemake --resources gpu=N) or raise the timeout"
                    )
                time.sleep(self.poll if deadline is None else max(0.0, min(self.poll, deadline - time.monotonic())))
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

    @staticmethod
    def _check_cuda_not_initialised() -> None:
        import sys

        torch = sys.modules.get("torch")  # only if the caller imported it: never import it here
        if torch is not None and torch.cuda.is_initialized():
            raise RuntimeError(
                "acquire_gpu() must run before CUDA is initialised in this process: "
                "CUDA_VISIBLE_DEVICES set later has no effect"
            )

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
