"""Claims: deltas read from the right cells, verdicts from hand-made numbers."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bana_core.claims import (
    CLAIMS,
    CONTRADICTED,
    HOLDS,
    NOT_RESOLVED,
    claims_table,
    mean_bounds,
    seeds_needed,
    verdict,
)

ROOT = Path(__file__).resolve().parents[1]


# One-sided 95 % Student-t quantiles, from a printed table (not from scipy, which the code uses).
T95 = {1: 6.3138, 2: 2.9200, 3: 2.3534, 4: 2.1318}


@pytest.mark.parametrize("deltas, margin, expected", [
    ([1.0, 2.0, 3.0], 0.0, HOLDS),            # mean 2, se 1/sqrt(3): lower 2 - 2.92 * 0.577 = 0.31 > 0
    ([1.0, 2.0, 3.0], 0.5, NOT_RESOLVED),     # ... but 0.31 < a margin of 0.5
    ([-1.0, -2.0, -3.0], 0.0, CONTRADICTED),  # reversed effect: upper -0.31 < 0
    ([1.0, -1.0, 0.5, -0.5], 0.0, NOT_RESOLVED),  # no effect: mean 0
    ([0.2, 0.1, 0.3], 0.0, HOLDS),            # small but steady: lower 0.2 - 2.92 * 0.0577 = 0.031
    ([0.1, 0.1, 2.5], 0.0, NOT_RESOLVED),     # every seed positive, mean 0.9, lower -1.12: not enough
    ([-0.5, -0.6, -0.4], -1.0, HOLDS),        # "within 1 point": lower -0.5 - 2.92 * 0.0577 = -0.67 > -1
    ([-0.5, -0.8, -0.2], -1.0, NOT_RESOLVED),  # lower -0.5 - 2.92 * 0.173 = -1.006: just short
    ([-1.5, -1.6, -1.4], -1.0, CONTRADICTED),  # upper -1.5 + 0.169 = -1.33 < -1
    ([-1.5, -2.0, -1.2], -1.0, NOT_RESOLVED),  # upper -1.567 + 2.92 * 0.233 = -0.885 > -1
    ([0.4], 0.0, NOT_RESOLVED),               # one seed says nothing about noise
    ([-5.0], 0.0, NOT_RESOLVED),
    ([math.nan, math.nan], 0.0, NOT_RESOLVED),
    ([], 0.0, NOT_RESOLVED),
])
def test_verdict(deltas, margin, expected):
    assert verdict(deltas, margin) == expected


def test_bounds_are_the_hand_computed_t_bounds():
    b = mean_bounds([1.0, 2.0, 3.0])
    assert b["n"] == 3 and b["mean"] == pytest.approx(2.0) and b["sd"] == pytest.approx(1.0)
    assert b["se"] == pytest.approx(1 / math.sqrt(3))
    assert b["lower"] == pytest.approx(2.0 - T95[2] / math.sqrt(3), abs=1e-3)   # 0.3141
    assert b["upper"] == pytest.approx(2.0 + T95[2] / math.sqrt(3), abs=1e-3)   # 3.6859
    # five seeds: t(0.95, 4)
    b = mean_bounds([1.0, 3.0, 2.0, 4.0, 0.0])
    assert b["lower"] == pytest.approx(2.0 - T95[4] * math.sqrt(2.5) / math.sqrt(5), abs=1e-3)
    # two seeds: the wide t(0.95, 1)
    b = mean_bounds([1.0, 2.0])
    assert b["lower"] == pytest.approx(1.5 - T95[1] * math.sqrt(0.5) / math.sqrt(2), abs=1e-3)  # -1.657


def test_verdict_drops_missing_seeds():
    assert mean_bounds([1.0, math.nan, 2.0, None, 3.0]) == mean_bounds([1.0, 2.0, 3.0])
    assert verdict([1.0, math.nan, 2.0, 3.0]) == HOLDS
    assert verdict([1.0, math.nan]) == NOT_RESOLVED  # one valid seed left
    b = mean_bounds([math.nan])
    assert b["n"] == 0 and math.isnan(b["mean"]) and math.isnan(b["lower"])


def test_identical_seeds_resolve_by_their_value():
    assert verdict([0.5, 0.5, 0.5]) == HOLDS          # sd 0: the bounds are the mean
    assert verdict([0.0, 0.0, 0.0]) == NOT_RESOLVED   # exactly on the margin


def test_seeds_needed():
    # effect 1 point at sd 1: n = 5 is the first with t(0.95, n-1) / sqrt(n) < 1 (2.1318 / 2.236 = 0.953;
    # n = 4: 2.3534 / 2 = 1.18)
    assert seeds_needed(1.0, 1.0) == 5
    assert seeds_needed(-1.0, 1.0) == 5               # the size counts, not the sign
    assert seeds_needed(3.0, 1.0) == 3                # 2.92 / 1.732 = 1.69 < 3; n = 2: 6.31 / 1.41 = 4.46
    assert seeds_needed(0.0, 1.0) is None
    assert seeds_needed(0.1, 10.0, max_seeds=50) is None


def _seed_tables(bap: float, gap: float, nal_v1: float) -> dict[str, pd.DataFrame]:
    """Tables with distinct values in every cell, so a claim reading a wrong cell shows."""
    t3 = pd.DataFrame({"mIoU (val)": {"GAP": gap, "BAP Ycrf w/o u0": 70.0, "BAP Ycrf": bap, "BAP Yret": 60.0,
                                      "BAP Ycrf & Yret": 91.0}})
    t5 = pd.DataFrame({"DeepLab-V1": {"w/ Ycrf (val)": 50.0, "w/ Yret (val)": 48.0, "w/ NAL (val)": nal_v1,
                                      "w/ NAL (test)": 40.0},
                       "DeepLab-V2": {"w/ Ycrf (val)": 55.0, "w/ Yret (val)": 57.0, "w/ NAL (val)": 56.0,
                                      "w/ NAL (test)": "submit"}})
    t6 = pd.DataFrame({"generation grid 1": {"train grid 1": 80.0, "train grid 4": 83.0, "train grid 5": 81.0},
                       "generation grid 2": {"train grid 1": 79.0, "train grid 4": 82.5, "train grid 5": 78.0}})
    t7 = pd.DataFrame({"before CRF": {"Baseline": 45.0, "w/ Entropy Regularization": 44.0,
                                      "w/ Bootstrapping": 46.0, "w/ Lwce": 47.0},
                       "after CRF": {"Baseline": 49.0, "w/ Entropy Regularization": 52.0,
                                     "w/ Bootstrapping": 50.5, "w/ Lwce": 51.0}})
    fig3 = pd.DataFrame({"lambda 0.05": {"damp 70": 46.0, "damp 3": 47.5},
                         "lambda 0.7": {"damp 70": 45.5, "damp 3": 44.0}})
    t4 = pd.DataFrame({"AP": {"BAP: Ycrf": 30.0, "BAP: Yret": 20.0}, "AP50": {"BAP: Ycrf": 1.0, "BAP: Yret": 99.0}})
    t9 = pd.DataFrame({"CAMs for u_c": {"BAP Ycrf": 80.0, "BAP Yret": 70.0},
                       "1 - u0 in place of u_c": {"BAP Ycrf": 77.0, "BAP Yret": 90.0}})
    return {"table3_pseudo_labels": t3, "table5_segmentation": t5, "table6_grid_size": t6, "table7_losses": t7,
            "fig3_lambda_damp": fig3, "table4_voc_to_coco": t4, "table9_class_agnostic": t9}


def test_claim_deltas_read_the_right_cells():
    deltas = {c.id: c.delta(_seed_tables(bap=90.0, gap=88.5, nal_v1=52.0)) for c in CLAIMS}
    assert deltas["C1"] == pytest.approx(1.5)          # BAP Ycrf - GAP
    assert deltas["C2"] == pytest.approx(20.0)         # BAP Ycrf - w/o u0
    assert deltas["C3"] == pytest.approx(30.0)         # Ycrf - Yret
    assert deltas["C4a"] == pytest.approx(2.0)         # V1 NAL - CE Ycrf
    assert deltas["C4b"] == pytest.approx(4.0)         # V1 NAL - CE Yret
    assert deltas["C4c"] == pytest.approx(1.0)         # V2 NAL - CE Ycrf
    assert deltas["C4d"] == pytest.approx(-1.0)        # V2 NAL - CE Yret
    assert deltas["C5a"] == pytest.approx(2.0)         # after CRF, not before
    assert deltas["C5b"] == pytest.approx(-1.0)
    assert deltas["C5c"] == pytest.approx(0.5)
    assert deltas["C6"] == pytest.approx(0.5)          # min(83 - 81, 83 - 82.5)
    assert deltas["C7"] == pytest.approx(-0.5)         # 47.0 (Lwce before CRF) - 47.5 (best cell)
    assert deltas["C8a"] == pytest.approx(10.0)        # AP, not AP50
    assert deltas["C8b"] == pytest.approx(-3.0)        # Ycrf row of Table 9


def test_claims_table_over_seeds_and_published_deltas():
    seeds = [_seed_tables(90.0, 88.5, 52.0), _seed_tables(91.0, 88.0, 47.0), _seed_tables(89.0, 89.5, 51.0)]
    published = yaml.safe_load((ROOT / "config" / "paper_results.yaml").read_text())
    df = claims_table(seeds, published)
    c1 = df.loc["C1"]
    assert c1["n seeds"] == 3
    assert c1["ours (mean)"] == pytest.approx(round((1.5 + 3.0 - 0.5) / 3, 1))
    assert c1["ours per seed"] == "+1.5 +3.0 -0.5"
    assert c1["verdict"] == NOT_RESOLVED
    assert (c1["paper"], c1["[Re]"]) == (3.1, 3.3)     # the issue's published deltas
    assert (df.loc["C2", "paper"], df.loc["C2", "[Re]"]) == (1.4, 1.8)
    assert (df.loc["C3", "paper"], df.loc["C3", "[Re]"]) == (9.3, 8.9)
    assert df.loc["C4a", "verdict"] == NOT_RESOLVED    # +2, -3, +1
    assert df.loc["C3", "verdict"] == HOLDS
    assert df.loc["C8b", "verdict"] == HOLDS           # -3 on every seed, within the 5-point margin
    assert math.isnan(df.loc["C6", "paper"])           # the paper does not publish Table 6
    # V2 NAL (test) says 'submit' in every seed: the claims never read it, and nothing breaks.
    assert df.loc["C4c", "n seeds"] == 3


def test_claims_from_table_files_reads_our_columns_only(tmp_path):
    tables = _seed_tables(90.0, 88.5, 52.0)
    files = {}
    for name, df in tables.items():
        shown = df.copy()
        # as written with show_paper_results: '<col> (ours)' beside '<col> (report)'
        shown.columns = [f"{c} (ours)" for c in df.columns]
        for c in df.columns:
            shown[f"{c} (report)"] = 0.0
        files[name] = tmp_path / f"{name}.csv"
        shown.to_csv(files[name])
    files["table6_grid_size"] = tmp_path / "plain.csv"   # and one without published columns
    tables["table6_grid_size"].to_csv(files["table6_grid_size"])
    from bana_core.claims import claims_from_table_files

    df = claims_from_table_files([files])
    assert df.loc["C1", "ours (mean)"] == 1.5
    assert df.loc["C6", "ours (mean)"] == 0.5
    assert df.loc["C4d", "verdict"] == NOT_RESOLVED   # one seed (-1.0) resolves nothing
    assert df.loc["C1", "n seeds"] == 1 and math.isnan(df.loc["C1", "lower (95 %)"])
