"""Writers of the public formats: VOC JPEG/XML/PNG, SBD .mat, COCO polygons and RLE."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image
from scipy import ndimage


JPEG_QUALITY = 90
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: bana_core.data.synthetic"

def save_jpeg(path: Path, image: np.ndarray, gray: bool = False) -> None:
    img = Image.fromarray(image)
    if gray:
        img = img.convert("L")
    img.save(path, format="JPEG", quality=JPEG_QUALITY)


def _savemat(path: Path, mdict: dict) -> None:
    """scipy.io.savemat with a fixed header (scipy writes the creation time into it)."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, mdict, do_compression=True, oned_as="column")
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    path.write_bytes(bytes(data))


def _boundaries(label: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another label (inner boundary of every region)."""
    p = np.pad(label, 1, mode="edge")
    c = p[1:-1, 1:-1]
    return (c != p[:-2, 1:-1]) | (c != p[2:, 1:-1]) | (c != p[1:-1, :-2]) | (c != p[1:-1, 2:])


def _cell(maps: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((len(maps), 1), dtype=object)
    for i, m in enumerate(maps):
        cell[i, 0] = scipy.sparse.csc_matrix(m)
    return cell


def write_sbd(ds: Path, image_id: str, cls: np.ndarray, inst: np.ndarray, inst_classes: list[int]) -> None:
    bnd = _boundaries(cls) & (cls > 0)
    present = sorted(set(inst_classes))
    _savemat(ds / "cls" / f"{image_id}.mat", {"GTcls": {
        "Segmentation": cls.astype(np.uint8),
        "Boundaries": _cell([bnd & (cls == c) for c in range(1, 21)]),
        "CategoriesPresent": np.array(present, dtype=np.uint8).reshape(-1, 1),
    }})
    ibnd = _boundaries(inst) & (inst > 0)
    _savemat(ds / "inst" / f"{image_id}.mat", {"GTinst": {
        "Segmentation": inst.astype(np.uint8),
        "Boundaries": _cell([ibnd & (inst == k + 1) for k in range(len(inst_classes))]),
        "Categories": np.array(inst_classes, dtype=np.uint8).reshape(-1, 1),
    }})


def mask_to_polygons(mask: np.ndarray) -> list[list[float]] | None:
    """COCO polygons (pixel-corner coordinates) tracing a mask exactly, or None when it has holes
    or pinched corners (the caller then falls back to RLE)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or not np.array_equal(ndimage.binary_fill_holes(mask), mask):
        return None
    labels, n = ndimage.label(mask)
    polys = []
    for k in range(1, n + 1):  # components (a handful at most)
        p = np.pad(labels == k, 1)
        hgt, wid = p.shape
        inside = p[1:-1, 1:-1]
        r, c = np.nonzero(inside)
        # Directed boundary edges with the inside on the right (y down), in padded corner coords.
        edges = []
        for cond, start, end in (
            (~p[:-2, 1:-1], (c, r), (c + 1, r)),              # top: east
            (~p[2:, 1:-1], (c + 1, r + 1), (c, r + 1)),       # bottom: west
            (~p[1:-1, :-2], (c, r + 1), (c, r)),              # left: north
            (~p[1:-1, 2:], (c + 1, r), (c + 1, r + 1)),       # right: south
        ):
            sel = cond[r, c]
            edges.append((start[0][sel], start[1][sel], end[0][sel], end[1][sel]))
        sx, sy, ex, ey = (np.concatenate(x) for x in zip(*edges, strict=True))
        key = sy * (wid + 1) + sx
        if len(np.unique(key)) != len(key):  # a corner with two exits: pinch
            return None
        succ = np.full((hgt + 1) * (wid + 1), -1, dtype=np.int64)
        succ[key] = ey * (wid + 1) + ex
        loop = [int(key[np.lexsort((sx, sy))[0]])]
        for _ in range(len(key) - 1):  # walk the contour (its length, not the image area)
            loop.append(int(succ[loop[-1]]))
        if succ[loop[-1]] != loop[0] or len(set(loop)) != len(key):
            return None  # more than one loop
        pts = np.array([(q % (wid + 1), q // (wid + 1)) for q in loop], dtype=np.int64)
        prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        turn = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) != (pts[:, 1] - prev[:, 1]) * (nxt[:, 0] - pts[:, 0])
        pts = pts[turn]  # keep the corners only
        polys.append([float(x) for x in pts.ravel()])
    return polys


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths of the column-major mask, starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.r_[0, change, flat.size])
    counts = ([0] if flat[0] else []) + runs.tolist()
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(x) for x in counts]}


def coco_annotation(mask: np.ndarray, category_id: int, crowd: bool) -> dict:
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    polys = None if crowd else mask_to_polygons(mask)
    if crowd:
        seg = _uncompressed_rle(mask)
        rle = mask_utils.frPyObjects(seg, h, w)
    elif polys is not None:
        seg = polys
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    else:
        seg = _rle(mask)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if polys is not None:  # COCO's polygon boxes are the polygon's extent
        xy = np.concatenate([np.reshape(p, (-1, 2)) for p in polys])
        x0, y0 = xy.min(0)
        x1, y1 = xy.max(0)
        bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    else:
        bbox = [float(x) for x in mask_utils.toBbox(rle)]
    return {"category_id": int(category_id), "segmentation": seg, "area": float(mask_utils.area(rle)),
            "bbox": bbox, "iscrowd": int(crowd)}


