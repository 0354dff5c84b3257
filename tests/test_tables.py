"""Tables: rows / columns of DESIGN.md, percentages, published columns, files."""
import math

import pandas as pd
import pytest

from bana_core.tables import build_table, fig3, table3, table5, table8, with_published, write_table


def ev(crf, ret=None, agree=None):
    return {"miou_crf": crf, "miou_ret": ret, "miou_agree": agree}


def test_table3_rows_and_percentages():
    df = table3({"gap": ev(0.5), "bap_nou0": ev(0.6), "bap": ev(0.7123, 0.65, 0.8)})
    assert list(df.index) == ["GAP", "BAP Ycrf w/o u0", "BAP Ycrf", "BAP Yret", "BAP Ycrf & Yret"]
    assert list(df.columns) == ["mIoU (val)"]
    assert df.loc["BAP Ycrf", "mIoU (val)"] == 71.2
    assert df.loc["BAP Ycrf & Yret", "mIoU (val)"] == 80.0


def test_table5_test_cell_says_submit_without_ground_truth():
    evals = {}
    for arch in ("v1", "v2"):
        for loss in ("ce_crf", "ce_ret", "nal"):
            evals[(arch, loss, "val")] = {"status": "scored", "miou_crf": 0.5, "miou_raw": 0.4}
        evals[(arch, "nal", "test")] = {"status": "submit"}
    df = table5(evals)
    assert list(df.columns) == ["DeepLab-V1", "DeepLab-V2"]
    assert df.loc["w/ NAL (test)", "DeepLab-V1"] == "submit"
    assert df.loc["w/ Ycrf (val)", "DeepLab-V2"] == 50.0


def test_table8_columns():
    evals = {(p, v, t, s): ev(0.5, 0.4, 0.9) for p in ("gap", "bap") for v in ("nou0", "std")
             for t in ("aug", "noaug") for s in ("train", "val")}
    df = table8(evals)
    assert list(df.columns) == ["aug train", "aug val", "non-aug train", "non-aug val"]
    assert len(df) == 7


def test_fig3_layout():
    evals = {(lam, d): {"miou_raw": lam / 10 + d / 1000} for lam in (0.05, 0.5, 0.7) for d in (70, 15, 3)}
    df = fig3(evals)
    assert list(df.index) == ["damp 70", "damp 15", "damp 3"]
    assert list(df.columns) == ["lambda 0.05", "lambda 0.5", "lambda 0.7"]
    assert df.loc["damp 3", "lambda 0.7"] == pytest.approx(100 * (0.07 + 0.003), abs=0.05)


def test_published_columns_beside_ours():
    ours = table3({"gap": ev(0.5), "bap_nou0": ev(0.6), "bap": ev(0.7, 0.65, 0.8)})
    df = with_published(ours, {"report": {"mIoU (val)": {"GAP": 75.5}}})
    assert list(df.columns) == ["mIoU (val) (ours)", "mIoU (val) (report)"]
    assert df.loc["GAP", "mIoU (val) (report)"] == 75.5
    assert math.isnan(df.loc["BAP Yret", "mIoU (val) (report)"])


def test_build_and_write(tmp_path):
    df = build_table("table3_pseudo_labels", ["gap", "bap_nou0", "bap"],
                     [ev(0.5), ev(0.6), ev(0.7, 0.65, 0.8)])
    write_table(df, tmp_path / "t3", title="Table 3")
    back = pd.read_csv(tmp_path / "t3.csv", index_col=0)
    assert back.loc["GAP", "mIoU (val)"] == 50.0
    md = (tmp_path / "t3.md").read_text()
    assert "**Table 3**" in md and "BAP Ycrf & Yret" in md
