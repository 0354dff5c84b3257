"""Seeds: each further seed's config, the tables over seeds, and config/claims.yaml kept in step
with config/config.yaml."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bana_core.claims import CLAIM_TABLES, claims_table
from bana_core.config import validate_config
from bana_core.errors import ConfigError
from bana_core.seeds import (
    FURTHER_SEED_KEY,
    further_seeds,
    mean_sd_table,
    mean_sd_text,
    per_seed_files,
    seed_config,
    seed_table_from_files,
)
from bana_core.tables import write_table

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"


def _demo() -> dict:
    return validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), SCHEMA)


def test_seeds_default_is_the_run_alone():
    config = _demo()
    del config["seeds"]
    assert validate_config(config, SCHEMA)["seeds"] == [0]
    assert further_seeds(validate_config(config, SCHEMA)) == []


@pytest.mark.parametrize("seeds, message", [([], "should be non-empty|is too short"), ([0, 0], "non-unique"),
                                            ([-1], "less than the minimum"), ([0.5], "not of type 'integer'")])
def test_schema_refuses_bad_seeds(seeds, message):
    config = _demo()
    config["seeds"] = seeds
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)


def test_further_seed_zero_is_refused():
    with pytest.raises(ConfigError, match="0 may only come first"):
        further_seeds({"seeds": [1, 0]})
    assert further_seeds({"seeds": [0, 3, 1]}) == [3, 1]


def test_seed_config_offsets_training_and_data_seeds_only():
    config = _demo()
    config["seed"], config["dataset"]["synthetic"]["seed"] = 5, 11
    derived = seed_config(config, 2)
    assert derived["seeds"] == [2]
    assert derived["seed"] == 7
    assert derived["dataset"]["synthetic"]["seed"] == 13
    assert derived[FURTHER_SEED_KEY] == 2
    assert config["seed"] == 5 and config["dataset"]["synthetic"]["seed"] == 11  # the run's own untouched
    # Nothing else differs: the seeds repeat the same experiments.
    derived.pop(FURTHER_SEED_KEY)
    derived["seeds"], derived["seed"] = config["seeds"], config["seed"]
    derived["dataset"]["synthetic"]["seed"] = 11
    assert derived == config
    # The derived config (without the private key) is a valid config of its own.
    assert validate_config({k: v for k, v in seed_config(config, 2).items() if k != FURTHER_SEED_KEY}, SCHEMA)


def test_seed_config_of_downloaded_data_changes_training_seed_only():
    config = _demo()
    config["dataset"]["synthetic"] = None
    derived = seed_config(config, 3)
    assert derived["seed"] == config["seed"] + 3
    assert derived["dataset"] == config["dataset"]


def test_mean_sd_table_per_cell():
    a = pd.DataFrame({"x": {"r1": 1.0, "r2": 10.0}, "y": {"r1": "submit", "r2": 4.0}})
    b = pd.DataFrame({"x": {"r1": 3.0, "r2": 20.0}, "y": {"r1": "submit", "r2": 8.0}})
    c = pd.DataFrame({"x": {"r1": 5.0, "r2": math.nan}, "y": {"r1": 2.0, "r2": 6.0}})
    out = mean_sd_table([a, b, c])
    assert list(out.columns) == ["x (mean)", "x (sd)", "x (n)", "y (mean)", "y (sd)", "y (n)"]
    assert list(out.index) == ["r1", "r2"]
    assert out.loc["r1", "x (mean)"] == pytest.approx(3.0)
    assert out.loc["r1", "x (sd)"] == pytest.approx(2.0)  # sample sd of 1, 3, 5
    assert out.loc["r1", "x (n)"] == 3
    assert out.loc["r2", "x (mean)"] == pytest.approx(15.0)  # the NaN seed counts for none
    assert out.loc["r2", "x (sd)"] == pytest.approx(np.std([10, 20], ddof=1), abs=0.01)
    assert out.loc["r2", "x (n)"] == 2
    assert out.loc["r1", "y (mean)"] == pytest.approx(2.0)  # 'submit' is not a number
    assert math.isnan(out.loc["r1", "y (sd)"])  # one number: no sd
    assert out.loc["r1", "y (n)"] == 1
    text = mean_sd_text(out, 3)
    assert text.loc["r1", "x"] == "3.0 ± 2.0"
    assert text.loc["r2", "x"] == "15.0 ± 7.1 (n 2)"
    assert text.loc["r1", "y"] == "2.0 (n 1)"


def test_mean_sd_table_aligns_rows_by_name_and_marks_empty_cells():
    a = pd.DataFrame({"x": {"r1": 1.0, "r2": 2.0}})
    b = pd.DataFrame({"x": {"r2": 4.0, "r1": 3.0}})  # same cells, other order
    c = pd.DataFrame({"x": {"r1": math.nan, "r2": math.nan}})
    out = mean_sd_table([a, b])
    assert out["x (mean)"].tolist() == [2.0, 3.0]
    assert mean_sd_text(mean_sd_table([c]), 1).loc["r1", "x"] == "-"
    with pytest.raises(ValueError, match="at least one"):
        mean_sd_table([])


def test_seed_table_from_files_reads_our_columns(tmp_path):
    paths = []
    for s, value in enumerate((50.0, 54.0)):
        df = pd.DataFrame({"mIoU (val) (ours)": {"GAP": value}, "mIoU (val) (report)": {"GAP": 76.1}})
        df.index.name = "Method"
        (tmp_path / f"s{s}").mkdir()
        write_table(df, tmp_path / f"s{s}" / "table3_pseudo_labels")
        paths.append(tmp_path / f"s{s}" / "table3_pseudo_labels.csv")
    out = seed_table_from_files(paths)
    assert list(out.columns) == ["mIoU (val) (mean)", "mIoU (val) (sd)", "mIoU (val) (n)"]
    assert out.loc["GAP", "mIoU (val) (mean)"] == pytest.approx(52.0)
    assert out.loc["GAP", "mIoU (val) (sd)"] == pytest.approx(2.83, abs=0.01)


def test_per_seed_files_groups_by_seed():
    first = ["r/tables/t3.csv", "r/tables/t5.csv"]
    further = ["r/seeds/1/tables/t3.csv", "r/seeds/1/tables/t5.csv",
               "r/seeds/2/tables/t3.csv", "r/seeds/2/tables/t5.csv"]
    groups = per_seed_files(first, further)
    assert groups == [{"t3": first[0], "t5": first[1]}, {"t3": further[0], "t5": further[1]},
                      {"t3": further[2], "t5": further[3]}]
    assert per_seed_files(first, []) == [{"t3": first[0], "t5": first[1]}]
    with pytest.raises(ValueError, match="multiple"):
        per_seed_files(first, further[:3])
    with pytest.raises(ValueError, match="differ"):
        per_seed_files(first, [further[1], further[0]])


def test_claims_over_seeds_are_the_mean_of_the_seeds_deltas():
    per_seed = [{"table3_pseudo_labels": pd.DataFrame({"mIoU (val)": {"BAP Ycrf": bap, "GAP": gap}})}
                for bap, gap in ((80.0, 78.0), (82.0, 77.0), (79.0, 79.5))]
    row = claims_table(per_seed).loc["C1"]
    deltas = [2.0, 5.0, -0.5]
    assert row["n seeds"] == 3
    assert row["ours (mean)"] == pytest.approx(round(np.mean(deltas), 1))
    assert row["ours (sd)"] == pytest.approx(round(np.std(deltas, ddof=1), 1))
    assert row["verdict"] == "not resolved"  # mixed signs, mean 2.2 < 2 sd 5.5


# --- config/claims.yaml -------------------------------------------------------------------------
# The keys config/claims.yaml may differ in from config/config.yaml (dotted paths), and why:
INTENDED = {
    "seeds": "three seeds; the rest is the demo, so a finished demo is seed 0 of the claims run",
}


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_claims_config_differs_from_the_demo_only_where_intended():
    demo, claims = _flatten(_load("config.yaml")), _flatten(_load("claims.yaml"))
    differ = {k for k in demo.keys() | claims.keys() if demo.get(k, "<absent>") != claims.get(k, "<absent>")}
    assert differ == set(INTENDED), f"unintended differences: {sorted(differ ^ set(INTENDED))}"


def test_claims_config_is_valid_and_builds_every_claim_table():
    from bana_core.experiments import Experiments
    from bana_core.tables import tables_of

    config = validate_config(_load("claims.yaml"), SCHEMA)
    assert config["run"] == "demo"  # seed 0 is the demo's own run
    assert further_seeds(config) == [1, 2]
    built = {spec.name for spec in tables_of(Experiments(config))}
    assert set(CLAIM_TABLES) <= built


# --- two seeds end to end -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_seed_extends_a_finished_run(tiny_run, tmp_path):
    """The finished tiny run (tests/conftest.py) with seeds [0, 1] added, as config/claims.yaml
    adds seeds to the finished demo: nothing of seed 0 reruns but its tables' bookkeeping; seed 1
    is a module under seeds/1/ with its own data; tables over seeds and claims read both."""
    import shutil

    from workflow_env import planned_rules, snakemake

    from bana_core.claims import CLAIMS, read_our_table

    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)  # copy2: mtimes kept, so Snakemake sees a finished run
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["seeds"] = [0, 1]
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    planned = planned_rules(work)
    seed0 = {r for r in planned if not r.startswith("seed1_")}
    # seed 0's experiments are reused; only what reads the seeds (and the report of it all) runs
    assert seed0 <= {"table", "health_checks", "claims", "seed_table", "fig3_heatmap", "report"}, seed0
    assert {"seed1_train_classifier", "seed1_train_segmenter", "seed_table", "claims"} <= planned
    snakemake(work)

    run = work / "results" / "tiny"
    names = list(CLAIM_TABLES)
    folders = {0: run / "tables", 1: run / "seeds" / "1" / "tables"}
    for folder in folders.values():
        for name in names:
            assert (folder / f"{name}.csv").is_file(), folder / name
    assert not (run / "seeds" / "1" / "pretrain").exists()  # seed 1 reuses the run's backbones
    assert not (run / "seeds" / "1" / "tables" / "table8_bap_vs_gap.csv").exists()  # no claim reads it

    # Seed 1 drew its own data (data seed + 1): as many val images, other ones.
    voc = [work / "data" / name / "VOCdevkit/VOC2012" for name in ("tiny", "tiny-seed1")]
    val = [(v / "ImageSets/Segmentation/val.txt").read_text().split() for v in voc]
    assert len(val[0]) == len(val[1]) == config["dataset"]["synthetic"]["n_val"]
    digests = [hashlib.sha256(b"".join((v / "SegmentationClass" / f"{i}.png").read_bytes() for i in ids)).hexdigest()
               for v, ids in zip(voc, val, strict=True)]
    assert digests[0] != digests[1]

    per_seed = {s: {n: read_our_table(folder / f"{n}.csv") for n in names} for s, folder in folders.items()}
    # Tables over seeds: mean, sd and n of the two seeds' cells.
    t3 = pd.read_csv(run / "tables" / "seeds" / "table3_pseudo_labels.csv", index_col=0)
    ours = [per_seed[s]["table3_pseudo_labels"]["mIoU (val)"] for s in (0, 1)]
    assert (t3["mIoU (val) (n)"] == 2).all()
    np.testing.assert_allclose(t3["mIoU (val) (mean)"], (ours[0] + ours[1]) / 2, atol=0.006)
    np.testing.assert_allclose(t3["mIoU (val) (sd)"], (ours[0] - ours[1]).abs() / np.sqrt(2), atol=0.006)
    assert "±" in (run / "tables" / "seeds" / "table3_pseudo_labels.md").read_text()

    # Claims: n seeds 2 wherever both seeds resolve the claim, mean = mean of the seeds' deltas.
    claims = pd.read_csv(run / "tables" / "claims.csv", index_col=0)
    checked = 0
    for claim in CLAIMS:
        deltas = [claim.delta(per_seed[s]) for s in (0, 1)]
        if any(math.isnan(d) for d in deltas):  # e.g. C6: the tiny config has no train grid 4
            assert claims.loc[claim.id, "n seeds"] == 0
            continue
        assert claims.loc[claim.id, "n seeds"] == 2, claim.id
        assert claims.loc[claim.id, "ours (mean)"] == pytest.approx(np.mean(deltas), abs=0.051), claim.id
        checked += 1
    assert checked >= 10
    assert "claims" in (run / "report.html").read_text()
