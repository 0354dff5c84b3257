"""Tables: rows / columns as README's outputs name them, percentages, published columns, files.

Every builder is fed a distinct value in every field of every evaluation, so a cell that reads
the wrong key or the wrong field (swapped rows or columns) fails.
"""
import itertools
import math
from pathlib import Path

import pandas as pd
import pytest

from bana_core.config import load_yaml, validate_config
from bana_core.experiments import Experiments
from bana_core.tables import (
    NO_TEST_IMAGES,
    TABLE_SPECS,
    TABLES,
    build_table,
    fig3,
    needed_segmenters,
    table3,
    table5,
    table8,
    table_inputs,
    tables_of,
    with_published,
    write_table,
)

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("miou_crf", "miou_ret", "miou_agree", "miou_raw", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")


def paper_experiments(test_archive: str | None = "VOC2012test.tar") -> Experiments:
    """The paper config's experiments; with the test archive a user adds (shipped: null)."""
    config = validate_config(load_yaml(ROOT / "config" / "voc2012.yaml"), ROOT / "config" / "schema.yaml")
    config["dataset"]["voc_test_archive"] = test_archive
    return Experiments(config)


def distinct_evals(keys) -> dict:
    """Each key's evaluation with values no other key or field shares (0.001 apart: 0.1 points)."""
    counter = itertools.count(1)
    evals = {}
    for key in keys:
        ev = {f: next(counter) / 1000 for f in FIELDS}
        ev["status"] = "scored"
        evals[key] = ev
    return evals


def cell(evals, key, field):
    return round(100 * evals[key][field], 1)


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
    df = build_table("table3_pseudo_labels", {"gap": ev(0.5), "bap_nou0": ev(0.6), "bap": ev(0.7, 0.65, 0.8)})
    write_table(df, tmp_path / "t3", title="Table 3")
    back = pd.read_csv(tmp_path / "t3.csv", index_col=0)
    assert back.loc["GAP", "mIoU (val)"] == 50.0
    md = (tmp_path / "t3.md").read_text()
    assert "**Table 3**" in md and "BAP Ycrf & Yret" in md


# -- distinct values per cell: every builder, every cell ------------------------------------------


def built(name: str):
    exp = paper_experiments()
    keys = list(TABLE_SPECS[name].needs(exp))
    if name == "table4_voc_to_coco":  # one COCOeval file holding both label kinds
        evals = {"all": distinct_evals(["crf", "ret"])}
        return TABLE_SPECS[name].build(evals), evals["all"]
    evals = distinct_evals(keys)
    return TABLE_SPECS[name].build(evals), evals


def test_every_table_has_a_cell_test():
    tested = {n[len("test_cells_of_"):] for n in globals() if n.startswith("test_cells_of_")}
    assert tested == set(TABLE_SPECS) | {"health_checks"}


def test_cells_of_table3_pseudo_labels():
    df, ev = built("table3_pseudo_labels")
    col = df["mIoU (val)"]
    assert col["GAP"] == cell(ev, "gap", "miou_crf")
    assert col["BAP Ycrf w/o u0"] == cell(ev, "bap_nou0", "miou_crf")
    assert col["BAP Ycrf"] == cell(ev, "bap", "miou_crf")
    assert col["BAP Yret"] == cell(ev, "bap", "miou_ret")
    assert col["BAP Ycrf & Yret"] == cell(ev, "bap", "miou_agree")


def test_cells_of_table4_voc_to_coco():
    df, ev = built("table4_voc_to_coco")
    assert list(df.index) == ["BAP: Ycrf", "BAP: Yret"]
    for col in ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"):
        assert df.loc["BAP: Ycrf", col] == cell(ev, "crf", col)
        assert df.loc["BAP: Yret", col] == cell(ev, "ret", col)


def test_cells_of_table5_segmentation():
    df, ev = built("table5_segmentation")
    rows = {"w/ Ycrf (val)": ("ce_crf", "val"), "w/ Yret (val)": ("ce_ret", "val"), "w/ NAL (val)": ("nal", "val"),
            "w/ NAL (test)": ("nal", "test"), "full supervision (val)": ("ce_gt", "val")}
    assert list(df.index) == list(rows)
    for col, arch in (("DeepLab-V1", "v1"), ("DeepLab-V2", "v2")):
        for row, (loss, split) in rows.items():
            assert df.loc[row, col] == cell(ev, (arch, loss, split), "miou_crf"), (row, col)


def test_cells_of_table6_grid_size():
    df, ev = built("table6_grid_size")
    assert list(df.index) == [f"train grid {t}" for t in (1, 2, 3, 4, 5)]
    assert list(df.columns) == [f"generation grid {g}" for g in (1, 2, 3)]
    for t, g in itertools.product((1, 2, 3, 4, 5), (1, 2, 3)):
        assert df.loc[f"train grid {t}", f"generation grid {g}"] == cell(ev, (t, g), "miou_crf")


def test_cells_of_table7_losses():
    df, ev = built("table7_losses")
    rows = {"Baseline": "baseline", "w/ Entropy Regularization": "er", "w/ Bootstrapping": "bootstrap",
            "w/ Lwce": "nal"}
    assert list(df.index) == list(rows)
    for row, loss in rows.items():
        assert df.loc[row, "before CRF"] == cell(ev, loss, "miou_raw")
        assert df.loc[row, "after CRF"] == cell(ev, loss, "miou_crf")


def test_cells_of_table8_bap_vs_gap():
    df, ev = built("table8_bap_vs_gap")
    rows = {"GAP Ycrf w/o u0": ("gap", "nou0", "miou_crf"), "GAP Ycrf": ("gap", "std", "miou_crf"),
            "GAP Yret": ("gap", "std", "miou_ret"), "BAP Ycrf w/o u0": ("bap", "nou0", "miou_crf"),
            "BAP Ycrf": ("bap", "std", "miou_crf"), "BAP Yret": ("bap", "std", "miou_ret"),
            "BAP Ycrf & Yret": ("bap", "std", "miou_agree")}
    cols = {"aug train": ("aug", "train"), "aug val": ("aug", "val"), "non-aug train": ("noaug", "train"),
            "non-aug val": ("noaug", "val")}
    assert list(df.index) == list(rows) and list(df.columns) == list(cols)
    for (row, (pool, variant, field)), (col, (trainset, split)) in itertools.product(rows.items(), cols.items()):
        assert df.loc[row, col] == cell(ev, (pool, variant, trainset, split), field), (row, col)


def test_cells_of_table9_class_agnostic():
    df, ev = built("table9_class_agnostic")
    for col, key in (("CAMs for u_c", "cam"), ("1 - u0 in place of u_c", "agnostic")):
        assert df.loc["BAP Ycrf", col] == cell(ev, key, "miou_crf")
        assert df.loc["BAP Yret", col] == cell(ev, key, "miou_ret")


def test_cells_of_fig3_lambda_damp():
    df, ev = built("fig3_lambda_damp")
    assert list(df.index) == ["damp 70", "damp 15", "damp 3"]
    assert list(df.columns) == ["lambda 0.05", "lambda 0.5", "lambda 0.7"]
    for lam, damp in itertools.product((0.05, 0.5, 0.7), (70, 15, 3)):
        assert df.loc[f"damp {damp:g}", f"lambda {lam:g}"] == cell(ev, (lam, damp), "miou_raw")


# -- the specs drive the workflow ------------------------------------------------------------------


def test_table5_without_test_images_asks_for_the_archive():
    exp = paper_experiments(test_archive=None)  # config/voc2012.yaml as shipped
    assert not exp.test_images
    keys = list(TABLE_SPECS["table5_segmentation"].needs(exp))
    assert all(split == "val" for _, _, split in keys) and len(keys) == 8  # 2 archs x (3 losses + ce_gt)
    df = TABLE_SPECS["table5_segmentation"].build(distinct_evals(keys))
    assert df.loc["w/ NAL (test)"].tolist() == [NO_TEST_IMAGES, NO_TEST_IMAGES]
    assert df.loc["w/ NAL (val)", "DeepLab-V2"] != NO_TEST_IMAGES


def test_specs_name_their_inputs_under_the_run(tmp_path):
    exp = paper_experiments()
    files = table_inputs("table5_segmentation", exp, "results/voc2012")
    assert files[("v1", "nal", "test")] == Path("results/voc2012/segmenters/v1-nal/eval_test.json")
    files = table_inputs("table3_pseudo_labels", exp, "results/voc2012")
    assert files["bap_nou0"] == Path("results/voc2012/pseudo_labels/bap-g4-aug/gen1/val/nou0/eval.json")
    assert table_inputs("table4_voc_to_coco", exp, "r") == {"all": Path("r/coco/bap-g4-aug/eval.json")}


def test_disabled_coco_drops_table4_only():
    exp = paper_experiments()
    assert [s.name for s in tables_of(exp)] == [s.name for s in TABLES]
    exp.coco = False
    assert [s.name for s in tables_of(exp)] == [s.name for s in TABLES if s.name != "table4_voc_to_coco"]


def test_needed_segmenters_are_those_the_tables_score():
    exp = paper_experiments()
    assert needed_segmenters(exp) == exp.segmenters()


def test_cells_of_health_checks():
    # Not a TableSpec (rule health_checks), but a table builder all the same: distinct values too.
    from bana_core.tables import health_checks

    accuracies = {"gap-g4-aug": {"box_accuracy": 0.811}, "bap-g4-aug": {"box_accuracy": 0.952},
                  "bap-g1-aug": {"box_accuracy": 0.833}}
    segmenters = {("v1", "ce_crf"): {"miou_crf": 0.70}, ("v1", "ce_ret"): {"miou_crf": 0.52},
                  ("v1", "nal"): {"miou_crf": 0.75}, ("v1", "ce_gt"): {"miou_crf": 0.80},
                  ("v2", "ce_crf"): {"miou_crf": 0.80}, ("v2", "ce_ret"): {"miou_crf": 0.55},
                  ("v2", "nal"): {"miou_crf": 0.62}, ("v2", "ce_gt"): {"miou_crf": 0.64}}
    bap = {"miou_crf": 0.80, "miou_ret": 0.60,
           "u0_in_box_background": {"n_pixels": 1000, "share_positive": 0.0312, "mean": 0.01234}}
    df = health_checks(accuracies, {"miou": 0.587}, bap, segmenters)
    value, met = df["value"], df["met"]
    assert value["classifier gap-g4-aug: val box accuracy (%)"] == 81.1
    assert value["classifier bap-g4-aug: val box accuracy (%)"] == 95.2
    assert value["classifier bap-g1-aug: val box accuracy (%)"] == 83.3
    assert (met["classifier gap-g4-aug: val box accuracy (%)"], met["classifier bap-g4-aug: val box accuracy (%)"]) \
        == ("no", "yes")
    assert value["box fill baseline: val mIoU (%)"] == 58.7
    assert value["BAP Ycrf: val mIoU (%)"] == 80.0
    assert value["BAP Yret: val mIoU (%)"] == 60.0
    assert value["BAP Ycrf margin over box fill (points)"] == 21.3
    assert value["BAP u0 > 0 on in-box background pixels (% of them)"] == 3.1
    assert value["BAP u0 on in-box background pixels: mean"] == 0.012
    # fit ratio = segmenter / the same architecture's full supervision (ce_gt)
    assert value["v1-ce_crf: fit ratio (/ full supervision 80.0)"] == 0.88
    assert value["v1-ce_ret: fit ratio (/ full supervision 80.0)"] == 0.65
    assert value["v1-nal: fit ratio (/ full supervision 80.0)"] == 0.94
    assert value["v2-ce_crf: fit ratio (/ full supervision 64.0)"] == 1.25
    assert value["v2-ce_ret: fit ratio (/ full supervision 64.0)"] == 0.86
    assert value["v2-nal: fit ratio (/ full supervision 64.0)"] == 0.97
    assert df.loc["v1-ce_crf: fit ratio (/ full supervision 80.0)", "target"] == 0.85
    assert df.loc["v2-nal: fit ratio (/ full supervision 64.0)", "target"] == 0.90
    assert met["v2-ce_ret: fit ratio (/ full supervision 64.0)"] == "no"
    assert met["v2-nal: fit ratio (/ full supervision 64.0)"] == "yes"
    assert value["v2-ce_ret: val mIoU after CRF (%)"] == 55.0
    assert value["v1-ce_gt: val mIoU after CRF (%)"] == 80.0
    assert not df.index.str.contains("ce_gt: fit ratio").any()  # the reference has no ratio to itself
    assert met["box fill baseline: val mIoU (%)"] == ""
    assert not df.index.str.startswith("ground truth at output stride").any()  # only when given
    without_reach = health_checks(accuracies, {"miou": 0.587}, {"miou_crf": 0.80, "miou_ret": 0.60}, segmenters)
    assert not without_reach.index.str.contains("u0").any()
    reference = {"miou": 0.7346, "stride": 8, "after_crf": {"v1": 0.80, "v2": 0.7111}}
    with_reference = health_checks(accuracies, {"miou": 0.587}, bap, segmenters, stride_reference=reference)
    row = "ground truth at output stride 8, before CRF: val mIoU (%)"
    assert with_reference.loc[row, "value"] == 73.5 and with_reference.loc[row, "met"] == ""
    assert with_reference.loc["ground truth at output stride 8, after the v2 CRF: val mIoU (%)", "value"] == 71.1
    # full supervision over that ceiling, target 0.85: v1 80 / 80 = 1.0 met, v2 64 / 71.1 = 0.9 met
    v1_row, v2_row = ("v1-ce_gt: / ground truth at stride 8 after CRF (80.0)",
                      "v2-ce_gt: / ground truth at stride 8 after CRF (71.1)")
    assert with_reference.loc[v1_row, "value"] == 1.0 and with_reference.loc[v1_row, "target"] == 0.85
    assert with_reference.loc[v2_row, "value"] == 0.9 and with_reference.loc[v2_row, "met"] == "yes"
    assert with_reference.drop([row, v1_row, v2_row, "ground truth at output stride 8, after the v1 CRF: val mIoU (%)",
                                "ground truth at output stride 8, after the v2 CRF: val mIoU (%)"]).equals(df)


def test_write_table_markdown_precision(tmp_path):
    from bana_core.tables import write_table

    df = pd.DataFrame({"value": {"fit ratio": 0.606, "mIoU": 49.6}})
    write_table(df, tmp_path / "t", title="T", floatfmt=".2f")
    md = (tmp_path / "t.md").read_text()
    assert "0.61" in md and "49.60" in md
    write_table(df, tmp_path / "u")
    assert "0.6 " in (tmp_path / "u.md").read_text()
    assert pd.read_csv(tmp_path / "t.csv", index_col=0).loc["fit ratio", "value"] == 0.606  # csv keeps all
