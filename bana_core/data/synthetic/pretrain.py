"""The pretraining set: labelled single-object images that play ImageNet's role in the demo."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...io import atomic_path
from .dataset import imap_tasks
from .scenes import Placed, paint_object, place_object, placed_mask
from .textures import generic_background
def render_pretrain_image(rng: np.random.Generator, label: int, size: int = 64, *,
                          clutter: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """One pretraining image: an object of VOC class ``label`` (1..20) near the centre of a
    random background, 10-60 % of the image in area.

    With probability ``clutter`` the image also holds 1-2 smaller objects of other VOC classes
    (each 15-60 % of the labelled object's area), painted behind it or, if the labelled object
    keeps at least 60 % of its pixels, in front of it, as ImageNet's photos hold other things.

    Returns (image uint8 [size, size, 3], visible mask of the labelled object, distractor count).
    """
    img = generic_background(rng, size, size)
    obj = None
    while obj is None:  # an object placed too far out is drawn again
        centre = (size / 2 + rng.normal(0, 0.15 * size), size / 2 + rng.normal(0, 0.15 * size))
        area = rng.uniform(0.1, 0.6)
        obj = place_object(rng, label - 1, size, size, area=area, centre=centre)
    full = placed_mask(obj, size, size)
    visible = full.copy()
    front: list[Placed] = []
    n_distractors = 0
    if clutter > 0 and rng.random() < clutter:
        for _ in range(int(rng.integers(1, 3))):
            other = int(rng.integers(19))
            other += other >= label - 1  # any VOC class but the label's
            d = place_object(rng, other, size, size, area=area * rng.uniform(0.15, 0.6))
            if d is None:
                continue
            n_distractors += 1
            covered = placed_mask(d, size, size)
            if rng.random() < 0.5 and (visible & ~covered).sum() >= 0.6 * full.sum():
                front.append(d)
                visible &= ~covered
            else:
                paint_object(rng, img, d, d.mask)
    paint_object(rng, img, obj, obj.mask)
    for d in front:
        paint_object(rng, img, d, d.mask)
    img = img + rng.normal(0, 3.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), visible, n_distractors


def _pretrain_image(task: tuple[int, int], size: int, seed: int, clutter: float) -> np.ndarray:
    i, label = task
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E7, label, i]))
    return render_pretrain_image(rng, label, size, clutter=clutter)[0]


def make_pretrain_set(n_per_class: int, size: int = 64, seed: int = 0, clutter: float = 0.0,
                      workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labelled single-object images of the 20 VOC classes (ImageNet's role in the demo).

    Object size (10-60 % of the image) and position vary, as ImageNet's do: features pretrained
    on large centred objects only transferred worse to the scenes' 17-107 px objects (stage-1
    val box accuracy 61 % against 69 %). ``clutter`` (see :func:`render_pretrain_image`) adds
    other objects behind and in front: the scenes' boxes overlap, and features pretrained on
    lone objects classified overlapping val boxes far worse than isolated ones.

    Returns images uint8 [N, size, size, 3] and labels int64 [N] in 1..20, class by class. Each
    image has its own seed, so ``workers`` (processes) cannot change a byte.
    """
    labels = np.repeat(np.arange(1, 21, dtype=np.int64), n_per_class)
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)  # filled as rendered: one copy
    job = partial(_pretrain_image, size=size, seed=seed, clutter=clutter)
    for i, image in enumerate(imap_tasks(job, list(enumerate(labels.tolist())), workers, False, "pretrain set")):
        images[i] = image
    return images, labels



def write_pretrain_set(path: Path, n_per_class: int, size: int = 64, seed: int = 0, clutter: float = 0.0,
                       workers: int = 1) -> dict:
    """Render the pretraining set once into ``path`` (.npz: images, labels), for both backbones."""
    images, labels = make_pretrain_set(n_per_class, size, seed=seed, clutter=clutter, workers=workers)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels)  # uncompressed: it is read back twice, at once
    return {"n_images": int(len(labels)), "image_size": size, "n_classes": int(labels.max())}


def read_pretrain_set(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, S, S, 3], labels int64 [N] in 1..20) as written by :func:`write_pretrain_set`."""
    try:
        with np.load(Path(path)) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(path, f"not a pretraining set ({e})") from None
    if images.ndim != 4 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DataError(path, f"pretraining set of unexpected shape: images {images.shape} {images.dtype}, "
                              f"labels {labels.shape}")
    return images, labels
