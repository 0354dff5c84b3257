"""ImageNet weights are fetched by a local rule (the submitting host), checksummed, and read by the
training jobs from data/imagenet/ without network."""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from archive_server import start_server
from workflow_env import copy_workflow, snakemake

from bana_core.errors import DataError
from bana_core.models.weights import fetch_imagenet_checkpoint, resolve_pretrained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(request, monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    srv = start_server()
    request.addfinalizer(srv.stop)
    return srv


def state_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"conv.weight": torch.arange(6.0).view(2, 3)}, buf)
    return buf.getvalue()


def test_fetch_checks_the_sha256_prefix_of_the_name(server, tmp_path):
    data = state_bytes()
    good = f"/models/tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.files[good] = data
    path = fetch_imagenet_checkpoint(server.url(good), tmp_path / "hub", progress=False)
    assert path == tmp_path / "hub" / "checkpoints" / good.rsplit("/", 1)[-1]
    assert path.read_bytes() == data
    # a second call reads the file, no request
    n = len(server.requests)
    fetch_imagenet_checkpoint(server.url(good), tmp_path / "hub", progress=False)
    assert len(server.requests) == n
    bad = "/models/tiny-00000000.pth"
    server.files[bad] = data
    with pytest.raises(DataError, match=r"tiny-00000000.pth: downloaded from .*"):
        fetch_imagenet_checkpoint(server.url(bad), tmp_path / "hub", progress=False)
    assert not (tmp_path / "hub" / "checkpoints" / "tiny-00000000.pth").exists()


def test_resolve_pretrained_points_torch_hub_at_the_fetched_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    before = torch.hub.get_dir()
    try:
        ckpt = tmp_path / "data" / "imagenet" / "checkpoints" / "vgg16-397923af.pth"
        assert resolve_pretrained("imagenet", [str(ckpt)]) == "imagenet"
        assert torch.hub.get_dir() == str(tmp_path / "data" / "imagenet")  # torchvision looks in <hub>/checkpoints
        assert resolve_pretrained("pretrain", ["results/demo/pretrain/vgg/shipped.pt"]) == \
            "results/demo/pretrain/vgg/shipped.pt"
        assert resolve_pretrained(None, []) is None
        assert resolve_pretrained("imagenet", []) == "imagenet"  # not planned by the workflow: as before
    finally:
        torch.hub.set_dir(before)


LOCAL_RULES_OF = """
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings(quiet=True)) as api:
    wf = api.workflow(snakefile=Path("Snakefile"), resource_settings=ResourceSettings(cores=1),
                      config_settings=ConfigSettings(configfiles=[Path("config/voc2012.yaml")]))
    print(" ".join(sorted(wf._workflow._localrules)))
"""


def job_resources_of(dry_run: str, rule: str) -> set[str]:
    """The distinct `resources:` lines of ``rule``'s jobs in a dry run's output."""
    blocks = re.findall(rf"^rule {rule}:\n(.*?)(?:\n\n|\Z)", dry_run, re.M | re.S)
    return {m.group(1) for b in blocks for m in [re.search(r"resources: (.*)", b)] if m}


def test_the_paper_config_under_the_shipped_slurm_profile(tmp_path):
    work = copy_workflow(tmp_path)
    shutil.copytree(ROOT / "profiles", work / "profiles")  # as shipped
    out = snakemake(work, "-n", "--profile", "profiles/slurm", configfile="config/voc2012.yaml").stdout
    # each job sized by config/voc2012.yaml's `resources` block (first attempt), one GPU each
    (segmenter,) = job_resources_of(out, "train_segmenter")
    assert "runtime=1440" in segmenter and "mem_mb=16000" in segmenter and "gpu=1" in segmenter
    (classifier,) = job_resources_of(out, "train_classifier")
    assert "runtime=360" in classifier and "mem_mb=16000" in classifier
    assert not any("slurm_partition" in r for r in job_resources_of(out, "train_segmenter"))  # the cluster's default
    # network work runs on the submitting host
    assert re.search(r"^download\s+4$", out, re.M) and re.search(r"^imagenet_weights\s+2$", out, re.M)
    assert "data/imagenet/checkpoints/vgg16-397923af.pth" in out
    assert "data/imagenet/checkpoints/resnet101-63fe2227.pth" in out
    # Snakemake's dry run prints every job as `rule`: ask the workflow which rules run on the submitting host
    env = dict(os.environ, PYTHONPATH=str(work))
    local = subprocess.run([sys.executable, "-c", LOCAL_RULES_OF], cwd=work, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"download", "imagenet_weights"} <= set(local)
    assert not {"train_classifier", "train_segmenter", "pseudo_labels_shard"} & set(local)
