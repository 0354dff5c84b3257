"""VOC readers: XML boxes, split lists, images of every mode, label maps, background masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bana_core.data.voc import (
    VocLayout,
    bg_mask_from_boxes,
    load_image,
    load_label,
    read_split,
    read_voc_xml,
    write_box_masks,
)
from bana_core.errors import DataError


def voc_xml(width: int, height: int, objects: list[tuple], filename: str = "x.jpg") -> str:
    """objects: (name, xmin, ymin, xmax, ymax[, difficult]) in VOC's 1-based inclusive form."""
    body = []
    for name, xmin, ymin, xmax, ymax, *rest in objects:
        diff = f"<difficult>{rest[0]}</difficult>" if rest else ""
        body.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{diff}"
                    f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
                    f"</bndbox></object>")
    return (f"<annotation><folder>VOC2012</folder><filename>{filename}</filename>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{''.join(body)}</annotation>")


def write_xml(path, *args, **kw):
    path.write_text(voc_xml(*args, **kw))
    return path


# ---- XML ---------------------------------------------------------------------------------


def test_xml_round_trip_and_conversion(tmp_path):
    xml = voc_xml(50, 40, [("dog", 1, 1, 50, 40, 0), ("person", 10, 5, 20, 15, 1), ("tvmonitor", 3, 4, 3, 4)])
    # a person <part> has its own bndbox: it must not be taken as the object's box
    xml = xml.replace("<name>person</name>", "<name>person</name><part><name>head</name><bndbox><xmin>11</xmin>"
                      "<ymin>6</ymin><xmax>12</xmax><ymax>7</ymax></bndbox></part>")
    path = tmp_path / "2007_000032.xml"
    path.write_text(xml)
    ann = read_voc_xml(path)
    assert (ann.image_id, ann.width, ann.height, ann.path) == ("2007_000032", 50, 40, path)
    assert [o.name for o in ann.objects] == ["dog", "person", "tvmonitor"]
    assert [o.label for o in ann.objects] == [12, 15, 20]
    assert [o.difficult for o in ann.objects] == [False, True, False]
    # xmin=1 -> x1=0; xmax=W -> x2=W; a 1-pixel VOC box (3..3) becomes [2, 3)
    assert ann.objects[0].box == (0, 0, 50, 40)
    assert ann.objects[1].box == (9, 4, 20, 15)
    assert ann.objects[2].box == (2, 3, 3, 4)
    boxes = ann.boxes()
    assert boxes.dtype == np.int64
    np.testing.assert_array_equal(boxes, [[0, 0, 50, 40, 12], [9, 4, 20, 15, 15], [2, 3, 3, 4, 20]])
    np.testing.assert_array_equal(ann.boxes(include_difficult=False), [[0, 0, 50, 40, 12], [2, 3, 3, 4, 20]])


def test_xml_without_objects_gives_empty_boxes(tmp_path):
    ann = read_voc_xml(write_xml(tmp_path / "a.xml", 10, 10, []))
    assert ann.boxes().shape == (0, 5) and ann.boxes().dtype == np.int64


def test_xml_custom_class_names(tmp_path):
    ann = read_voc_xml(write_xml(tmp_path / "a.xml", 10, 10, [("b", 1, 1, 5, 5)]), class_names=("bg", "a", "b"))
    assert ann.objects[0].label == 2


