"""The report's tables, built from the evaluation JSON files of a run (pandas, .csv and .md).

``TABLES`` holds one ``TableSpec`` per table: its file name, caption, the evaluations it needs
(keyed as its builder reads them) and the builder. The spec alone drives the workflow: the
`table` rule's inputs, the run's targets (rules/common.smk, all_targets) and so the report.
Each builder takes the loaded evaluation dicts by key and returns a DataFrame of percentages;
``with_published`` puts the report's numbers (config/paper_results.yaml) beside ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Mapping

import numpy as np
import pandas as pd

from .experiments import (
    FULL_SUPERVISION,
    LOSSES_TABLE5,
    LOSSES_TABLE7,
    CocoEval,
    Experiments,
    LabelSet,
    SegmenterEval,
)
from .io import atomic_path
from .loss_registry import LOSSES


def pct(x) -> float:
    """A fraction as a percentage with one decimal (NaN when missing)."""
    return float("nan") if x is None or (isinstance(x, float) and np.isnan(x)) else round(100 * float(x), 1)


def table3(evals: Mapping[str, dict]) -> pd.DataFrame:
    """Pseudo labels on val: ``evals`` holds the eval.json of 'gap', 'bap_nou0', 'bap'."""
    rows = {
        "GAP": evals["gap"]["miou_crf"],
        "BAP Ycrf w/o u0": evals["bap_nou0"]["miou_crf"],
        "BAP Ycrf": evals["bap"]["miou_crf"],
        "BAP Yret": evals["bap"]["miou_ret"],
        "BAP Ycrf & Yret": evals["bap"]["miou_agree"],
    }
    return pd.DataFrame({"mIoU (val)": {k: pct(v) for k, v in rows.items()}}).rename_axis("Method")


def table4(evals: Mapping[str, dict]) -> pd.DataFrame:
    """VOC-to-COCO: ``evals`` holds 'crf' and 'ret' dicts with AP, AP50, AP75, AP_S, AP_M, AP_L."""
    cols = ["AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"]
    data = {f"BAP: {name}": [pct(evals[key][c]) for c in cols] for key, name in (("crf", "Ycrf"), ("ret", "Yret"))}
    return pd.DataFrame.from_dict(data, orient="index", columns=cols).rename_axis("Method")


NO_TEST_IMAGES = "needs dataset.voc_test_archive"


def table5(evals: Mapping[tuple[str, str, str], dict]) -> pd.DataFrame:
    """Segmentation mIoU after CRF: keys (arch, loss, split) with arch v1|v2, loss ce_crf|ce_ret|nal|ce_gt
    (ce_gt: the same segmenter trained on the ground truth, the full-supervision reference)."""
    rows = [(f"{LOSSES[loss].table5} ({split})", loss, split) for loss in LOSSES_TABLE5
            for split in (("val", "test") if LOSSES[loss].test else ("val",))]
    out: dict[str, dict[str, object]] = {}
    for arch, col in (("v1", "DeepLab-V1"), ("v2", "DeepLab-V2")):
        out[col] = {}
        for name, loss, split in rows:
            ev = evals.get((arch, loss, split))
            if ev is None:  # no test images (paper config without dataset.voc_test_archive)
                out[col][name] = NO_TEST_IMAGES
            else:
                out[col][name] = "submit" if ev.get("status") == "submit" else pct(ev["miou_crf"])
    return pd.DataFrame(out).rename_axis("Method")


def table6(evals: Mapping[tuple[int, int], dict]) -> pd.DataFrame:
    """BAP Y_crf on val by (train grid, generation grid)."""
    train = sorted({t for t, _ in evals})
    gen = sorted({g for _, g in evals})
    data = {f"generation grid {g}": {f"train grid {t}": pct(evals[(t, g)]["miou_crf"]) for t in train} for g in gen}
    return pd.DataFrame(data).rename_axis("Grid size")


def table7(evals: Mapping[str, dict]) -> pd.DataFrame:
    """DeepLab-V1 losses on val before / after CRF; keys baseline, er, bootstrap, nal."""
    names = {loss: LOSSES[loss].table7 for loss in LOSSES_TABLE7}
    data = {names[k]: {"before CRF": pct(evals[k]["miou_raw"]), "after CRF": pct(evals[k]["miou_crf"])}
            for k in names}
    return pd.DataFrame.from_dict(data, orient="index").rename_axis("Method")


def table8(evals: Mapping[tuple[str, str, str, str], dict]) -> pd.DataFrame:
    """BAP vs GAP; keys (pool, variant, trainset, scored split) with trainset aug|noaug, split train|val."""
    trainsets = sorted({k[2] for k in evals}, key=lambda t: t != "aug")
    cols = [(t, s) for t in trainsets for s in ("train", "val")]
    colname = {("aug", "train"): "aug train", ("aug", "val"): "aug val",
               ("noaug", "train"): "non-aug train", ("noaug", "val"): "non-aug val"}
    rows = [("GAP Ycrf w/o u0", "gap", "nou0", "miou_crf"), ("GAP Ycrf", "gap", "std", "miou_crf"),
            ("GAP Yret", "gap", "std", "miou_ret"), ("BAP Ycrf w/o u0", "bap", "nou0", "miou_crf"),
            ("BAP Ycrf", "bap", "std", "miou_crf"), ("BAP Yret", "bap", "std", "miou_ret"),
            ("BAP Ycrf & Yret", "bap", "std", "miou_agree")]
    data = {colname[c]: {name: pct(evals[(pool, var, c[0], c[1])][key]) for name, pool, var, key in rows}
            for c in cols}
    return pd.DataFrame(data).rename_axis("Method")


def table9(evals: Mapping[str, dict]) -> pd.DataFrame:
    """Class-agnostic generation on train_aug; keys 'cam' and 'agnostic'."""
    data = {
        "CAMs for u_c": {"BAP Ycrf": pct(evals["cam"]["miou_crf"]), "BAP Yret": pct(evals["cam"]["miou_ret"])},
        "1 - u0 in place of u_c": {"BAP Ycrf": pct(evals["agnostic"]["miou_crf"]),
                                   "BAP Yret": pct(evals["agnostic"]["miou_ret"])},
    }
    return pd.DataFrame(data).rename_axis("Method")


def fig3(evals: Mapping[tuple[float, float], dict]) -> pd.DataFrame:
    """Val mIoU (before CRF, as the report's heat map) by (lambda, damp): rows damp, cols lambda."""
    lams = sorted({lam for lam, _ in evals})
    damps = sorted({d for _, d in evals}, reverse=True)
    data = {f"lambda {lam:g}": {f"damp {d:g}": pct(evals[(lam, d)]["miou_raw"]) for d in damps} for lam in lams}
    return pd.DataFrame(data).rename_axis("Damping")


# What a healthy run reaches (demo targets; issue-tracker history in docs).
BOX_ACCURACY_TARGET = 90.0
# A box-supervised segmenter's val mIoU after CRF over the same architecture's full supervision
# (ce_gt), as box-supervised papers report "x % of full supervision".
FIT_TARGETS = {"v1": 0.85, "v2": 0.90}
# Full supervision over the ground truth at the output stride after the same CRF: is the
# reference itself fitted, or starved by the budget?
FULL_SUPERVISION_TARGET = 0.85


def _stage3_rows(segmenters: Mapping[tuple[str, str], dict], stride_reference: dict | None) -> dict:
    rows: dict[str, tuple[float, object]] = {}
    ceilings = (stride_reference or {}).get("after_crf", {})
    stride = (stride_reference or {}).get("stride")
    for arch, ceiling in sorted(ceilings.items()):
        rows[f"ground truth at output stride {stride}, after the {arch} CRF: val mIoU (%)"] = (pct(ceiling), None)
    full = {arch: pct(ev["miou_crf"]) for (arch, loss), ev in segmenters.items() if loss == FULL_SUPERVISION}
    for (arch, loss), ev in sorted(segmenters.items()):
        seg = pct(ev["miou_crf"])
        rows[f"{arch}-{loss}: val mIoU after CRF (%)"] = (seg, None)
        if loss == FULL_SUPERVISION:
            if arch in ceilings:
                ceiling = pct(ceilings[arch])
                rows[f"{arch}-{loss}: / ground truth at stride {stride} after CRF ({ceiling:.1f})"] = (
                    round(seg / ceiling, 2) if ceiling else float("nan"), FULL_SUPERVISION_TARGET)
        elif arch in full:
            rows[f"{arch}-{loss}: fit ratio (/ full supervision {full[arch]:.1f})"] = (
                round(seg / full[arch], 2) if full[arch] else float("nan"), FIT_TARGETS[arch])
    return rows


def health_checks(accuracies: Mapping[str, dict], box_fill: dict, bap: dict,
                  segmenters: Mapping[tuple[str, str], dict], stride_reference: dict | None = None) -> pd.DataFrame:
    """Did every stage learn? Rows: val box accuracy per classifier (stage 1); BAP Ycrf / Yret vs
    filling the boxes, and how far u0 reaches the background inside the boxes (stage 2); the
    ground truth at the segmenters' output stride before and after each architecture's CRF
    (:func:`bana_core.stride_reference.stride_reference_miou`, when given: what a segmenter could
    reach); per Table-5 segmenter ``(arch, loss)`` its val mIoU after CRF and its fit ratio, over
    the same architecture's full supervision (ce_gt), and full supervision over the stride
    ceiling after CRF (stage 3). Columns: value, target, whether it is met."""
    rows: dict[str, tuple[float, object]] = {}
    for name, acc in sorted(accuracies.items()):
        rows[f"classifier {name}: val box accuracy (%)"] = (pct(acc["box_accuracy"]), BOX_ACCURACY_TARGET)
    fill = pct(box_fill["miou"])
    rows["box fill baseline: val mIoU (%)"] = (fill, None)
    rows["BAP Ycrf: val mIoU (%)"] = (pct(bap["miou_crf"]), None)
    rows["BAP Yret: val mIoU (%)"] = (pct(bap["miou_ret"]), None)
    rows["BAP Ycrf margin over box fill (points)"] = (round(pct(bap["miou_crf"]) - fill, 1), 0.0)
    reach = bap.get("u0_in_box_background") or {}
    if reach.get("share_positive") is not None:
        rows["BAP u0 > 0 on in-box background pixels (% of them)"] = (pct(reach["share_positive"]), None)
        rows["BAP u0 on in-box background pixels: mean"] = (round(reach["mean"], 3), None)
    if stride_reference is not None:
        rows[f"ground truth at output stride {stride_reference['stride']}, before CRF: val mIoU (%)"] = (
            pct(stride_reference["miou"]), None)
    rows.update(_stage3_rows(segmenters, stride_reference))
    df = pd.DataFrame.from_dict(rows, orient="index", columns=["value", "target"]).rename_axis("Check")
    met = [("" if pd.isna(t) else ("yes" if v >= t else "no")) for v, t in zip(df["value"], df["target"], strict=True)]
    df["met"] = met
    return df


def with_published(ours: pd.DataFrame, published: Mapping[str, Mapping] | None) -> pd.DataFrame:
    """Put the published numbers beside ours, column by column.

    ``published`` maps a source name ('report' = the ReScience reproduction, 'authors' = the
    BANA paper as quoted there) to {column: {row: value}}; each source adds '<column> (<source>)'.
    """
    if not published:
        return ours
    out = pd.DataFrame(index=ours.index)
    out.index.name = ours.index.name
    for col in ours.columns:
        out[f"{col} (ours)"] = ours[col]
        for source, table in published.items():
            values = (table or {}).get(col)
            if values is None:
                continue
            out[f"{col} ({source})"] = [values.get(row, np.nan) for row in ours.index]
    return out


def write_table(df: pd.DataFrame, stem: str | Path, title: str = "", floatfmt: str = ".1f",
                markdown: pd.DataFrame | None = None) -> None:
    """Write ``<stem>.csv`` and ``<stem>.md`` atomically (``floatfmt``: the .md's numbers;
    ``markdown``: a different frame for the .md, e.g. 'mean ± sd' text beside a numeric csv)."""
    stem = Path(stem)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp)
    md_df = df if markdown is None else markdown
    md = (f"**{title}**\n\n" if title else "") + md_df.to_markdown(floatfmt=floatfmt) + "\n"
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(md)


