"""Several seeds of one run: each further seed's config and folders, and tables over seeds.

The config's ``seeds`` list names the repetitions. ``seeds[0]`` is the run itself: its ``seed``
and ``dataset.synthetic.seed`` as given, its outputs under ``results/<run>/`` (so a one-seed
config is exactly the run it always was). Each further seed ``s`` repeats the experiments with
training seed ``seed + s`` and data seed ``dataset.synthetic.seed + s``, under
``results/<run>/seeds/<s>/``; synthetic data for it lives in ``data/<name>-seed<s>/`` (data seed
``base + s`` there whatever the run, so runs sharing a dataset name share it as the first seeds
share ``data/<name>/``). Downloaded data is the same for every seed: only training differs.

Over seeds, a table cell is the mean, the sample standard deviation and n of the seeds that
give a number there (a seed's 'submit' or missing cell counts for none).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .claims import read_our_table
from .errors import ConfigError

# Private key of a further seed's derived config: its seed; rules/common.smk pops it before
# validation and places that module's outputs in the seed's folders.
FURTHER_SEED_KEY = "_further_seed"


def further_seeds(config: dict) -> list[int]:
    """``seeds[1:]``: the seeds repeated beside the run itself. Seed 0 there would repeat the
    run itself (offset 0), so it is refused."""
    seeds = list(config["seeds"])
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: {seeds} names a seed twice")
    if 0 in seeds[1:]:
        raise ConfigError(f"seeds: {seeds}: 0 may only come first (a further seed s offsets the "
                          "run's seeds by s, and 0 would repeat the run itself)")
    return seeds[1:]


def seed_config(config: dict, seed: int) -> dict:
    """The config of further seed ``seed``: seeds [seed], training and data seeds offset by it."""
    out = copy.deepcopy(config)
    out["seeds"] = [seed]
    out["seed"] = config["seed"] + seed
    synthetic = out["dataset"].get("synthetic")
    if synthetic is not None and "seed" in synthetic:
        synthetic["seed"] = synthetic["seed"] + seed
    out[FURTHER_SEED_KEY] = seed
    return out


SEEDS_FOLDER = "seeds"  # under the run's folder: one subfolder per further seed


def seed_run_dir(run_dir: str | Path, seed: int) -> str:
    """Where further seed ``seed`` of the run in ``run_dir`` writes."""
    return f"{run_dir}/{SEEDS_FOLDER}/{seed}"


def seed_dataset_name(name: str, seed: int) -> str:
    """The data folder name of further seed ``seed`` (synthetic data only)."""
    return f"{name}-seed{seed}"


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(pd.to_numeric, errors="coerce").astype(float)


def mean_sd_table(per_seed: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Cell-wise mean, sd (ddof 1; NaN below two numbers) and n over the seeds' tables.

    Rows and columns are the first table's; columns come out as '<col> (mean)', '<col> (sd)',
    '<col> (n)'. Non-numeric cells ('submit') and cells a seed lacks count for none."""
    if not per_seed:
        raise ValueError("mean_sd_table needs at least one table")
    first = per_seed[0]
    stack = np.stack([_numeric(df.reindex(index=first.index, columns=first.columns)).to_numpy()
                      for df in per_seed])
    n = (~np.isnan(stack)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN cells stay NaN
        total = np.nansum(stack, axis=0)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        sq = np.nansum((stack - mean) ** 2, axis=0)
        sd = np.where(n > 1, np.sqrt(sq / np.maximum(n - 1, 1)), np.nan)
    parts = {"mean": np.round(mean, 2), "sd": np.round(sd, 2), "n": n}
    out = pd.DataFrame(index=first.index)
    for j, col in enumerate(first.columns):
        for stat, values in parts.items():
            out[f"{col} ({stat})"] = values[:, j]
    out.index.name = first.index.name
    return out


def mean_sd_text(table: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    """``mean_sd_table``'s output as 'mean ± sd' strings for Markdown; '(n k)' where fewer than
    ``n_seeds`` seeds gave a number, '-' where none did."""
    cols = [c[: -len(" (mean)")] for c in table.columns if c.endswith(" (mean)")]
    out = pd.DataFrame(index=table.index)
    out.index.name = table.index.name
    for col in cols:
        cells = []
        for mean, sd, n in zip(table[f"{col} (mean)"], table[f"{col} (sd)"], table[f"{col} (n)"], strict=True):
            if n == 0:
                cells.append("-")
                continue
            text = f"{mean:.1f}" if math.isnan(sd) else f"{mean:.1f} ± {sd:.1f}"
            cells.append(text if n == n_seeds else f"{text} (n {int(n)})")
        out[col] = cells
    return out


def seed_table_from_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """``mean_sd_table`` of one table's CSVs, one per seed (our columns only)."""
    return mean_sd_table([read_our_table(p) for p in paths])


def per_seed_files(first: Sequence[str | Path], further: Sequence[str | Path]) -> list[dict[str, str]]:
    """{table name: csv} per seed, from seeds[0]'s table CSVs and the further seeds' CSVs listed
    seed after seed in the same order (the claims rule's inputs)."""
    k = len(first)
    if k == 0 or len(further) % k:
        raise ValueError(f"{len(further)} further-seed tables are not a multiple of the first seed's {k}")
    groups = [list(first)] + [list(further[i:i + k]) for i in range(0, len(further), k)]
    out = []
    for group in groups:
        names = [Path(p).stem for p in group]
        if names != [Path(p).stem for p in first]:
            raise ValueError(f"a seed's tables {names} differ from the first seed's")
        out.append({name: str(p) for name, p in zip(names, group, strict=True)})
    return out
