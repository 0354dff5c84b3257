"""The report's claims as numbers: each claim is a difference of two cells of our tables.

A claim's *delta* is computed by the same function from our tables and from the published ones
(config/paper_results.yaml: 'authors' = the BANA paper as the report quotes it, 'report' = the
[Re] reproduction), so the three columns of the claims table cannot drift apart. Over n seeds,
the verdict comes from a one-sided 95 % Student-t bound on the mean delta (standard error
sd / sqrt(n), t quantile with n - 1 degrees of freedom), a level fixed before any verdict was
seen:

* **holds**: the lower bound, mean - t(0.95, n - 1) * se, is above the claim's margin;
* **contradicted**: the upper bound, mean + t(0.95, n - 1) * se, is below the margin;
* **not resolved**: the margin lies between the bounds, or fewer than two seeds have a delta
  (one run says nothing about seed-to-seed noise).

Each bound errs with probability 5 % when the claim's true delta sits exactly on the margin
(if seeds are independent and their deltas roughly normal). The margin is 0 for "A beats B";
claims of the form "A is at or near B" allow a tolerance. :func:`seeds_needed` says how many
seeds resolve an effect of a given size at a given seed-to-seed sd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

Tables = Mapping[str, pd.DataFrame]  # table name -> our values (rows x columns, percent)

HOLDS, NOT_RESOLVED, CONTRADICTED = "holds", "not resolved", "contradicted"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    table: str  # where the numbers come from (for the reader)
    delta: Callable[[Tables], float]  # percentage points; NaN when a table lacks the cells
    margin: float = 0.0


def _cell(tables: Tables, table: str, row: str, col: str) -> float:
    df = tables.get(table)
    if df is None or row not in df.index or col not in df.columns:
        return math.nan
    value = df.loc[row, col]
    try:
        return float(value)
    except (TypeError, ValueError):  # e.g. 'submit'
        return math.nan


def _diff(table: str, a: tuple[str, str], b: tuple[str, str]) -> Callable[[Tables], float]:
    return lambda t: _cell(t, table, *a) - _cell(t, table, *b)


def _grid_best(t: Tables) -> float:
    """Table 6: how far train grid 4 / generation grid 1 is above the best other cell of its
    column (other train grids) and of its row (other generation grids); the smaller of the two."""
    df = t.get("table6_grid_size")
    cell = ("train grid 4", "generation grid 1")
    if df is None or cell[0] not in df.index or cell[1] not in df.columns:
        return math.nan
    value = float(df.loc[cell])
    others_col = df[cell[1]].drop(cell[0]).astype(float)
    others_row = df.loc[cell[0]].drop(cell[1]).astype(float)
    gaps = [value - s.max() for s in (others_col, others_row) if len(s)]
    return min(gaps) if gaps else math.nan


def _fig3_default_vs_best(t: Tables) -> float:
    """The paper's lambda 0.1 / damp 7 (Table 7's L_wce, before CRF as Fig. 3) minus the best
    cell of the Fig. 3 grid."""
    df = t.get("fig3_lambda_damp")
    default = _cell(t, "table7_losses", "w/ Lwce", "before CRF")
    if df is None or df.empty:
        return math.nan
    return default - float(np.nanmax(df.to_numpy(dtype=float)))


def _agnostic_vs_cams(t: Tables) -> float:
    return _cell(t, "table9_class_agnostic", "BAP Ycrf", "1 - u0 in place of u_c") - _cell(
        t, "table9_class_agnostic", "BAP Ycrf", "CAMs for u_c")


T3, T5, T7 = "table3_pseudo_labels", "table5_segmentation", "table7_losses"
# Every table some claim reads (the claims rule's inputs).
CLAIM_TABLES = (T3, "table4_voc_to_coco", T5, "table6_grid_size", T7, "table9_class_agnostic", "fig3_lambda_damp")
MIOU = "mIoU (val)"

CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "BAP Ycrf > GAP Ycrf", "Table 3", _diff(T3, ("BAP Ycrf", MIOU), ("GAP", MIOU))),
    Claim("C2", "BAP Ycrf > BAP Ycrf w/o u0", "Table 3", _diff(T3, ("BAP Ycrf", MIOU), ("BAP Ycrf w/o u0", MIOU))),
    Claim("C3", "Ycrf > Yret as labels", "Table 3", _diff(T3, ("BAP Ycrf", MIOU), ("BAP Yret", MIOU))),
    *(Claim(f"C4{tag}", f"NAL > CE on {labels}, DeepLab-{arch}", "Table 5",
            _diff(T5, ("w/ NAL (val)", f"DeepLab-{arch}"), (f"w/ {labels} (val)", f"DeepLab-{arch}")))
      for tag, labels, arch in (("a", "Ycrf", "V1"), ("b", "Yret", "V1"), ("c", "Ycrf", "V2"), ("d", "Yret", "V2"))),
    *(Claim(f"C5{tag}", f"Lwce > {name} (DeepLab-V1, after CRF)", "Table 7",
            _diff(T7, ("w/ Lwce", "after CRF"), (row, "after CRF")))
      for tag, name, row in (("a", "baseline", "Baseline"),
                           ("b", "entropy regularisation", "w/ Entropy Regularization"),
                             ("c", "bootstrapping", "w/ Bootstrapping"))),
    Claim("C6", "train grid 4 and generation grid 1 are the best cells", "Table 6", _grid_best),
    Claim("C7", "lambda 0.1 / damp 7 at or near (within 1 point) the best of Fig. 3", "Table 7, Fig. 3",
          _fig3_default_vs_best, margin=-1.0),
    Claim("C8a", "class-agnostic labels on unseen classes: Ycrf AP > Yret AP", "Table 4",
          _diff("table4_voc_to_coco", ("BAP: Ycrf", "AP"), ("BAP: Yret", "AP"))),
    Claim("C8b", "1 - u0 within a few (5) points of the CAMs (Ycrf)", "Table 9", _agnostic_vs_cams, margin=-5.0),
)


CONFIDENCE = 0.95  # one-sided, for the lower (holds) and the upper (contradicted) bound


def _valid(deltas: Sequence[float]) -> np.ndarray:
    return np.asarray([x for x in deltas if x is not None and not math.isnan(x)], dtype=float)


def _t_quantile(n: int, confidence: float) -> float:
    from scipy.stats import t  # scipy.stats costs ~0.5 s to import: only the claims need it

    return float(t.ppf(confidence, n - 1))


def mean_bounds(deltas: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean, standard error and one-sided ``confidence`` bounds of the deltas over seeds (NaNs
    dropped): ``{"n", "mean", "sd", "se", "lower", "upper"}``; sd, se and the bounds are NaN
    below two seeds."""
    d = _valid(deltas)
    n = int(d.size)
    out = {"n": n, "mean": float(d.mean()) if n else math.nan, "sd": math.nan, "se": math.nan,
           "lower": math.nan, "upper": math.nan}
    if n >= 2:
        sd = float(d.std(ddof=1))
        se = sd / math.sqrt(n)
        half = _t_quantile(n, confidence) * se
        out.update(sd=sd, se=se, lower=out["mean"] - half, upper=out["mean"] + half)
    return out


