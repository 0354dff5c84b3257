"""The training loop shared by pretraining, stage 1 and stage 3.

Checkpoint dicts (model, optimizer, scaler, iteration, loss history) are written atomically every
``checkpoint_every`` iterations; a restarted job resumes from the latest one. Batches and
augmentation are a pure function of (seed, iteration) (see data.datasets), and the model RNG is
reseeded per iteration, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from .data.datasets import mix_seed
from .io import atomic_path
from .progress import ProgressLog, on_terminal

log = logging.getLogger(__name__)


def step_lr(steps: Iterable[int], gamma: float) -> Callable[[int], float]:
    steps = sorted(steps)
    return lambda it: gamma ** sum(it >= s for s in steps)


def poly_lr(iterations: int, power: float, warmup: int = 0) -> Callable[[int], float]:
    """DeepLab's poly schedule, optionally after a linear warm-up of ``warmup`` iterations (the
    demo's from-scratch ASPP and cosine classifier diverge in their first steps at a useful lr)."""
    return lambda it: min(1.0, (it + 1) / warmup if warmup else 1.0) * (1 - it / iterations) ** power


@dataclass
class TrainSpec:
    iterations: int
    lr: float
    lr_factor: Callable[[int], float]
    seed: int = 0
    checkpoint: Path | None = None
    checkpoint_every: int = 500
    log_csv: Path | None = None
    progress: bool = True
    desc: str = "train"
    log_every: int = 10
    extra_meta: dict = field(default_factory=dict)


def save_checkpoint(path: Path, model, optimizer, scaler, iteration: int, history: list[dict]) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "iteration": iteration,
        "history": history,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model, optimizer, scaler, device) -> tuple[int, list[dict]]:
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["iteration"]), list(state["history"])


def write_history(path: Path, history: list[dict]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, make_batches: Callable[[int], Iterable],
          step: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]], spec: TrainSpec,
          device: torch.device) -> list[dict]:
    """Run ``spec.iterations`` SGD steps; return the per-iteration history (loss parts, lr).

    ``make_batches(start)`` yields the batches of iterations start..end-1; ``step(model, batch)``
    returns the loss to minimise and a dict of floats to log. Each param group's lr is
    ``spec.lr * group['lr_mult'] * spec.lr_factor(iteration)``.
    """
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    start, history = 0, []
    if spec.checkpoint is not None and spec.checkpoint.exists():
        start, history = load_checkpoint(spec.checkpoint, model, optimizer, scaler, device)
        history = [row for row in history if row["iteration"] < start]
        log.info("resuming %s from %s at iteration %d", spec.desc, spec.checkpoint, start)
    model.train()
    # A bar on a terminal; in a rule's log (stderr a file under Snakemake / SLURM) a line every
    # twentieth of the run with loss, lr and ETA instead.
    bar = tqdm(total=spec.iterations, initial=start, desc=spec.desc, disable=not (spec.progress and on_terminal()),
               mininterval=2.0, dynamic_ncols=True)
    progress_log = ProgressLog(spec.desc, spec.iterations, start=start, every=max(1, spec.iterations // 20))
    it = start
    for it, batch in enumerate(make_batches(start), start=start):
        # A Python float: a numpy scalar from a schedule (np.cos) would reach the checkpoint through
        # the optimizer's lr and the history, and torch.load(weights_only=True) refuses numpy scalars.
        factor = float(spec.lr_factor(it))
        for group in optimizer.param_groups:
            group["lr"] = spec.lr * group.get("lr_mult", 1.0) * factor
        torch.manual_seed(mix_seed(spec.seed, it, 7))  # dropout etc.: a function of the iteration
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss, parts = step(model, batch)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"{spec.desc}: loss is {float(loss.detach())} at iteration {it}")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        row = {"iteration": it, "lr": spec.lr * factor, "loss": float(loss.detach()),
               **{k: float(v) for k, v in parts.items()}}
        history.append(row)
        bar.update(1)
        if it % spec.log_every == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}")
        done = it + 1
        progress_log.update(done, loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
        if spec.checkpoint is not None and done % spec.checkpoint_every == 0 and done < spec.iterations:
            save_checkpoint(spec.checkpoint, model, optimizer, scaler, done, history)
            if spec.log_csv is not None:
                write_history(spec.log_csv, history)
    bar.close()
    if spec.log_csv is not None:
        write_history(spec.log_csv, history)
    return history


def save_weights(path: Path, model: torch.nn.Module, meta: dict) -> None:
    """The final output of a training rule: weights plus what is needed to rebuild the model."""
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "meta": meta}, tmp)


def load_weights(path: Path, device: torch.device | str = "cpu") -> tuple[dict, dict]:
    from .errors import DataError

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "weights file not found") from None
    except Exception as e:  # corrupted or not a torch file
        raise DataError(path, f"cannot read weights ({e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DataError(path, "not a bana-pipeline weights file (no 'model' entry)")
    return state["model"], state.get("meta", {})
