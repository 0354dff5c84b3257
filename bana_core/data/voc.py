"""PASCAL VOC 2012 readers: folder layout, XML boxes, split lists, images, label maps, box masks.

Every reader validates what it reads and raises ``DataError`` naming the file, so a broken
download or a hand-edited list fails with a message rather than a bare library traceback.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..classes import NUM_VOC_CLASSES, VOC_CLASSES
from ..errors import DataError
from ..io import atomic_path

log = logging.getLogger(__name__)

# Errors PIL raises on unreadable / truncated / bogus files (truncation surfaces as OSError on load()).
_PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass
class VocLayout:
    """Paths inside a ``VOCdevkit/VOC2012`` folder (``root``)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def jpeg_dir(self) -> Path:
        return self.root / "JPEGImages"

    @property
    def annotation_dir(self) -> Path:
        return self.root / "Annotations"

    @property
    def seg_class_dir(self) -> Path:
        return self.root / "SegmentationClass"

    @property
    def seg_class_aug_dir(self) -> Path:
        return self.root / "SegmentationClassAug"

    @property
    def bg_mask_dir(self) -> Path:
        return self.root / "BgMaskfromBoxes"

    @property
    def split_dir(self) -> Path:
        return self.root / "ImageSets" / "Segmentation"

    def image_path(self, image_id: str) -> Path:
        return self.jpeg_dir / f"{image_id}.jpg"

    def annotation_path(self, image_id: str) -> Path:
        return self.annotation_dir / f"{image_id}.xml"

    def label_path(self, image_id: str, aug: bool = False) -> Path:
        """Ground-truth label PNG: ``SegmentationClassAug`` when ``aug`` (train_aug), else VOC's own."""
        return (self.seg_class_aug_dir if aug else self.seg_class_dir) / f"{image_id}.png"

    def bg_mask_path(self, image_id: str) -> Path:
        return self.bg_mask_dir / f"{image_id}.png"

    def split_path(self, name: str) -> Path:
        return self.split_dir / f"{name}.txt"


@dataclass(frozen=True)
class VocObject:
    """One annotated object; ``box`` in the project convention (0-based, half-open)."""

    name: str
    label: int
    box: tuple[int, int, int, int]
    difficult: bool


@dataclass
class VocAnnotation:
    """The content of one VOC XML file that the pipeline uses."""

    path: Path
    image_id: str
    width: int
    height: int
    objects: list[VocObject] = field(default_factory=list)

    def boxes(self, include_difficult: bool = True) -> np.ndarray:
        """int64 [M, 5]: x1, y1, x2, y2 (exclusive), label; in file order."""
        rows = [(*o.box, o.label) for o in self.objects if include_difficult or not o.difficult]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 5)


def _text(elem: ET.Element, tag: str, path: Path, what: str) -> str:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(path, f"{what}: missing <{tag}>")
    return child.text.strip()


def _number(elem: ET.Element, tag: str, path: Path, what: str) -> float:
    text = _text(elem, tag, path, what)
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"{what}: <{tag}> is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise DataError(path, f"{what}: <{tag}> is not finite: {text!r}")
    return value