def verdict(deltas: Sequence[float], margin: float = 0.0, confidence: float = CONFIDENCE) -> str:
    """holds / not resolved / contradicted for one claim's deltas over seeds (NaNs dropped): the
    one-sided ``confidence`` bounds of the mean delta against ``margin`` (module docstring)."""
    b = mean_bounds(deltas, confidence)
    if b["n"] < 2:
        return NOT_RESOLVED
    if b["lower"] > margin:
        return HOLDS
    if b["upper"] < margin:
        return CONTRADICTED
    return NOT_RESOLVED


def seeds_needed(effect: float, sd: float, confidence: float = CONFIDENCE, max_seeds: int = 1000) -> int | None:
    """The fewest seeds (at least 2) whose bound resolves a mean delta ``effect`` points away from
    the margin when the seed-to-seed sd is ``sd``: t(confidence, n - 1) * sd / sqrt(n) < |effect|.
    None when even ``max_seeds`` do not (no effect, or noise far larger than it)."""
    if effect == 0 or math.isnan(effect) or math.isnan(sd):
        return None
    for n in range(2, max_seeds + 1):
        if _t_quantile(n, confidence) * sd / math.sqrt(n) < abs(effect):
            return n
    return None


def published_tables(published: Mapping[str, Mapping], source: str) -> dict[str, pd.DataFrame]:
    """{table: DataFrame} of one source ('authors' or 'report') of config/paper_results.yaml."""
    out = {}
    for table, sources in published.items():
        columns = (sources or {}).get(source)
        if columns:
            out[table] = pd.DataFrame(columns)
    return out


def claims_table(per_seed: Sequence[Tables], published: Mapping[str, Mapping] | None = None,
                 claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """One row per claim: the paper's and the [Re] delta; ours: mean, sd, standard error, one-sided 95 %
    bounds, n and each seed's delta; the margin and the verdict."""
    published = published or {}
    paper, reproduction = published_tables(published, "authors"), published_tables(published, "report")
    rows = {}
    for claim in claims:
        deltas = [claim.delta(t) for t in per_seed]
        b = mean_bounds(deltas)
        rows[claim.id] = {
            "claim": claim.text,
            "table": claim.table,
            "paper": round(claim.delta(paper), 1),
            "[Re]": round(claim.delta(reproduction), 1),
            "ours (mean)": round(b["mean"], 1),
            "ours (sd)": round(b["sd"], 1),
            "ours (se)": round(b["se"], 2),
            "lower (95 %)": round(b["lower"], 1),
            "upper (95 %)": round(b["upper"], 1),
            "n seeds": b["n"],
            "ours per seed": " ".join(f"{d:+.1f}" for d in _valid(deltas)),
            "margin": claim.margin,
            "verdict": verdict(deltas, claim.margin),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("id")


def read_our_table(path) -> pd.DataFrame:
    """One of our table CSVs, our columns only (published columns, '<col> (report)' etc., dropped)."""
    df = pd.read_csv(path, index_col=0)
    ours = [c for c in df.columns if c.endswith(" (ours)")]
    if ours:
        df = df[ours].rename(columns=lambda c: c[: -len(" (ours)")])
    return df


def claims_from_table_files(per_seed_files: Sequence[Mapping[str, str]],
                            published: Mapping | None = None) -> pd.DataFrame:
    """The claims table from table CSVs: one {table name: csv path} mapping per seed."""
    per_seed = [{name: read_our_table(path) for name, path in files.items()} for files in per_seed_files]
    return claims_table(per_seed, published)
