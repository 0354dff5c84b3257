"""The report's tables, built from the evaluation JSON files of a run (pandas, .csv and .md).

Each ``tableN`` function takes the already-loaded evaluation dicts, keyed as the rules name
their inputs, and returns a DataFrame of percentages. ``with_published`` puts the report's
numbers (config/paper_results.yaml) beside ours, column by column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .io import atomic_path


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


def table5(evals: Mapping[tuple[str, str, str], dict]) -> pd.DataFrame:
    """Segmentation mIoU after CRF: keys (arch, loss, split) with arch v1|v2, loss ce_crf|ce_ret|nal."""
    rows = [("w/ Ycrf (val)", "ce_crf", "val"), ("w/ Yret (val)", "ce_ret", "val"),
            ("w/ NAL (val)", "nal", "val"), ("w/ NAL (test)", "nal", "test")]
    out: dict[str, dict[str, object]] = {}
    for arch, col in (("v1", "DeepLab-V1"), ("v2", "DeepLab-V2")):
        out[col] = {}
        for name, loss, split in rows:
            ev = evals[(arch, loss, split)]
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
    names = {"baseline": "Baseline", "er": "w/ Entropy Regularization", "bootstrap": "w/ Bootstrapping",
             "nal": "w/ Lwce"}
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


def stage1_summary(accuracies: Mapping[str, dict], box_fill: dict, bap: dict) -> pd.DataFrame:
    """Checks that the models learned: val box accuracy per classifier, and BAP Y_crf vs box fill."""
    rows = {f"classifier {name}: val box accuracy": pct(acc["box_accuracy"]) for name, acc in sorted(accuracies.items())}
    rows["box fill baseline: val mIoU"] = pct(box_fill["miou"])
    rows["BAP Ycrf: val mIoU"] = pct(bap["miou_crf"])
    rows["BAP Ycrf margin over box fill"] = round(pct(bap["miou_crf"]) - pct(box_fill["miou"]), 1)
    return pd.DataFrame({"value (%)": rows}).rename_axis("Check")


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


def write_table(df: pd.DataFrame, stem: str | Path, title: str = "") -> None:
    """Write ``<stem>.csv`` and ``<stem>.md`` atomically."""
    stem = Path(stem)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp)
    md = (f"**{title}**\n\n" if title else "") + df.to_markdown(floatfmt=".1f") + "\n"
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(md)


# Table file name -> builder taking {key: eval dict}; keys as the rules send them.
TABLE_BUILDERS = {
    "table3_pseudo_labels": table3,
    "table4_voc_to_coco": lambda evals: table4(evals["all"]),
    "table5_segmentation": table5,
    "table6_grid_size": table6,
    "table7_losses": table7,
    "table8_bap_vs_gap": table8,
    "table9_class_agnostic": table9,
    "fig3_lambda_damp": fig3,
}


def build_table(name: str, keys: list, evals: list[dict], published: Mapping | None = None) -> pd.DataFrame:
    """The table ``name`` from evaluation dicts aligned with ``keys`` (lists become tuples)."""
    keyed = {tuple(k) if isinstance(k, list) else k: e for k, e in zip(keys, evals, strict=True)}
    return with_published(TABLE_BUILDERS[name](keyed), published)
