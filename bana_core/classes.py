"""Label spaces: the 21 VOC labels, the VOC colour palette, and the VOC <-> COCO class mapping."""

from __future__ import annotations

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
NUM_VOC_CLASSES = len(VOC_CLASSES)  # 21, background included
IGNORE_INDEX = 255
VOC_CLASS_TO_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}

# The COCO 2017 category (id, name) of each VOC class. COCO ids are not contiguous (1..90);
# code that needs a contiguous index must go through bana_core.data.coco, never use these ids
# as indices.
VOC_TO_COCO: dict[str, tuple[int, str]] = {
    "aeroplane": (5, "airplane"), "bicycle": (2, "bicycle"), "bird": (16, "bird"),
    "boat": (9, "boat"), "bottle": (44, "bottle"), "bus": (6, "bus"), "car": (3, "car"),
    "cat": (17, "cat"), "chair": (62, "chair"), "cow": (21, "cow"),
    "diningtable": (67, "dining table"), "dog": (18, "dog"), "horse": (19, "horse"),
    "motorbike": (4, "motorcycle"), "person": (1, "person"), "pottedplant": (64, "potted plant"),
    "sheep": (20, "sheep"), "sofa": (63, "couch"), "train": (7, "train"), "tvmonitor": (72, "tv"),
}
COCO_ID_TO_VOC_INDEX: dict[int, int] = {cid: VOC_CLASS_TO_INDEX[v] for v, (cid, _) in VOC_TO_COCO.items()}


def voc_palette() -> np.ndarray:
    """The standard VOC colour map as a 256 x 3 uint8 array (index 255 = void, cream)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(8):
            r |= ((c >> 0) & 1) << (7 - shift)
            g |= ((c >> 1) & 1) << (7 - shift)
            b |= ((c >> 2) & 1) << (7 - shift)
            c >>= 3
        palette[index] = (r, g, b)
    return palette
