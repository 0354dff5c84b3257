"""bana_core.devices (device strings) and bana_core.gpu_lease (the lock-file GPU allocator, faked device counts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from bana_core.devices import resolve_device
from bana_core.errors import ConfigError
from bana_core.gpu_lease import GpuLockTimeout, acquire_gpu, default_lock_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Every test starts outside SLURM with no CUDA_VISIBLE_DEVICES (restored afterwards)."""
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "BANA_GPU_LOCK_DIR"):
        monkeypatch.delenv(var, raising=False)


def fake_cuda(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# -- resolve_device ---------------------------------------------------------------------------


def test_resolve_device_cpu_and_auto_without_cuda(monkeypatch):
    fake_cuda(monkeypatch, 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def test_resolve_device_with_fake_cuda(monkeypatch):
    fake_cuda(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"'cuda:2'.*only 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_resolve_device_cuda_unavailable(monkeypatch, spec):
    fake_cuda(monkeypatch, 0)
    with pytest.raises(ConfigError, match=rf"device: '{spec}'.*CUDA is not available"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cpu:0", "auto:1", "", "cuda:-1", "mps"])
def test_resolve_device_invalid(spec):
    with pytest.raises(ConfigError, match=rf"device: invalid value '{spec}'"):
        resolve_device(spec)


# -- acquire_gpu ------------------------------------------------------------------------------


def test_zero_devices_yields_none_and_leaves_env(tmp_path):
    with acquire_gpu(n_devices=0, lock_dir=tmp_path) as gpu:
        assert gpu is None
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert list(tmp_path.iterdir()) == []


def test_default_n_devices_from_torch(monkeypatch, tmp_path):
    fake_cuda(monkeypatch, 1)
    with acquire_gpu(lock_dir=tmp_path) as gpu:
        assert gpu == 0
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_default_lock_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BANA_GPU_LOCK_DIR", str(tmp_path / "locks"))
    assert default_lock_dir() == tmp_path / "locks"
    with acquire_gpu(n_devices=1, timeout=1) as gpu:
        assert gpu == 0
        assert (tmp_path / "locks" / "gpu0.lock").read_text().strip() == str(os.getpid())


def test_two_holders_get_different_devices_third_waits(tmp_path):
    # Separate leases open separate file descriptions, so flock arbitrates even between threads.
    a = acquire_gpu(n_devices=2, lock_dir=tmp_path, timeout=2, poll=0.01, set_env=False)
    b = acquire_gpu(n_devices=2, lock_dir=tmp_path, timeout=2, poll=0.01, set_env=False)
    ia, ib = a.acquire(), b.acquire()
    assert {ia, ib} == {0, 1}

    with pytest.raises(GpuLockTimeout, match=r"no free GPU after 0.2 s.*gpu 0: pid \d+.*gpu 1: pid \d+"):
        acquire_gpu(n_devices=2, lock_dir=tmp_path, timeout=0.2, poll=0.01, set_env=False).acquire()

    got: list[int | None] = []
    started = threading.Event()

    def third():
        lease = acquire_gpu(n_devices=2, lock_dir=tmp_path, timeout=10, poll=0.01, set_env=False)
        started.set()
        got.append(lease.acquire())
        lease.release()

    t = threading.Thread(target=third)
    t.start()
    assert started.wait(5)
    assert got == []  # both devices still held: the third lease is waiting
    b.release()
    t.join(10)
    assert not t.is_alive()
    assert got == [ib]  # it received exactly the device that was freed
    a.release()


def test_concurrent_threads_never_share(tmp_path):
    holders: dict[int, int] = {}
    clash = []
    lock = threading.Lock()

    def worker(k):
        with acquire_gpu(n_devices=2, lock_dir=tmp_path, timeout=20, poll=0.005, set_env=False) as gpu:
            with lock:
                if gpu in holders:
                    clash.append((k, gpu))
                holders[gpu] = k
            for _ in range(2000):  # hold it a little while others try
                pass
            with lock:
                del holders[gpu]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert clash == []


def test_release_on_exception(tmp_path):
    with pytest.raises(KeyError):
        with acquire_gpu(n_devices=1, lock_dir=tmp_path, timeout=1) as gpu:
            assert gpu == 0
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
            raise KeyError("boom")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with acquire_gpu(n_devices=1, lock_dir=tmp_path, timeout=0.5, poll=0.01) as gpu:
        assert gpu == 0


def test_release_is_idempotent_and_no_double_acquire(tmp_path):
    lease = acquire_gpu(n_devices=1, lock_dir=tmp_path, timeout=1)
    assert lease.acquire() == 0
    with pytest.raises(RuntimeError, match="already acquired"):
        lease.acquire()
    lease.release()
    lease.release()
    assert lease.acquire() == 0
    lease.release()


CHILD = """
import os, sys
from bana_core.gpu_lease import acquire_gpu
lease = acquire_gpu(n_devices=1, lock_dir=sys.argv[1], timeout=10, poll=0.01)
print(lease.acquire(), os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
line = sys.stdin.readline()
if line.strip() == "exit":
    os._exit(0)  # no release, no finalizers
import time
time.sleep(60)  # wait to be killed
"""


@pytest.mark.parametrize("death", ["os._exit", "SIGKILL"])
def test_dead_process_releases_its_gpu(tmp_path, death):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert child.stdout.readline().split() == ["0", "0"]
        with pytest.raises(GpuLockTimeout, match=rf"gpu 0: pid {child.pid}"):
            acquire_gpu(n_devices=1, lock_dir=tmp_path, timeout=0.2, poll=0.01).acquire()
        if death == "os._exit":
            child.stdin.write("exit\n")
            child.stdin.flush()
        else:
            child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with acquire_gpu(n_devices=1, lock_dir=tmp_path, timeout=5, poll=0.01) as gpu:
        assert gpu == 0


def test_user_visible_devices_limit_the_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    a = acquire_gpu(n_devices=8, lock_dir=tmp_path, timeout=1, poll=0.01, set_env=False)
    ia = a.acquire()
    assert ia in (2, 3)
    b = acquire_gpu(lock_dir=tmp_path, timeout=1, poll=0.01)
    ib = b.acquire()
    assert ib == ({2, 3} - {ia}).pop()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == str(ib)  # only the leased device is visible
    b.release()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"  # restored
    b2 = acquire_gpu(lock_dir=tmp_path, timeout=1, poll=0.01, set_env=False)
    assert b2.acquire() == ib
    with pytest.raises(GpuLockTimeout, match="gpu 2: pid .*gpu 3: pid "):
        acquire_gpu(lock_dir=tmp_path, timeout=0.1, poll=0.01, set_env=False).acquire()
    b2.release()
    a.release()


@pytest.mark.parametrize("value", ["", "-1", "NoDevFiles"])
def test_visible_devices_naming_none_means_cpu(monkeypatch, tmp_path, value):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    with acquire_gpu(n_devices=4, lock_dir=tmp_path) as gpu:
        assert gpu is None
        assert os.environ["CUDA_VISIBLE_DEVICES"] == value


def test_slurm_allocation_is_used_as_granted(monkeypatch, tmp_path):
    # SLURM gave this job device 1 alone: no lock, no change, even if gpu1.lock is held locally.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    other = acquire_gpu(lock_dir=tmp_path, set_env=False)
    assert other.acquire() == 1
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with acquire_gpu(lock_dir=tmp_path, timeout=0.1) as gpu:
        assert gpu == 1
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    other.release()


def test_a_multi_gpu_slurm_allocation_is_leased_among_its_devices(monkeypatch, tmp_path):
    # salloc --gpus=2 granted devices 2 and 5 to one allocation, shared by the jobs run inside it.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    a = acquire_gpu(lock_dir=tmp_path, timeout=0.2, poll=0.01, set_env=False)
    b = acquire_gpu(lock_dir=tmp_path, timeout=0.2, poll=0.01, set_env=False)
    assert {a.acquire(), b.acquire()} == {2, 5}
    assert a.lock_path.parent == tmp_path / "slurm-42"
    with pytest.raises(GpuLockTimeout):  # both taken: a third job waits
        acquire_gpu(lock_dir=tmp_path, timeout=0.05, poll=0.01, set_env=False).acquire()
    # another allocation on the node sees its own devices under the same numbers: it does not wait
    monkeypatch.setenv("SLURM_JOB_ID", "43")
    with acquire_gpu(lock_dir=tmp_path, timeout=0.05, poll=0.01) as other:
        assert other in (2, 5) and os.environ["CUDA_VISIBLE_DEVICES"] == str(other)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,5"
    a.release()
    b.release()


def test_uuid_entries(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa-1111,GPU-bbbb-2222")
    a = acquire_gpu(lock_dir=tmp_path, timeout=1, poll=0.01, set_env=False)
    b = acquire_gpu(lock_dir=tmp_path, timeout=1, poll=0.01)
    assert {a.acquire(), b.acquire()} == {0, 1}
    assert os.environ["CUDA_VISIBLE_DEVICES"] in {"GPU-aaaa-1111", "GPU-bbbb-2222"}
    b.release()
    a.release()


def test_refuses_after_cuda_init(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="before CUDA is initialised"):
        acquire_gpu(n_devices=1, lock_dir=tmp_path).acquire()
    # nothing stays locked
    with acquire_gpu(n_devices=1, lock_dir=tmp_path, timeout=0.5, set_env=False) as gpu:
        assert gpu == 0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_devices"):
        acquire_gpu(n_devices=-1, lock_dir=tmp_path)
    with pytest.raises(ValueError, match="poll"):
        acquire_gpu(n_devices=1, lock_dir=tmp_path, poll=0)


# -- job_gpu: what every GPU rule's job runs under (bana_core.script_runner.run_script) ---------


def test_job_gpu_leases_for_auto_and_spreads(monkeypatch, tmp_path, caplog):
    from bana_core.gpu_lease import job_gpu

    monkeypatch.setenv("BANA_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    other = acquire_gpu(set_env=False)  # another job holds one of the two devices
    held = other.acquire()
    caplog.set_level("INFO", logger="bana")
    with job_gpu("auto"):
        free = str(1 - held)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == free
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    other.release()
    assert f"GPU lease: device {free} (CUDA_VISIBLE_DEVICES={free})" in caplog.text
    assert f"GPU lease: device {free} released" in caplog.text


@pytest.mark.parametrize("device", ["cpu", "cuda:1", None])
def test_job_gpu_takes_no_lease_for_cpu_or_a_pinned_device(monkeypatch, tmp_path, device):
    from bana_core.gpu_lease import job_gpu

    monkeypatch.setenv("BANA_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with job_gpu(device):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
        # Both devices are still free for other jobs.
        with acquire_gpu(timeout=0.1, poll=0.01, set_env=False) as a, acquire_gpu(timeout=0.1, poll=0.01) as b:
            assert {a, b} == {0, 1}


def test_job_gpu_under_slurm_uses_the_grant(monkeypatch, tmp_path, caplog):
    from bana_core.gpu_lease import job_gpu

    monkeypatch.setenv("BANA_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    caplog.set_level("INFO", logger="bana")
    with job_gpu("auto"), job_gpu("cuda"):  # a local lock would make the second one wait forever
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert caplog.text.count("GPU lease: SLURM grant used as is (CUDA_VISIBLE_DEVICES=1)") == 2


def test_job_gpu_without_gpus_runs_on_cpu(monkeypatch, tmp_path, caplog):
    from bana_core.gpu_lease import job_gpu

    monkeypatch.setenv("BANA_GPU_LOCK_DIR", str(tmp_path))
    fake_cuda(monkeypatch, 0)
    caplog.set_level("INFO", logger="bana")
    with job_gpu("auto"):
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert "GPU lease: none (no GPU visible), running on the CPU" in caplog.text
