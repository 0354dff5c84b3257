"""The synthetic benchmark: public layouts, cross-format relations, determinism, atomic output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from bana_core.classes import VOC_CLASS_TO_INDEX, VOC_TO_COCO, voc_palette
from bana_core.data import synthetic
from bana_core.data.synthetic import make_pretrain_set, mask_to_polygons, render_pretrain_image, synthesize

# pycocotools (not this code) warns about numpy 2 copy semantics on every decode.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

SMALL = dict(image_size=(64, 48), n_train=10, n_val=20, n_test=10, n_sbd_only=10, n_coco=12, progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    synthesize(root, seed=0, **SMALL)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _voc(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def _sbd(root: Path) -> Path:
    return root / "benchmark_RELEASE" / "dataset"


def _ids(path: Path) -> list[str]:
    return path.read_text().split()


def _xml_objects(path: Path) -> tuple[ET.Element, list[tuple[str, int, int, int, int, int]]]:
    root = ET.parse(path).getroot()
    objs = []
    for o in root.findall("object"):
        b = o.find("bndbox")
        x1, y1, x2, y2 = (int(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
        objs.append((o.find("name").text, x1 - 1, y1 - 1, x2, y2, int(o.find("difficult").text)))
    return root, objs


def test_same_seed_identical_other_seed_differs_any_workers(data, tmp_path):
    again = tmp_path / "again"
    synthesize(again, seed=0, workers=2, **SMALL)
    a, b = _files(data), _files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other = tmp_path / "other"
    synthesize(other, seed=1, **SMALL)
    c = _files(other)
    jpegs = [k for k in a if k.endswith(".jpg") and "JPEGImages" in k]
    assert jpegs and all(k in c for k in ["coco/annotations/instances_train2017.json", "synthetic_summary.json"])
    assert sum(a[k] != c.get(k) for k in jpegs) > len(jpegs) // 2


def test_split_lists(data):
    sets = _voc(data) / "ImageSets" / "Segmentation"
    train, val, test = (set(_ids(sets / f"{s}.txt")) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (10, 20, 10)
    assert not (train & val) and not (train & test) and not (val & test)
    assert _ids(sets / "trainval.txt") == sorted(train | val)
    sbd_train, sbd_val = set(_ids(_sbd(data) / "train.txt")), set(_ids(_sbd(data) / "val.txt"))
    assert not (sbd_train & sbd_val) and not ((sbd_train | sbd_val) & test)
    sbd = sbd_train | sbd_val
    sbd_only = sbd - train - val
    assert len(sbd_only) == 10
    # SBD holds VOC train and VOC val images in both of its lists, so train_aug is a real set operation.
    assert sbd_train & val and sbd_val & val and sbd & train
    train_aug = (sbd | train) - val
    assert train < train_aug < sbd | train
    all_xml = {p.stem for p in (_voc(data) / "Annotations").glob("*.xml")}
    assert all_xml == train | val | test | sbd_only
    summary = json.loads((data / "synthetic_summary.json").read_text())
    assert summary["counts"]["train_aug"] == len(train_aug)
    assert summary["counts"]["sbd_train"] == len(sbd_train) and summary["counts"]["sbd_val"] == len(sbd_val)


def test_voc_xml_png_and_tight_boxes(data):
    voc = _voc(data)
    sets = voc / "ImageSets" / "Segmentation"
    seg_ids = set(_ids(sets / "trainval.txt")) | set(_ids(sets / "test.txt"))
    n_objects, labels_in_val = 0, set()
    val = set(_ids(sets / "val.txt"))
    for image_id in sorted(seg_ids):
        img = Image.open(voc / "JPEGImages" / f"{image_id}.jpg")
        assert img.mode == "RGB" and img.format == "JPEG"
        root, objs = _xml_objects(voc / "Annotations" / f"{image_id}.xml")
        assert root.findtext("folder") == "VOC2012" and root.findtext("filename") == f"{image_id}.jpg"
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == img.size
        assert root.findtext("size/depth") == "3" and root.findtext("segmented") == "1"
        cls_png = Image.open(voc / "SegmentationClass" / f"{image_id}.png")
        assert cls_png.mode == "P"
        assert np.array_equal(np.array(cls_png.getpalette(), dtype=np.uint8).reshape(-1, 3), voc_palette()[:256])
        cls = np.array(cls_png)
        obj = np.array(Image.open(voc / "SegmentationObject" / f"{image_id}.png"))
        assert cls.shape == obj.shape == (img.size[1], img.size[0])
        assert 1 <= len(objs) <= 4
        assert np.array_equal(cls == 255, obj == 255)  # one void ring shared by both maps
        void = obj == 255
        assert void.any()
        # The void ring lies on background, right next to objects.
        near = ndimage.binary_dilation((obj > 0) & ~void, structure=np.ones((3, 3), bool))
        assert np.all(near[void])
        assert set(np.unique(obj[~void])) <= set(range(len(objs) + 1))
        slices = ndimage.find_objects(np.where(void, 0, obj), max_label=len(objs))
        for k, (name, x1, y1, x2, y2, _difficult) in enumerate(objs):
            s = slices[k]
            assert s is not None, f"{image_id}: object {k + 1} has no pixels"
            assert (x1, y1, x2, y2) == (s[1].start, s[0].start, s[1].stop, s[0].stop), f"{image_id} object {k + 1}"
            assert np.all(cls[obj == k + 1] == VOC_CLASS_TO_INDEX[name])
        assert np.all(cls[obj == 0] == 0)
        n_objects += len(objs)
        if image_id in val:
            labels_in_val |= set(np.unique(cls[~void]).tolist())
    assert labels_in_val == set(range(21))  # 20 val images cycle through every class
    assert 1.5 <= n_objects / len(seg_ids) <= 3.5


def test_boxes_leave_background_inside(data):
    """Objects are not rectangles: a good share of box pixels is background."""
    voc = _voc(data)
    box_px, obj_px = 0, 0
    for image_id in _ids(voc / "ImageSets" / "Segmentation" / "trainval.txt"):
        obj = np.array(Image.open(voc / "SegmentationObject" / f"{image_id}.png"))
        for k, (_n, x1, y1, x2, y2, _d) in enumerate(_xml_objects(voc / "Annotations" / f"{image_id}.xml")[1]):
            box_px += (x2 - x1) * (y2 - y1)
            obj_px += int((obj[y1:y2, x1:x2] == k + 1).sum())
    assert 0.35 < obj_px / box_px < 0.85


def test_sbd_mats_match_voc(data):
    voc, sbd = _voc(data), _sbd(data)
    seg = set(_ids(voc / "ImageSets" / "Segmentation" / "trainval.txt"))
    sbd_ids = _ids(sbd / "train.txt") + _ids(sbd / "val.txt")
    checked = 0
    for image_id in sbd_ids:
        assert (sbd / "img" / f"{image_id}.jpg").read_bytes() == (voc / "JPEGImages" / f"{image_id}.jpg").read_bytes()
        root, objs = _xml_objects(voc / "Annotations" / f"{image_id}.xml")
        m = scipy.io.loadmat(sbd / "cls" / f"{image_id}.mat")
        gt = m["GTcls"][0, 0]
        cls = gt["Segmentation"]
        assert cls.dtype == np.uint8 and 255 not in cls
        squeezed = scipy.io.loadmat(sbd / "cls" / f"{image_id}.mat", squeeze_me=True, struct_as_record=False)["GTcls"]
        assert np.array_equal(squeezed.Segmentation, cls)
        classes = sorted({VOC_CLASS_TO_INDEX[o[0]] for o in objs})
        assert gt["CategoriesPresent"].ravel().tolist() == classes
        assert gt["Boundaries"].shape == (20, 1) and scipy.sparse.issparse(gt["Boundaries"][0, 0])
        for c in classes:
            bnd = gt["Boundaries"][c - 1, 0].toarray().astype(bool)
            assert bnd.any() and np.all(cls[bnd] == c)
        inst_gt = scipy.io.loadmat(sbd / "inst" / f"{image_id}.mat")["GTinst"][0, 0]
        inst = inst_gt["Segmentation"]
        assert inst_gt["Categories"].ravel().tolist() == [VOC_CLASS_TO_INDEX[o[0]] for o in objs]
        assert inst_gt["Boundaries"].shape == (len(objs), 1)
        for k, (_name, x1, y1, x2, y2, _d) in enumerate(objs):
            ys, xs = np.nonzero(inst == k + 1)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
        if image_id in seg:  # SBD = VOC with void mapped to background
            voc_cls = np.array(Image.open(voc / "SegmentationClass" / f"{image_id}.png"))
            voc_obj = np.array(Image.open(voc / "SegmentationObject" / f"{image_id}.png"))
            assert np.array_equal(cls, np.where(voc_cls == 255, 0, voc_cls))
            assert np.array_equal(inst, np.where(voc_obj == 255, 0, voc_obj))
            checked += 1
        else:  # SBD-only: a detection image of VOC, outside the segmentation set
            assert root.findtext("segmented") == "0"
            assert not (voc / "SegmentationClass" / f"{image_id}.png").exists()
    assert checked > 0


def test_coco_annotations(data):
    coco_root = data / "coco"
    coco = COCO(str(coco_root / "annotations" / "instances_train2017.json"))
    cats = coco.loadCats(coco.getCatIds())
    assert len(cats) == 80
    by_id = {c["id"]: c for c in cats}
    assert by_id[1]["name"] == "person" and by_id[90]["name"] == "toothbrush" and by_id[25]["supercategory"] == "animal"
    assert all(by_id[cid]["name"] == name for cid, name in VOC_TO_COCO.values())
    voc_ids = {cid for cid, _ in VOC_TO_COCO.values()}
    anns = coco.loadAnns(coco.getAnnIds())
    assert {a["category_id"] for a in anns} - voc_ids  # unseen classes occur
    assert len({a["id"] for a in anns}) == len(anns)
    kinds = set()
    for a in anns:
        info = coco.imgs[a["image_id"]]
        m = coco.annToMask(a).astype(bool)
        assert m.shape == (info["height"], info["width"]) and m.any()
        x, y, w, h = a["bbox"]
        ys, xs = np.nonzero(m)
        assert (int(np.floor(x)), int(np.floor(y)), int(np.ceil(x + w)), int(np.ceil(y + h))) == (
            xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert a["area"] == pytest.approx(m.sum())
        if a["iscrowd"]:
            kinds.add("crowd")
            assert isinstance(a["segmentation"]["counts"], list)  # COCO's uncompressed crowd RLE
        else:
            kinds.add("polygon" if isinstance(a["segmentation"], list) else "rle")
    assert kinds == {"crowd", "polygon", "rle"}
    modes = set()
    for info in coco.imgs.values():
        assert info["file_name"] == f"{info['id']:012d}.jpg"
        img = Image.open(coco_root / "train2017" / info["file_name"])
        assert img.size == (info["width"], info["height"])
        modes.add(img.mode)
    assert modes == {"RGB", "L"}


def test_summary(data):
    s = json.loads((data / "synthetic_summary.json").read_text())
    assert s["counts"]["val"] == 20 and s["counts"]["coco"] == 12 and s["counts"]["coco_crowd"] >= 1
    assert s["counts"]["coco_grayscale"] >= 1
    assert s["labels_in_val"] == list(range(21))
    assert all(1.0 <= v <= 4.0 for v in s["objects_per_image"].values())
    assert set(s["class_histogram"]["val"]) == set(VOC_CLASS_TO_INDEX) - {"background"}


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls, real_save = [], synthetic.dataset.save_jpeg

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("interrupted")
        real_save(*args, **kwargs)

    monkeypatch.setattr(synthetic.dataset, "save_jpeg", failing_save)
    with pytest.raises(RuntimeError, match="interrupted"):
        synthesize(tmp_path / "synthetic", seed=0, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        synthesize(tmp_path / "x", image_size=(16, 16), progress=False)
    with pytest.raises(ValueError, match="counts"):
        synthesize(tmp_path / "x", n_val=-1, progress=False)


def test_pretrain_set():
    x, y = make_pretrain_set(3, size=40, seed=0)
    assert x.shape == (60, 40, 40, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64 and np.array_equal(np.bincount(y), [0] + [3] * 20)
    x2, y2 = make_pretrain_set(3, size=40, seed=0, workers=2)  # each image has its own seed
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, make_pretrain_set(3, size=40, seed=1)[0])
    assert x.std() > 20  # textured, not blank


def test_pretrain_clutter_keeps_the_labelled_object_visible():
    n_front = 0
    for i in range(40):
        label = 1 + i % 20
        _, whole, n_clean = render_pretrain_image(np.random.default_rng(i), label, 48, clutter=0.0)
        _, visible, n = render_pretrain_image(np.random.default_rng(i), label, 48, clutter=1.0)
        assert n_clean == 0 and 1 <= n <= 2
        # same draws up to the distractors: the labelled object is placed where it was without
        # clutter, and distractors in front leave it at least 60 % of its pixels
        assert not (visible & ~whole).any() and visible.sum() >= 0.6 * whole.sum()
        n_front += int(visible.sum() < whole.sum())
    assert 5 <= n_front <= 35  # distractors go in front about half the time
    x0 = make_pretrain_set(2, size=40, seed=0)[0]
    assert not np.array_equal(x0, make_pretrain_set(2, size=40, seed=0, clutter=0.5)[0])


def test_mask_to_polygons_round_trip():
    yy, xx = np.mgrid[0:30, 0:40]
    blob = ((xx - 12) ** 2 / 60 + (yy - 14) ** 2 / 40 <= 1) | ((xx > 25) & (xx < 35) & (yy > 3) & (yy < 8))
    polys = mask_to_polygons(blob)
    assert polys is not None and len(polys) == 2
    back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 30, 40))).astype(bool)
    assert np.array_equal(back, blob)
    ring = ((xx - 20) ** 2 + (yy - 15) ** 2 <= 100) & ((xx - 20) ** 2 + (yy - 15) ** 2 > 16)
    assert mask_to_polygons(ring) is None  # holes need RLE


def test_pretraining_set_written_once_reads_back_identical(tmp_path):
    from bana_core.data.synthetic import read_pretrain_set, write_pretrain_set
    from bana_core.errors import DataError

    path = tmp_path / "images.npz"
    summary = write_pretrain_set(path, 3, 32, seed=4, clutter=0.5, workers=1)
    images, labels = read_pretrain_set(path)
    expected_images, expected_labels = make_pretrain_set(3, 32, seed=4, clutter=0.5)
    assert summary == {"n_images": 60, "image_size": 32, "n_classes": 20}
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    assert [p.name for p in tmp_path.iterdir()] == ["images.npz"]  # no temporary left
    (tmp_path / "bad.npz").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="bad.npz"):
        read_pretrain_set(tmp_path / "bad.npz")
