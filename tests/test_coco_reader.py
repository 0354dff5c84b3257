"""COCO reader: contiguous labels, box conversion, crowd / degenerate / grayscale handling, VOC map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bana_core.classes import VOC_CLASS_TO_INDEX
from bana_core.data.coco import load_coco, load_coco_index, save_coco_index, voc_seen_labels
from bana_core.errors import DataError

# The 80 COCO 2017 categories as (id, name), as in instances_train2017.json.
COCO_CATEGORIES = [
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"),
    (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"), (54, "sandwich"),
    (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"), (60, "donut"),
    (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"),
    (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"),
    (81, "sink"), (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"),
    (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
]
assert len(COCO_CATEGORIES) == 80


def ann(aid, image_id, cat, bbox, crowd=0):
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": crowd,
            "area": 1.0, "segmentation": [[0, 0, 1, 0, 1, 1]]}


def make_coco(tmp_path, annotations=None, categories=None, images=None):
    """Images: 10 (colour, 40x30), 20 (grayscale, 40x30), 30 (colour, only crowd), 40 (no annotations)."""
    img_dir = tmp_path / "train2017"
    img_dir.mkdir(exist_ok=True)
    if images is None:
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 40, "height": 30} for i in (10, 20, 30, 40)]
    for im in images:
        arr = np.full((im["height"], im["width"], 3), (200, 30, 90), np.uint8)
        img = Image.fromarray(arr)
        (img.convert("L") if im["id"] == 20 else img).save(img_dir / im["file_name"])
    if annotations is None:
        annotations = [
            ann(7, 10, 18, [2.5, 3.2, 10.0, 5.0]),        # -> 2, 3, 13, 9 (floor / ceil)
            ann(5, 10, 1, [30.0, 20.0, 15.0, 15.0]),      # clipped -> 30, 20, 40, 30
            ann(6, 10, 90, [0, 0, 40, 30], crowd=1),      # crowd: never returned
            ann(8, 10, 5, [39.0, 10, 0.0, 5]),            # zero width -> degenerate, skipped
            ann(13, 10, 5, [45.0, 10, 5.0, 5]),           # right of the image -> empty after clipping
            ann(14, 10, 5, [20.5, 10.2, 0.0, 0.3]),      # sub-pixel -> the 1-pixel box 20, 10, 21, 11
            ann(9, 10, 62, [-3.0, -1.0, 5.0, 4.0]),       # clipped -> 0, 0, 2, 3
            ann(11, 20, 3, [1, 1, 5, 5]),
            ann(12, 30, 1, [1, 1, 5, 5], crowd=1),
        ]
    data = {"info": {}, "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "x"}
                           for i, n in (COCO_CATEGORIES if categories is None else categories)]}
    path = tmp_path / "annotations" / "instances_train2017.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return path, img_dir


def test_load_coco_boxes(tmp_path):
    path, img_dir = make_coco(tmp_path)
    coco = load_coco(path, img_dir, drop_grayscale=False)
    assert coco.categories == sorted(COCO_CATEGORIES)
    assert coco.label_of_coco_id[1] == 1 and coco.label_of_coco_id[90] == 80
    assert coco.label_of_coco_id[18] == 17 and coco.label_of_coco_id[62] == 57
    assert sorted(coco.label_of_coco_id.values()) == list(range(1, 81))
    assert coco.image_ids == [10, 20]  # 30 has only a crowd box, 40 none
    boxes = coco.boxes(10)
    assert boxes.dtype == np.int64
    # sorted by annotation id; crowd (6) and degenerate (8, 13) absent
    np.testing.assert_array_equal(boxes, [[30, 20, 40, 30, 1], [2, 3, 13, 9, 17], [0, 0, 2, 3, 57],
                                          [20, 10, 21, 11, 5]])
    np.testing.assert_array_equal(coco.annotation_ids(10), [5, 7, 9, 14])
    np.testing.assert_array_equal(coco.boxes(20), [[1, 1, 6, 6, 3]])
    assert coco.boxes(30).shape == (0, 5) and coco.annotation_ids(30).shape == (0,)
    assert coco.image_path(20) == img_dir / "000000000020.jpg"
    assert coco.image_size(10) == (40, 30)
    assert coco.summary == {"n_images_in_file": 4, "n_images_without_boxes": 2, "n_grayscale_dropped": 0,
                            "n_images": 2, "n_crowd_annotations": 2, "n_degenerate_boxes": 2, "n_short_polygons": 0,
                            "n_boxes": 5, "skipped_annotation_ids": {"degenerate_boxes": [8, 13], "short_polygons": []}}
    with pytest.raises(KeyError):
        coco.boxes(99)


def test_load_coco_without_annotations(tmp_path):
    path, img_dir = make_coco(tmp_path, annotations=[])
    coco = load_coco(path, img_dir, drop_grayscale=True)
    assert coco.image_ids == [] and coco.summary["n_boxes"] == 0
    assert coco.boxes(10).shape == (0, 5)


def test_load_coco_drop_grayscale(tmp_path):
    path, img_dir = make_coco(tmp_path)
    coco = load_coco(path, img_dir, drop_grayscale=True)
    assert coco.image_ids == [10]
    assert coco.summary["n_grayscale_dropped"] == 1 and coco.summary["n_boxes"] == 4
    (img_dir / "000000000010.jpg").unlink()
    with pytest.raises(DataError, match="COCO image file not found") as e:
        load_coco(path, img_dir, drop_grayscale=True)
    assert "000000000010.jpg" in str(e.value)


def test_load_coco_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_coco(tmp_path / "none.json", tmp_path, drop_grayscale=False)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON") as e:
        load_coco(bad, tmp_path, drop_grayscale=False)
    assert str(bad) in str(e.value)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a COCO instances file"):
        load_coco(bad, tmp_path, drop_grayscale=False)
    path, img_dir = make_coco(tmp_path, annotations=[ann(1, 10, 1, [0, 0, 2, 2]), ann(3, 10, 12, [0, 0, 2, 2])])
    with pytest.raises(DataError, match="annotation 3 has unknown category id 12") as e:
        load_coco(path, img_dir, drop_grayscale=False)
    assert str(path) in str(e.value)
    path, img_dir = make_coco(tmp_path, annotations=[ann(1, 77, 1, [0, 0, 2, 2])])
    with pytest.raises(DataError, match="annotation 1 refers to unknown image id 77"):
        load_coco(path, img_dir, drop_grayscale=False)
    path, img_dir = make_coco(tmp_path, annotations=[ann(k, 10, 1, [0, 0, 2]) for k in range(4)])
    with pytest.raises(DataError, match=r"annotation 0 \(image 10\): 'bbox' is \[0, 0, 2\], expected four finite"):
        load_coco(path, img_dir, drop_grayscale=False)


def test_voc_seen_labels_real_categories(tmp_path):
    path, img_dir = make_coco(tmp_path)
    coco = load_coco(path, img_dir, drop_grayscale=False)
    seen = voc_seen_labels(coco)
    assert len(seen) == 20
    names = {coco.label_of_coco_id[cid]: name for cid, name in coco.categories}
    expected_voc = {"airplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
                    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair",
                    "cow": "cow", "dining table": "diningtable", "dog": "dog", "horse": "horse",
                    "motorcycle": "motorbike", "person": "person", "potted plant": "pottedplant",
                    "sheep": "sheep", "couch": "sofa", "train": "train", "tv": "tvmonitor"}
    assert {names[label]: voc for label, voc in seen.items()} == {
        coco_name: VOC_CLASS_TO_INDEX[voc] for coco_name, voc in expected_voc.items()}
    assert seen[1] == VOC_CLASS_TO_INDEX["person"] == 15
    assert seen[coco.label_of_coco_id[72]] == 20  # tv -> tvmonitor
    assert sorted(seen.values()) == list(range(1, 21))


def test_voc_seen_labels_subset_and_mismatch(tmp_path):
    subset = [(1, "person"), (18, "dog"), (25, "giraffe")]
    path, img_dir = make_coco(tmp_path, categories=subset, annotations=[ann(1, 10, 18, [0, 0, 3, 3])])
    coco = load_coco(path, img_dir, drop_grayscale=False)
    assert coco.label_of_coco_id == {1: 1, 18: 2, 25: 3}
    assert voc_seen_labels(coco) == {1: 15, 2: 12}
    renamed = [(i, "doggo" if i == 18 else n) for i, n in COCO_CATEGORIES]
    path, img_dir = make_coco(tmp_path, categories=renamed)
    with pytest.raises(DataError, match="category id 18 is named 'doggo', expected COCO's 'dog'") as e:
        voc_seen_labels(load_coco(path, img_dir, drop_grayscale=False))
    assert str(path) in str(e.value)
    moved = [(1, "person"), (99, "dog")]
    path, img_dir = make_coco(tmp_path, categories=moved, annotations=[ann(1, 10, 1, [0, 0, 3, 3])])
    with pytest.raises(DataError, match="category 'dog' has id 99, expected COCO's id 18"):
        voc_seen_labels(load_coco(path, img_dir, drop_grayscale=False))


@pytest.mark.parametrize("annotations", [None, []])
def test_coco_index_round_trip(tmp_path, annotations):
    path, img_dir = make_coco(tmp_path, annotations=annotations)
    coco = load_coco(path, img_dir, drop_grayscale=True)
    save_coco_index(coco, tmp_path / "index.npz")
    moved = tmp_path / "elsewhere"
    back = load_coco_index(tmp_path / "index.npz", moved)
    assert back.categories == coco.categories and back.label_of_coco_id == coco.label_of_coco_id
    assert back.image_ids == coco.image_ids and back.summary == coco.summary
    assert back.ann_path == path and back.image_path(20) == moved / "000000000020.jpg"
    for image_id in (10, 20, 30, 40):
        np.testing.assert_array_equal(back.boxes(image_id), coco.boxes(image_id))
        np.testing.assert_array_equal(back.annotation_ids(image_id), coco.annotation_ids(image_id))
        assert back.image_size(image_id) == coco.image_size(image_id)
    assert voc_seen_labels(back) == voc_seen_labels(coco)


def test_coco_index_errors(tmp_path):
    with pytest.raises(DataError, match="COCO index not found") as e:
        load_coco_index(tmp_path / "index.npz", tmp_path)
    assert "index.npz" in str(e.value)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="unreadable COCO index"):
        load_coco_index(tmp_path / "bad.npz", tmp_path)
    np.savez(tmp_path / "old.npz", version=np.int64(0))
    with pytest.raises(DataError, match="version"):
        load_coco_index(tmp_path / "old.npz", tmp_path)