Evaluation = LabelSet | SegmenterEval | CocoEval


@dataclass(frozen=True)
class TableSpec:
    """One table: ``tables/<name>.{csv,md}`` built by ``build`` from the evaluations ``needs``."""

    name: str
    caption: str
    needs: Callable[[Experiments], Mapping[Hashable, Evaluation]]
    build: Callable[[Mapping[Hashable, dict]], pd.DataFrame]
    enabled: Callable[[Experiments], bool] = lambda exp: True


def _table5_needs(exp: Experiments) -> dict[tuple[str, str, str], SegmenterEval]:
    return {(arch, loss, split): SegmenterEval(m, split) for (arch, loss), m in exp.table5_models().items()
            for split in (("val", "test") if LOSSES[loss].test and exp.test_images else ("val",))}


TABLES: tuple[TableSpec, ...] = (
    TableSpec("table3_pseudo_labels", "Table 3: pseudo labels on val (mIoU)",
              lambda exp: exp.table3_sets(), table3),
    TableSpec("table4_voc_to_coco", "Table 4: VOC-to-COCO pseudo labels (segm AP on COCO train2017)",
              lambda exp: {"all": CocoEval(exp.default_classifier)}, lambda evals: table4(evals["all"]),
              enabled=lambda exp: exp.coco),
    TableSpec("table5_segmentation", "Table 5: DeepLab-V1/V2 trained on pseudo labels (mIoU after CRF)",
              _table5_needs, table5),
    TableSpec("table6_grid_size", "Table 6: BAP Ycrf on val by train / generation grid size (mIoU)",
              lambda exp: exp.table6_sets(), table6),
    TableSpec("table7_losses", "Table 7: losses for the unreliable regions, DeepLab-V1 (mIoU before / after CRF)",
              lambda exp: {k: SegmenterEval(m) for k, m in exp.table7_models().items()}, table7),
    TableSpec("table8_bap_vs_gap", "Table 8: BAP vs GAP, with and without SBD augmentation (mIoU)",
              lambda exp: exp.table8_sets(), table8),
    TableSpec("table9_class_agnostic", "Table 9: class-agnostic pseudo labels on train_aug (mIoU)",
              lambda exp: exp.table9_sets(), table9),
    TableSpec("fig3_lambda_damp", "Figure 3: DeepLab-V1 with NAL on val by lambda and damp (mIoU before CRF)",
              lambda exp: {k: SegmenterEval(m) for k, m in exp.fig3_models().items()}, fig3),
)
TABLE_SPECS = {spec.name: spec for spec in TABLES}


def tables_of(exp: Experiments) -> list[TableSpec]:
    """The tables this config builds."""
    return [spec for spec in TABLES if spec.enabled(exp)]


def table_inputs(name: str, exp: Experiments, run_dir: str | Path) -> dict[Hashable, Path]:
    """Key -> evaluation file (under ``run_dir``) of table ``name``: the rule's inputs, in order."""
    return {key: Path(run_dir) / ev.eval_file for key, ev in TABLE_SPECS[name].needs(exp).items()}


def needed_segmenters(exp: Experiments) -> list[str]:
    """Every segmenter some table of this config scores."""
    return sorted({ev.model for spec in tables_of(exp) for ev in spec.needs(exp).values()
                   if isinstance(ev, SegmenterEval)})


def build_table(name: str, evals: Mapping[Hashable, dict], published: Mapping | None = None) -> pd.DataFrame:
    """Table ``name`` from its evaluation dicts by key (``table_inputs``' keys)."""
    return with_published(TABLE_SPECS[name].build(evals), published)
