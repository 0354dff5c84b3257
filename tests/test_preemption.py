"""A stage-1 training job killed (SIGKILL) after a checkpoint and started again ends with the
same weights as an uninterrupted run (CPU, fixed seed) -- what a preempted / requeued SLURM job
relies on."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from bana_core.config import load_yaml, validate_config
from bana_core.data.sbd import build_train_aug
from bana_core.data.synthetic import synthesize
from bana_core.data.voc import VocLayout, read_split, write_box_masks

ROOT = Path(__file__).resolve().parents[1]

TRAIN = textwrap.dedent("""
    import json, logging, os, signal, sys, threading, time
    from pathlib import Path
    import torch
    from bana_core.stage1 import train_classifier
    logging.basicConfig(level=logging.INFO)
    args = json.loads(sys.argv[1])
    work = Path(args["work"])
    if args["kill_after"]:
        def watch():  # SIGKILL ourselves once a checkpoint exists: a preemption mid-run
            while not (work / "checkpoint.pt").exists():
                time.sleep(0.005)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=watch, daemon=True).start()
    torch.set_num_threads(1)
    train_classifier(voc_root=Path(args["voc"]), image_ids=args["ids"], pool="bap", grid_size=2, cfg=args["cfg"],
                     pretrained=None, out=work / "model.pt", work_dir=work, device=torch.device("cpu"), seed=3,
                     progress=False)
""")


def run(args: dict) -> subprocess.CompletedProcess:
    import json

    return subprocess.run([sys.executable, "-c", TRAIN, json.dumps(args)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    root = tmp_path / "data"
    synthesize(root, image_size=(64, 48), n_train=8, n_val=4, n_test=2, n_sbd_only=4, n_coco=2, seed=0,
               progress=False)
    voc = root / "VOCdevkit" / "VOC2012"
    build_train_aug(voc, root / "benchmark_RELEASE" / "dataset", progress=False)
    layout = VocLayout(voc)
    ids = read_split(layout.split_path("train_aug"))
    write_box_masks(layout, ids, progress=False)
    cfg = validate_config(load_yaml(ROOT / "config" / "config.yaml"), ROOT / "config" / "schema.yaml")["stage1"]
    cfg.update(iterations=40, checkpoint_every=5, lr_steps=[30], batch_size=2, crop_size=32)
    cfg["backbone"].update(width=0.125, pretrained=None)
    base = {"voc": str(voc), "ids": ids, "cfg": cfg}

    straight = run({**base, "work": str(tmp_path / "a"), "kill_after": False})
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = run({**base, "work": str(tmp_path / "b"), "kill_after": True})
    assert killed.returncode == -9, "the job must have been killed before finishing"
    assert not (tmp_path / "b" / "model.pt").exists()
    resumed = run({**base, "work": str(tmp_path / "b"), "kill_after": False})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr

    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