def read_voc_xml(path: str | Path, *, class_names: Sequence[str] = VOC_CLASSES) -> VocAnnotation:
    """Read a VOC annotation XML; boxes converted from 1-based inclusive to 0-based half-open.

    ``class_names[i]`` is the name of label ``i``; index 0 (background) is not an object class.
    A box must satisfy ``1 <= xmin <= xmax <= width`` (same for y); anything else is a DataError
    naming the file, the object index and the box.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(path, "annotation file not found") from None
    except (ET.ParseError, OSError) as e:
        raise DataError(path, f"not a readable XML file ({e})") from None
    size = root.find("size")
    if size is None:
        raise DataError(path, "missing <size>")
    width, height = _number(size, "width", path, "<size>"), _number(size, "height", path, "<size>")
    if width < 1 or height < 1 or width != int(width) or height != int(height):
        raise DataError(path, f"invalid image size {width} x {height}")
    width, height = int(width), int(height)
    label_of = {name: i for i, name in enumerate(class_names) if i > 0}
    objects = []
    for k, obj in enumerate(root.findall("object")):
        what = f"object {k}"
        name = _text(obj, "name", path, what)
        if name not in label_of:
            raise DataError(path, f"{what}: unknown class {name!r}")
        bb = obj.find("bndbox")  # direct child only: VOC person <part> elements carry their own bndbox
        if bb is None:
            raise DataError(path, f"{what} ({name}): missing <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb, t, path, what) for t in ("xmin", "ymin", "xmax", "ymax"))
        box_text = f"(xmin={xmin:g}, ymin={ymin:g}, xmax={xmax:g}, ymax={ymax:g})"
        if xmax < xmin or ymax < ymin:
            raise DataError(path, f"{what} ({name}): box {box_text} has zero or negative area")
        if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
            raise DataError(path, f"{what} ({name}): box {box_text} lies outside the "
                                  f"{width} x {height} image (VOC boxes need 1 <= min <= max <= size)")
        # floor/ceil only matter for the rare non-integer coordinates; they keep the box covering.
        box = (math.floor(xmin) - 1, math.floor(ymin) - 1, math.ceil(xmax), math.ceil(ymax))
        difficult = obj.find("difficult")
        flag = "0" if difficult is None else (difficult.text or "0").strip() or "0"
        if flag not in ("0", "1"):
            raise DataError(path, f"{what} ({name}): <difficult> is {flag!r}, expected 0 or 1")
        is_difficult = flag == "1"
        objects.append(VocObject(name=name, label=label_of[name], box=box, difficult=is_difficult))
    return VocAnnotation(path=path, image_id=path.stem, width=width, height=height, objects=objects)


def voc_xml(image_id: str, size: tuple[int, int], objects: Sequence[dict], *, segmented: bool = False,
            image_source: str = "synthetic") -> str:
    """A VOC annotation XML: ``size`` is (W, H); each object a dict with ``name`` and ``box`` (x1, y1,
    x2, y2 in the project convention, 0-based half-open, written 1-based inclusive) and optionally
    ``pose``, ``truncated``, ``difficult``. ``read_voc_xml`` reads it back."""
    w, h = size
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "The VOC2007 Database"
    ET.SubElement(src, "annotation").text = "PASCAL VOC2007"
    ET.SubElement(src, "image").text = image_source
    sz = ET.SubElement(root, "size")
    for k, val in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(sz, k).text = str(val)
    ET.SubElement(root, "segmented").text = str(int(segmented))
    for o in objects:
        ob = ET.SubElement(root, "object")
        ET.SubElement(ob, "name").text = o["name"]
        ET.SubElement(ob, "pose").text = o.get("pose", "Unspecified")
        ET.SubElement(ob, "truncated").text = str(o.get("truncated", 0))
        ET.SubElement(ob, "difficult").text = str(o.get("difficult", 0))
        bb = ET.SubElement(ob, "bndbox")
        x1, y1, x2, y2 = o["box"]
        for k, val in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):  # 1-based inclusive
            ET.SubElement(bb, k).text = str(int(val))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def read_split(path: str | Path, *, check_dir: Path | None = None, suffix: str = ".jpg") -> list[str]:
    """Image ids of a split list (one per line, blank lines skipped).

    An empty list, a duplicate id or an id that is not a plain file name is a DataError naming
    the file (and the line).

    With ``check_dir``, every ``check_dir/<id><suffix>`` must exist (one directory listing, not
    one stat per id: lists hold up to 118k ids).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(path, "split file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"unreadable split file ({e})") from None
    ids: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        image_id = line.strip()
        if not image_id:
            continue
        if len(image_id.split()) != 1:
            raise DataError(path, f"line {lineno}: expected one image id, got {image_id!r}")
        if image_id in (".", "..") or any(c in image_id for c in "/\\\0"):
            # ids become file names (JPEGImages/<id>.jpg): a path would read or write elsewhere
            raise DataError(path, f"line {lineno}: image id {image_id!r} is not a plain file name")
        if image_id in seen:
            raise DataError(path, f"duplicate image id {image_id!r} (lines {seen[image_id]} and {lineno})")
        seen[image_id] = lineno
        ids.append(image_id)
    if not ids:
        raise DataError(path, "split list is empty (no image ids)")
    if check_dir is not None:
        check_dir = Path(check_dir)
        try:
            present = set(os.listdir(check_dir))
        except FileNotFoundError:
            raise DataError(path, f"folder {check_dir} of its images does not exist") from None
        missing = [i for i in ids if f"{i}{suffix}" not in present]
        if missing:
            shown = ", ".join(f"{i!r} ({check_dir / (i + suffix)})" for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(path, f"{len(missing)} listed image(s) have no file: missing {shown}{more}")
    return ids


def _open_checked(path: Path, expect_size: tuple[int, int] | None, what: str) -> Image.Image:
    """Open and fully decode an image (so truncation is detected), checking its (W, H)."""
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise DataError(path, f"{what} file not found") from None
    except _PIL_ERRORS as e:
        raise DataError(path, f"unreadable {what} ({type(e).__name__}: {e})") from None
    if expect_size is not None and tuple(img.size) != tuple(expect_size):
        img.close()
        raise DataError(path, f"{what} size is {img.size[0]} x {img.size[1]} (W x H), "
                              f"expected {expect_size[0]} x {expect_size[1]}")
    try:
        img.load()
    except _PIL_ERRORS as e:
        img.close()
        raise DataError(path, f"corrupt or truncated {what} ({type(e).__name__}: {e})") from None
    return img


def load_image(path: str | Path, *, expect_size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 H x W x 3 RGB array of any image PIL reads (L, LA, P, RGBA, CMYK, I;16, ...).

    ``expect_size`` is (W, H). The stored pixel orientation is kept (no EXIF transpose), as VOC
    and COCO annotations refer to it. Alpha is dropped; 16/32-bit grey keeps its top 8 bits.
    """
    path = Path(path)
    with _open_checked(path, expect_size, "image") as img:
        mode = img.mode
        if mode == "RGB":
            return np.array(img, dtype=np.uint8)
        if mode.startswith("I;16") or mode == "I":
            grey = np.asarray(img).astype(np.int64)
            grey = (np.clip(grey, 0, 65535) >> 8).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
        if mode == "F":
            raise DataError(path, "floating-point images are not supported")
        if mode in ("P", "PA"):
            img = img.convert("RGBA")  # honours palette transparency without PIL's warning
        try:
            return np.array(img.convert("RGB"), dtype=np.uint8)
        except _PIL_ERRORS as e:
            raise DataError(path, f"cannot convert {mode} image to RGB ({e})") from None


def load_label(path: str | Path, *, expect_size: tuple[int, int] | None = None,
               num_classes: int | None = NUM_VOC_CLASSES, void: int = 255) -> np.ndarray:
    """uint8 H x W label map from a palette ('P') or grey ('L') PNG: the stored index values.

    Every value must be a label below ``num_classes`` or ``void`` (VOC: 0..20 and 255); anything
    else is a DataError naming the file and the values, here rather than as a bare error in the
    metrics later. ``num_classes=None`` skips the check.
    """
    path = Path(path)
    with _open_checked(path, expect_size, "label map") as img:
        if img.mode not in ("P", "L"):
            raise DataError(path, f"label map has mode {img.mode!r}; expected a palette ('P') or grey ('L') PNG")
        label = np.array(img, dtype=np.uint8)
    if num_classes is not None and label.size and int(label.max()) >= num_classes:
        bad = (label >= num_classes) & (label != void)
        if bad.any():
            values, counts = np.unique(label[bad], return_counts=True)
            row, col = np.argwhere(bad)[0]
            shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:5].tolist(), counts[:5].tolist(), strict=True))
            raise DataError(path, f"label map holds value(s) {shown} outside the labels 0..{num_classes - 1} "
                                  f"and {void} (void); first at row {row}, column {col}")
    return label


def bg_mask_from_boxes(height: int, width: int, boxes: np.ndarray) -> np.ndarray:
    """uint8 H x W: 1 outside every box, 0 inside; ``boxes`` [M, >=4] x1, y1, x2, y2 (exclusive).

    Loop-free: box corners go into a 2-D difference array, two cumulative sums give the number
    of boxes covering each pixel. Boxes are clipped to the image; empty ones are ignored.
    """
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return np.ones((height, width), dtype=np.uint8)
    xy = np.rint(boxes.reshape(-1, boxes.shape[-1])[:, :4]).astype(np.int64)
    x1, x2 = np.clip(xy[:, 0], 0, width), np.clip(xy[:, 2], 0, width)
    y1, y2 = np.clip(xy[:, 1], 0, height), np.clip(xy[:, 3], 0, height)
    keep = (x2 > x1) & (y2 > y1)
    x1, y1, x2, y2 = x1[keep], y1[keep], x2[keep], y2[keep]
    diff = np.zeros((height + 1, width + 1), dtype=np.int32)
    np.add.at(diff, (y1, x1), 1)
    np.add.at(diff, (y1, x2), -1)
    np.add.at(diff, (y2, x1), -1)
    np.add.at(diff, (y2, x2), 1)
    cover = diff.cumsum(axis=0).cumsum(axis=1)[:height, :width]
    return (cover == 0).astype(np.uint8)


def jpeg_size(path: str | Path) -> tuple[int, int]:
    """(W, H) from an image's header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return tuple(img.size)
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    except _PIL_ERRORS as e:
        raise DataError(path, f"unreadable image ({type(e).__name__}: {e})") from None


def write_box_masks(layout: VocLayout, image_ids: Iterable[str], *, progress: bool = True) -> dict:
    """Write ``BgMaskfromBoxes/<id>.png`` (mode 'L', 1 = outside every box) from each id's XML.

    Each file is written atomically. The XML size must equal the JPEG's header size.
    Returns {n_images, n_boxes, mean_bg_fraction}.
    """
    ids = list(dict.fromkeys(image_ids))
    n_boxes, bg_sum = 0, 0.0
    for image_id in tqdm(ids, desc="box masks", disable=not progress, mininterval=5):
        ann = read_voc_xml(layout.annotation_path(image_id))
        image_path = layout.image_path(image_id)
        size = jpeg_size(image_path)
        if size != (ann.width, ann.height):
            raise DataError(image_path, f"image is {size[0]} x {size[1]} but {ann.path} says "
                                        f"{ann.width} x {ann.height} (W x H)")
        boxes = ann.boxes()
        mask = bg_mask_from_boxes(ann.height, ann.width, boxes)
        with atomic_path(layout.bg_mask_path(image_id)) as tmp:
            Image.fromarray(mask).save(tmp, format="PNG")  # 2-D uint8 -> mode 'L'
        n_boxes += len(boxes)
        bg_sum += float(mask.mean())
    summary = {"n_images": len(ids), "n_boxes": n_boxes,
               "mean_bg_fraction": bg_sum / len(ids) if ids else 0.0}
    log.info("box masks: %s", summary)
    return summary