@pytest.mark.parametrize("xml, message", [
    (None, "annotation file not found"),
    ("this is not xml <", "not a readable XML file"),
    ("<annotation><object><name>dog</name></object></annotation>", "missing <size>"),
    (voc_xml(10, 10, [("zebra", 1, 1, 5, 5)]), "object 0: unknown class 'zebra'"),
    (voc_xml(10, 10, [("background", 1, 1, 5, 5)]), "unknown class 'background'"),
    (voc_xml(10, 10, [("dog", 1, 1, 5, 5), ("cat", 6, 2, 5, 4)]),
     "object 1 (cat): box (xmin=6, ymin=2, xmax=5, ymax=4) has zero or negative area"),
    (voc_xml(10, 10, [("dog", 1, 1, 11, 5)]), "object 0 (dog): box (xmin=1, ymin=1, xmax=11, ymax=5) lies outside"),
    (voc_xml(10, 10, [("dog", 0, 1, 5, 5)]), "object 0 (dog): box (xmin=0, ymin=1, xmax=5, ymax=5) lies outside"),
    (voc_xml(10, 10, [("dog", 1, 1, 5, "x")]), "object 0: <ymax> is not a number"),
])
def test_xml_errors_name_the_file(tmp_path, xml, message):
    path = tmp_path / "bad.xml"
    if xml is not None:
        path.write_text(xml)
    with pytest.raises(DataError) as e:
        read_voc_xml(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


# ---- split lists ----------------------------------------------------------------------------


def test_read_split(tmp_path):
    split = tmp_path / "train.txt"
    split.write_text("2007_000032\n\n  2007_000039  \n2008_000001\n\n")
    assert read_split(split) == ["2007_000032", "2007_000039", "2008_000001"]
    jpegs = tmp_path / "JPEGImages"
    jpegs.mkdir()
    for i in ("2007_000032", "2007_000039", "2008_000001"):
        (jpegs / f"{i}.jpg").write_bytes(b"")
    assert read_split(split, check_dir=jpegs) == ["2007_000032", "2007_000039", "2008_000001"]


def test_read_split_duplicate_id(tmp_path):
    split = tmp_path / "train.txt"
    split.write_text("a\nb\na\n")
    with pytest.raises(DataError, match="duplicate image id 'a' \\(lines 1 and 3\\)") as e:
        read_split(split)
    assert str(split) in str(e.value)


def test_read_split_missing_image(tmp_path):
    split = tmp_path / "val.txt"
    split.write_text("a\nb\n")
    jpegs = tmp_path / "JPEGImages"
    jpegs.mkdir()
    (jpegs / "a.jpg").write_bytes(b"")
    with pytest.raises(DataError) as e:
        read_split(split, check_dir=jpegs)
    msg = str(e.value)
    assert str(split) in msg and "'b'" in msg and str(jpegs / "b.jpg") in msg and "'a'" not in msg
    (jpegs / "b.png").write_bytes(b"")
    with pytest.raises(DataError, match="a.png"):
        read_split(split, check_dir=jpegs, suffix=".png")


def test_read_split_missing_file_and_bad_line(tmp_path):
    with pytest.raises(DataError, match="split file not found"):
        read_split(tmp_path / "nope.txt")
    split = tmp_path / "s.txt"
    split.write_text("a 1\n")
    with pytest.raises(DataError, match="line 1: expected one image id"):
        read_split(split)


# ---- images ---------------------------------------------------------------------------------


def rgb_image(h=12, w=16) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return np.stack([x * 15, y * 20, (x + y) * 5], axis=2).astype(np.uint8)


def test_load_image_rgb_png_exact(tmp_path):
    arr = rgb_image()
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", expect_size=(16, 12))
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, arr)
    out[0, 0] = 0  # writable


def test_load_image_modes_become_rgb(tmp_path):
    arr = rgb_image()
    grey = arr[:, :, 0]
    cases = {
        "L.png": (Image.fromarray(grey), np.repeat(grey[:, :, None], 3, 2)),
        "L.jpg": (Image.fromarray(grey), None),
        "LA.png": (Image.fromarray(np.stack([grey, grey], 2), "LA"), np.repeat(grey[:, :, None], 3, 2)),
        "RGBA.png": (Image.fromarray(np.dstack([arr, np.full(grey.shape, 7, np.uint8)])), arr),
        "P.png": (Image.fromarray(arr).quantize(8), None),
        "CMYK.jpg": (Image.fromarray(arr).convert("CMYK"), None),
        "CMYK.tif": (Image.fromarray(arr).convert("CMYK"), Image.fromarray(arr).convert("CMYK").convert("RGB")),
        "I16.png": (Image.fromarray(grey.astype(np.uint16) * 257), np.repeat(grey[:, :, None], 3, 2)),
    }
    for name, (img, expected) in cases.items():
        img.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.shape == (12, 16, 3) and out.dtype == np.uint8, name
        if expected is not None:
            np.testing.assert_array_equal(out, np.asarray(expected), err_msg=name)
    # lossy cases: close to the source, and grey stays grey
    out = load_image(tmp_path / "L.jpg")
    assert (out[:, :, 0] == out[:, :, 1]).all() and np.abs(out[:, :, 0].astype(int) - grey).max() <= 8
    out = load_image(tmp_path / "CMYK.jpg")
    assert np.abs(out.astype(int) - arr).mean() < 8
    pal = Image.open(tmp_path / "P.png")
    np.testing.assert_array_equal(load_image(tmp_path / "P.png"), np.asarray(pal.convert("RGB")))


def test_load_image_errors(tmp_path):
    Image.fromarray(rgb_image(64, 64)).save(tmp_path / "ok.jpg", quality=95)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all" * 10)
    with pytest.raises(DataError, match="corrupt or truncated image") as e:
        load_image(tmp_path / "cut.jpg")
    assert str(tmp_path / "cut.jpg") in str(e.value)
    with pytest.raises(DataError, match="unreadable image") as e:
        load_image(tmp_path / "garbage.jpg")
    assert str(tmp_path / "garbage.jpg") in str(e.value)
    with pytest.raises(DataError, match="image file not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(DataError, match="image size is 64 x 64 \\(W x H\\), expected 64 x 48") as e:
        load_image(tmp_path / "ok.jpg", expect_size=(64, 48))
    assert str(tmp_path / "ok.jpg") in str(e.value)


# ---- label maps -----------------------------------------------------------------------------


def test_load_label_palette_and_grey(tmp_path):
    from bana_core.io import save_label_png

    label = np.array([[0, 1, 20], [255, 15, 0]], dtype=np.uint8)
    save_label_png(tmp_path / "p.png", label)
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = load_label(tmp_path / "p.png", expect_size=(3, 2))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, label)  # indices, never colours
    Image.fromarray(label).save(tmp_path / "l.png")
    np.testing.assert_array_equal(load_label(tmp_path / "l.png"), label)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="label map has mode 'RGB'"):
        load_label(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="label map size is 3 x 2 \\(W x H\\), expected 2 x 3"):
        load_label(tmp_path / "p.png", expect_size=(2, 3))


