"""SBD: cls .mat reading, the train_aug set arithmetic, build_train_aug end to end."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from PIL import Image

from bana_core.data.sbd import build_train_aug, read_sbd_cls, train_aug_ids
from bana_core.data.voc import VocLayout, load_label
from bana_core.errors import DataError
from bana_core.io import save_label_png


def save_cls(path, seg: np.ndarray) -> None:
    """An SBD-style cls file: struct GTcls with Segmentation (+ the other real fields)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": seg, "Boundaries": np.zeros((1, 1), dtype=object),
                                      "CategoriesPresent": np.unique(seg[seg > 0]).astype(np.uint8)}})


def test_read_sbd_cls_round_trip(tmp_path):
    seg = np.random.default_rng(0).integers(0, 21, size=(7, 9)).astype(np.uint8)
    save_cls(tmp_path / "a.mat", seg)
    out = read_sbd_cls(tmp_path / "a.mat")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, seg)
    # .mat -> palette PNG -> label is exact
    save_label_png(tmp_path / "a.png", out)
    np.testing.assert_array_equal(load_label(tmp_path / "a.png"), seg)


def test_read_sbd_cls_errors(tmp_path):
    with pytest.raises(DataError, match="SBD class file not found"):
        read_sbd_cls(tmp_path / "missing.mat")
    (tmp_path / "junk.mat").write_bytes(b"definitely not matlab" * 20)
    with pytest.raises(DataError, match="not a readable MATLAB file") as e:
        read_sbd_cls(tmp_path / "junk.mat")
    assert str(tmp_path / "junk.mat") in str(e.value)
    scipy.io.savemat(tmp_path / "other.mat", {"GTinst": {"Segmentation": np.zeros((2, 2), np.uint8)}})
    with pytest.raises(DataError, match="no variable 'GTcls'"):
        read_sbd_cls(tmp_path / "other.mat")
    scipy.io.savemat(tmp_path / "nofield.mat", {"GTcls": {"Boundaries": np.zeros((2, 2), np.uint8)}})
    with pytest.raises(DataError, match="no field 'Segmentation'"):
        read_sbd_cls(tmp_path / "nofield.mat")
    save_cls(tmp_path / "range.mat", np.array([[0, 21]], dtype=np.uint8))
    with pytest.raises(DataError, match=r"holds value\(s\) 21 \(1 px\) outside the labels 0..20"):
        read_sbd_cls(tmp_path / "range.mat")
    save_cls(tmp_path / "float.mat", np.array([[0.0, 1.5]]))
    with pytest.raises(DataError, match="dtype float64"):
        read_sbd_cls(tmp_path / "float.mat")
    save_cls(tmp_path / "3d.mat", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(DataError, match="must be a 2-D map"):
        read_sbd_cls(tmp_path / "3d.mat")


def test_train_aug_ids():
    voc_train = ["v1", "v2", "s1"]
    voc_val = ["val1", "val2", "s3"]
    sbd_train = ["s1", "s2", "s3", "val1"]
    sbd_val = ["s4", "s2", "val2"]
    out = train_aug_ids(voc_train, voc_val, sbd_train, sbd_val)
    assert out == ["s1", "s2", "s4", "v1", "v2"]
    assert train_aug_ids(reversed(voc_train), voc_val, reversed(sbd_train), sbd_val) == out  # order-free
    assert train_aug_ids([], [], [], []) == []


# ---- build_train_aug end to end ----------------------------------------------------------------

SIZES = {"v1": (5, 4), "v2": (6, 3), "val1": (4, 4), "s1": (5, 4), "s2": (3, 7), "s4": (4, 5)}


def make_tree(tmp_path):
    voc = VocLayout(tmp_path / "VOCdevkit" / "VOC2012")
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    voc.jpeg_dir.mkdir(parents=True)
    voc.split_dir.mkdir(parents=True)
    voc.seg_class_dir.mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    for i, (w, h) in SIZES.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(voc.image_path(i))
    voc.split_path("train").write_text("v1\nv2\ns1\n")
    voc.split_path("val").write_text("val1\n")
    (sbd / "train.txt").write_text("s1\ns2\nval1\n")
    (sbd / "val.txt").write_text("s4\n")
    labels = {}
    for k, i in enumerate(["v1", "v2", "s1", "val1"]):  # VOC GT, with the void border value
        w, h = SIZES[i]
        lab = np.full((h, w), k + 1, np.uint8)
        lab[0, 0] = 255
        save_label_png(voc.label_path(i), lab)
        labels[i] = lab
    for k, i in enumerate(["s1", "s2", "val1", "s4"]):
        w, h = SIZES[i]
        seg = (np.arange(h * w).reshape(h, w) % 21).astype(np.uint8)
        seg[-1, -1] = 10 + k
        save_cls(sbd / "cls" / f"{i}.mat", seg)
        labels.setdefault(f"sbd:{i}", seg)
    return voc, sbd, labels


@pytest.mark.parametrize("workers", [1, 2])
def test_build_train_aug(tmp_path, workers):
    voc, sbd, labels = make_tree(tmp_path)
    summary = build_train_aug(voc.root, sbd, expected_count=5, workers=workers, progress=False)
    assert summary == {"n_train_aug": 5, "n_from_sbd": 2, "n_from_voc": 3}
    assert voc.split_path("train_aug").read_text() == "s1\ns2\ns4\nv1\nv2\n"
    assert sorted(p.name for p in voc.seg_class_aug_dir.iterdir()) == ["s1.png", "s2.png", "s4.png", "v1.png", "v2.png"]
    for i in ["v1", "v2", "s1"]:  # VOC wins (s1 is in both)
        assert Image.open(voc.label_path(i, aug=True)).mode == "P"
        np.testing.assert_array_equal(load_label(voc.label_path(i, aug=True)), labels[i])
    for i in ["s2", "s4"]:
        np.testing.assert_array_equal(load_label(voc.label_path(i, aug=True)), labels[f"sbd:{i}"])


def test_build_train_aug_expected_count(tmp_path):
    voc, sbd, _ = make_tree(tmp_path)
    with pytest.raises(DataError) as e:
        build_train_aug(voc.root, sbd, expected_count=10_582, progress=False)
    msg = str(e.value)
    assert "has 5 images, expected 10,582" in msg and str(sbd) in msg
    assert not voc.split_path("train_aug").exists()


def test_build_train_aug_missing_jpeg_and_mat(tmp_path):
    voc, sbd, _ = make_tree(tmp_path)
    voc.split_path("train_aug").write_text("stale\n")
    voc.image_path("s4").unlink()
    with pytest.raises(DataError, match="1 train_aug image\\(s\\) have no JPEG: s4"):
        build_train_aug(voc.root, sbd, progress=False)
    assert not voc.split_path("train_aug").exists()  # a stale marker never survives a failed rebuild
    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(voc.image_path("s4"))
    (sbd / "cls" / "s2.mat").unlink()
    with pytest.raises(DataError, match="SBD class file not found") as e:
        build_train_aug(voc.root, sbd, workers=2, progress=False)
    assert str(sbd / "cls" / "s2.mat") in str(e.value)
    assert not voc.split_path("train_aug").exists()


def test_build_train_aug_label_size_mismatch(tmp_path):
    voc, sbd, _ = make_tree(tmp_path)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(voc.image_path("s2"))
    with pytest.raises(DataError, match="label map is 3 x 7 but .*s2.jpg is 9 x 9") as e:
        build_train_aug(voc.root, sbd, progress=False)
    assert str(sbd / "cls" / "s2.mat") in str(e.value)
