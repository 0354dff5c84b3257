"""Label spaces: the 21 VOC labels, the VOC colour palette, the 80 COCO 2017 categories and the
VOC <-> COCO class mapping."""

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

# The 80 COCO 2017 categories: (id, name, supercategory).
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = tuple(
    (int(i), n, sc) for sc, items in (
        ("person", "1 person"),
        ("vehicle", "2 bicycle|3 car|4 motorcycle|5 airplane|6 bus|7 train|8 truck|9 boat"),
        ("outdoor", "10 traffic light|11 fire hydrant|13 stop sign|14 parking meter|15 bench"),
        ("animal", "16 bird|17 cat|18 dog|19 horse|20 sheep|21 cow|22 elephant|23 bear|24 zebra|25 giraffe"),
        ("accessory", "27 backpack|28 umbrella|31 handbag|32 tie|33 suitcase"),
        ("sports", "34 frisbee|35 skis|36 snowboard|37 sports ball|38 kite|39 baseball bat|40 baseball glove|"
                   "41 skateboard|42 surfboard|43 tennis racket"),
        ("kitchen", "44 bottle|46 wine glass|47 cup|48 fork|49 knife|50 spoon|51 bowl"),
        ("food", "52 banana|53 apple|54 sandwich|55 orange|56 broccoli|57 carrot|58 hot dog|59 pizza|60 donut|"
                 "61 cake"),
        ("furniture", "62 chair|63 couch|64 potted plant|65 bed|67 dining table|70 toilet"),
        ("electronic", "72 tv|73 laptop|74 mouse|75 remote|76 keyboard|77 cell phone"),
        ("appliance", "78 microwave|79 oven|80 toaster|81 sink|82 refrigerator"),
        ("indoor", "84 book|85 clock|86 vase|87 scissors|88 teddy bear|89 hair drier|90 toothbrush"),
    ) for i, n in (item.split(" ", 1) for item in items.split("|"))
)
COCO_ID_TO_NAME: dict[int, str] = {cid: name for cid, name, _ in COCO_CATEGORIES}
assert len(COCO_ID_TO_NAME) == 80
assert all(COCO_ID_TO_NAME[cid] == name for cid, name in VOC_TO_COCO.values())


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