# ---- background masks ------------------------------------------------------------------------


def test_bg_mask_from_boxes_exact():
    boxes = np.array([[1, 0, 3, 2, 5], [2, 1, 5, 3, 7], [4, 3, 9, 9, 1]])  # last one runs off the image
    expected = np.array([
        [1, 0, 0, 1, 1, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0, 0],
    ], dtype=np.uint8)
    out = bg_mask_from_boxes(4, 6, boxes)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(bg_mask_from_boxes(4, 6, np.zeros((0, 5), np.int64)), np.ones((4, 6)))
    # nested / duplicate / empty boxes
    out = bg_mask_from_boxes(3, 3, np.array([[0, 0, 3, 3], [1, 1, 2, 2], [1, 1, 2, 2], [2, 2, 2, 3]]))
    np.testing.assert_array_equal(out, np.zeros((3, 3)))
    np.testing.assert_array_equal(bg_mask_from_boxes(2, 2, np.array([[1, 1, 1, 2]])), np.ones((2, 2)))


def test_bg_mask_matches_naive_fill():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(1, 30, size=2)
        m = rng.integers(0, 6)
        p = rng.integers(-5, 35, size=(m, 4))
        boxes = np.concatenate([np.minimum(p[:, :2], p[:, 2:]), np.maximum(p[:, :2], p[:, 2:])], axis=1)
        ref = np.ones((h, w), np.uint8)
        for x1, y1, x2, y2 in boxes:
            ref[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 0
        np.testing.assert_array_equal(bg_mask_from_boxes(h, w, boxes), ref)


def make_voc(root, images: dict[str, tuple[int, int, list[tuple]]], jpeg_size: dict | None = None) -> VocLayout:
    layout = VocLayout(root)
    layout.annotation_dir.mkdir(parents=True)
    layout.jpeg_dir.mkdir(parents=True)
    for image_id, (w, h, objects) in images.items():
        write_xml(layout.annotation_path(image_id), w, h, objects)
        jw, jh = (jpeg_size or {}).get(image_id, (w, h))
        Image.fromarray(np.full((jh, jw, 3), 128, np.uint8)).save(layout.image_path(image_id))
    return layout


def test_write_box_masks(tmp_path):
    layout = make_voc(tmp_path / "VOC2012", {
        "a": (6, 4, [("dog", 2, 1, 3, 2), ("cat", 3, 2, 5, 3)]),
        "b": (5, 5, []),
    })
    assert layout.bg_mask_path("a") == tmp_path / "VOC2012" / "BgMaskfromBoxes" / "a.png"
    summary = write_box_masks(layout, ["a", "b", "a"], progress=False)
    expected_a = np.array([
        [1, 0, 0, 1, 1, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 1, 0, 0, 0, 1],
        [1, 1, 1, 1, 1, 1],
    ], dtype=np.uint8)
    img = Image.open(layout.bg_mask_path("a"))
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), expected_a)
    np.testing.assert_array_equal(load_label(layout.bg_mask_path("b")), np.ones((5, 5)))
    assert summary["n_images"] == 2 and summary["n_boxes"] == 2
    assert summary["mean_bg_fraction"] == pytest.approx((expected_a.mean() + 1.0) / 2)
    assert sorted(p.name for p in layout.bg_mask_dir.iterdir()) == ["a.png", "b.png"]  # no temp files left


def test_write_box_masks_size_mismatch(tmp_path):
    layout = make_voc(tmp_path / "VOC2012", {"a": (6, 4, [("dog", 1, 1, 2, 2)])}, jpeg_size={"a": (4, 6)})
    with pytest.raises(DataError) as e:
        write_box_masks(layout, ["a"], progress=False)
    msg = str(e.value)
    assert str(layout.image_path("a")) in msg and "image is 4 x 6" in msg and "says 6 x 4" in msg
    assert not layout.bg_mask_path("a").exists()


def test_layout_paths(tmp_path):
    layout = VocLayout(str(tmp_path))
    assert layout.root == tmp_path
    assert layout.label_path("x") == tmp_path / "SegmentationClass" / "x.png"
    assert layout.label_path("x", aug=True) == tmp_path / "SegmentationClassAug" / "x.png"
    assert layout.split_path("train_aug") == tmp_path / "ImageSets" / "Segmentation" / "train_aug.txt"
    assert layout.annotation_path("x") == tmp_path / "Annotations" / "x.xml"
    assert layout.image_path("x") == tmp_path / "JPEGImages" / "x.jpg"
    assert layout.seg_class_aug_dir == tmp_path / "SegmentationClassAug"
