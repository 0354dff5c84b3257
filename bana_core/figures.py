"""Figures: pseudo-label examples (the report's Fig. 2), Fig. 3 heat map, training curves, and the
overlays of masks made from a user's own boxes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .classes import voc_palette  # noqa: E402
from .data.voc import VocLayout, load_image, load_label  # noqa: E402
from .io import atomic_path  # noqa: E402
from .label_index import read_pseudo_label_index  # noqa: E402

PALETTE = voc_palette()


def _save(fig, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def pseudo_label_examples(index_path: Path, voc_root: Path, out: Path, n_images: int = 4) -> list[str]:
    """Image, ground truth, Y_crf, Y_ret for the first ``n_images`` images of a label index."""
    index = read_pseudo_label_index(index_path)
    layout = VocLayout(Path(voc_root))
    ids = sorted(index)[:n_images]
    fig, axes = plt.subplots(len(ids), 4, figsize=(10, 2.2 * len(ids)), squeeze=False)
    for row, image_id in enumerate(ids):
        panels = [load_image(layout.image_path(image_id)), PALETTE[load_label(layout.label_path(image_id))],
                  PALETTE[load_label(index[image_id]["crf"])], PALETTE[load_label(index[image_id]["ret"])]]
        for col, (ax, panel) in enumerate(zip(axes[row], panels, strict=True)):
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(["Image", "Ground truth", "Y_crf", "Y_ret"][col])
        axes[row][0].set_ylabel(image_id, fontsize=7)
    _save(fig, out)
    return ids


def mask_overlays(voc_root: Path, masks_dir: Path, out: Path, n_images: int = 4) -> list[str]:
    """Each of the first ``n_images`` masks (sorted ids) over its image, with the boxes drawn."""
    from .data.voc import read_voc_xml

    layout = VocLayout(Path(voc_root))
    labels = dict(line.split(" ", 1) for line in (Path(masks_dir) / "labels.txt").read_text().splitlines())
    ids = sorted(p.stem for p in (Path(masks_dir) / "png").glob("*.png"))[:n_images]
    fig, axes = plt.subplots(1, len(ids), figsize=(3.2 * len(ids), 3), squeeze=False)
    for ax, image_id in zip(axes[0], ids, strict=True):
        image = load_image(layout.image_path(image_id)).astype(np.float32)
        mask = load_label(Path(masks_dir) / "png" / f"{image_id}.png", num_classes=None)
        blend = np.where((mask > 0)[..., None], 0.45 * image + 0.55 * PALETTE[mask], image)
        ax.imshow(blend.astype(np.uint8))
        ann = read_voc_xml(layout.annotation_path(image_id), class_names=[labels[str(k)] for k in range(len(labels))])
        for x1, y1, x2, y2, c in ann.boxes().tolist():
            color = PALETTE[c] / 255
            ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.2, ec=color))
            ax.text(x1, y1, labels[str(c)], fontsize=6, color="white", va="bottom",
                    bbox={"facecolor": color, "lw": 0, "pad": 1})
        ax.set_title(image_id, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out)
    return ids


def heatmap(csv_path: Path, out: Path, title: str = "DeepLab-V1 + NAL: val mIoU") -> None:
    """Fig. 3 layout: rows damp (70, 15, 3), columns lambda, value annotated in each cell."""
    df = pd.read_csv(csv_path, index_col=0)
    ours = df[[c for c in df.columns if "(" not in c or c.endswith("(ours)")]]
    values = ours.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    im = ax.imshow(values, cmap="viridis")
    ax.set_xticks(range(values.shape[1]), [c.replace(" (ours)", "").replace("lambda ", "") for c in ours.columns])
    ax.set_yticks(range(values.shape[0]), [r.replace("damp ", "") for r in ours.index])
    ax.set_xlabel("Lambda")
    ax.set_ylabel("Damping parameter")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w" if v < np.nanmean(values) else "k")
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=9)
    _save(fig, out)


def training_curve(log_csv: Path, out: Path, title: str) -> None:
    """Loss parts (and lr on a second axis) against iterations, lightly smoothed."""
    df = pd.read_csv(log_csv)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    window = max(1, len(df) // 50)
    for col in [c for c in df.columns if c not in ("iteration", "lr")]:
        ax.plot(df["iteration"], df[col].rolling(window, min_periods=1).mean(), label=col)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, loc="upper right")
    lr_ax = ax.twinx()
    lr_ax.plot(df["iteration"], df["lr"], color="grey", linestyle=":", label="lr")
    lr_ax.set_ylabel("lr", color="grey")
    ax.set_title(title, fontsize=9)
    _save(fig, out)

