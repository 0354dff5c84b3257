"""Pseudo-label shards: fixed sharding, the merge into one index + mIoU, reading the index back."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bana_core.classes import NUM_VOC_CLASSES
from bana_core.errors import DataError
from bana_core.evaluation import merge_shards, shard_ids
from bana_core.io import save_label_png
from bana_core.label_index import read_pseudo_label_index
from bana_core.metrics import ConfusionMeter


def test_shard_ids_partition_in_order():
    ids = [f"im{k}" for k in range(10)]
    shards = [shard_ids(ids, k, 3) for k in range(3)]
    assert sum(shards, []) == ids and [len(s) for s in shards] == [3, 3, 4]
    assert shard_ids(ids[:1], 0, 4) == [] and shard_ids(ids[:1], 3, 4) == ["im0"]
    with pytest.raises(ValueError, match="out of range"):
        shard_ids(ids, 3, 3)


def make_shard(root, name, labels, u0_reach=None):
    """A shard folder as pseudo_labels_shard writes it: crf/ and ret/ PNGs plus meta.json."""
    d = root / "shards" / name
    meters = {k: ConfusionMeter(NUM_VOC_CLASSES) for k in ("crf", "ret", "agree")}
    for image_id, (gt, crf, ret) in labels.items():
        for kind, label in (("crf", crf), ("ret", ret)):
            save_label_png(d / kind / f"{image_id}.png", label)
        meters["crf"].update(crf, gt)
        meters["ret"].update(ret, gt)
        meters["agree"].update(crf, gt, mask=crf == ret)
    meta = {"ids": list(labels), "confusion": {k: m.to_dict() for k, m in meters.items()},
            "timings_s": {"crf": 1.5}}
    if u0_reach is not None:
        meta["u0_in_box_background"] = u0_reach
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def test_merge_shards_index_and_miou(tmp_path):
    gt = np.array([[0, 0, 1, 1]], dtype=np.uint8)
    right, wrong = gt.copy(), np.array([[0, 0, 0, 1]], dtype=np.uint8)
    set_dir = tmp_path / "results" / "set"
    shards = [make_shard(set_dir, "0", {"a": (gt, right, right)}),
              make_shard(set_dir, "1", {"b": (gt, right, wrong), "c": (gt, wrong, wrong)})]
    result = merge_shards(shards, set_dir / "index.json", set_dir / "eval.json")
    assert result["n_images"] == 3 and result["timings_s"] == {"crf": 3.0}
    crf = ConfusionMeter(NUM_VOC_CLASSES)
    for pred in (right, right, wrong):
        crf.update(pred, gt)
    assert result["miou_crf"] == pytest.approx(crf.miou()[0])
    # by hand: background IoU 6 / 7 (one class-1 pixel called background), class 1 IoU 5 / 6
    assert result["miou_crf"] == pytest.approx((6 / 7 + 5 / 6) / 2)
    # agreement region: all of a, pixels 0, 1, 3 of b, all of c (its pixel 2 wrong)
    assert result["miou_agree"] == pytest.approx((6 / 7 + 4 / 5) / 2)
    assert json.loads((set_dir / "eval.json").read_text()) == result

    raw = json.loads((set_dir / "index.json").read_text())
    assert sorted(raw) == ["a", "b", "c"]
    assert raw["b"] == {"crf": "shards/1/crf/b.png", "ret": "shards/1/ret/b.png"}
    # the whole tree moves: the index still resolves
    moved = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "results"), moved)
    index = read_pseudo_label_index(moved / "set" / "index.json")
    assert index["c"]["ret"] == moved / "set" / "shards" / "1" / "ret" / "c.png"
    assert all(p.is_file() for paths in index.values() for p in paths.values())


def test_merge_adds_up_u0_on_in_box_background(tmp_path):
    gt = np.zeros((2, 2), dtype=np.uint8)
    shards = [make_shard(tmp_path, "0", {"a": (gt, gt, gt)}, {"bg_pixels": 30, "u0_positive": 3, "u0_sum": 1.5}),
              make_shard(tmp_path, "1", {"b": (gt, gt, gt)}, {"bg_pixels": 10, "u0_positive": 5, "u0_sum": 2.5})]
    reach = merge_shards(shards, tmp_path / "index.json", tmp_path / "eval.json")["u0_in_box_background"]
    assert reach == {"n_pixels": 40, "share_positive": 8 / 40, "mean": 4.0 / 40}
    empty = merge_shards([make_shard(tmp_path / "e", "0", {"c": (gt, gt, gt)})],
                         tmp_path / "e" / "index.json", tmp_path / "e" / "eval.json")
    assert empty["u0_in_box_background"] == {"n_pixels": 0, "share_positive": None, "mean": None}


def test_add_u0_reach_counts_ground_truth_background_inside_boxes():
    from bana_core.stage2 import add_u0_reach

    gt = np.zeros((6, 8), np.uint8)
    gt[1:4, 1:4] = 7                       # the object
    boxes = np.array([[0, 0, 5, 5, 7]])    # x1, y1, x2, y2 (exclusive), label: 25 pixels, 9 of them object
    u0 = np.ones((6, 8), np.float32)       # 1 outside the boxes, as Eq. 4
    u0[:5, :5] = 0.0
    u0[0, 0], u0[4, 4], u0[2, 2] = 0.5, 0.25, 0.9   # two background pixels in the box, one object pixel
    totals = {"bg_pixels": 0, "u0_positive": 0, "u0_sum": 0.0}
    add_u0_reach(totals, u0, gt, boxes)
    assert totals == {"bg_pixels": 16, "u0_positive": 2, "u0_sum": pytest.approx(0.75)}
    add_u0_reach(totals, u0, gt, boxes)    # accumulates over images
    assert totals["bg_pixels"] == 32 and totals["u0_positive"] == 4


def test_merge_shards_rejects_an_image_listed_twice(tmp_path):
    gt = np.zeros((2, 2), dtype=np.uint8)
    shards = [make_shard(tmp_path, "0", {"a": (gt, gt, gt)}), make_shard(tmp_path, "1", {"a": (gt, gt, gt)})]
    with pytest.raises(DataError, match="image a already listed by another shard") as e:
        merge_shards(shards, tmp_path / "index.json", tmp_path / "eval.json")
    assert "meta.json" in str(e.value)
    assert not (tmp_path / "index.json").exists()


def test_read_pseudo_label_index_errors(tmp_path):
    path = tmp_path / "index.json"
    path.write_text("{}")
    with pytest.raises(DataError, match="empty or malformed") as e:
        read_pseudo_label_index(path)
    assert "index.json" in str(e.value)
    path.write_text(json.dumps({"a": {"crf": "x.png"}}))
    with pytest.raises(DataError, match="entry 'a' needs 'crf' and 'ret'"):
        read_pseudo_label_index(path)


def _voc_with_one_image(root, image, gt):
    from PIL import Image

    from bana_core.data.voc import VocLayout

    layout = VocLayout(root)
    layout.image_path("x").parent.mkdir(parents=True)
    Image.fromarray(image).save(layout.image_path("x"), quality=100)
    save_label_png(layout.label_path("x"), gt)
    return layout


def test_crf_split_then_evaluate_split(tmp_path):
    """Saved logits -> raw argmax and CRF label PNGs -> mIoU before / after CRF."""
    from bana_core.data.voc import load_label
    from bana_core.evaluation import crf_split, evaluate_split

    h, w = 24, 32
    gt = np.zeros((h, w), np.uint8)
    gt[:, 16:] = 3
    image = np.zeros((h, w, 3), np.uint8)
    image[:, 16:] = 255  # the class-3 half is white: the CRF's colour kernel follows the edge
    _voc_with_one_image(tmp_path / "voc", image, gt)
    logits = np.full((NUM_VOC_CLASSES, h, w), -4.0, np.float32)
    logits[0, :, :16] = logits[3, :, 16:] = 4.0
    logits[3, :, 14:16] = 4.5  # two columns of the dark half wrongly favour class 3, weakly
    logits_dir = tmp_path / "logits"
    logits_dir.mkdir()
    np.save(logits_dir / "x.npy", logits.astype(np.float16))
    (logits_dir / "ids.json").write_text(json.dumps(["x"]))
    out = tmp_path / "pred" / "val"
    crf_split(logits_dir=logits_dir, voc_root=tmp_path / "voc", crf_params=(4, 20, 5, 3, 1), out_dir=out,
              progress=False)
    raw = load_label(out / "raw" / "x.png")
    assert (raw == logits.argmax(0)).all() and (raw[:, 14:16] == 3).all()
    result = evaluate_split(out, tmp_path / "voc")
    assert result["status"] == "scored" and result["n_images"] == 1
    # raw: 2 of 16 dark columns wrong -> background IoU 14/16, class 3 IoU 16/18
    assert result["miou_raw"] == pytest.approx((14 / 16 + 16 / 18) / 2)
    assert result["miou_crf"] == pytest.approx(1.0)  # the CRF snaps the boundary to the colour edge


def test_crf_split_rejects_logits_of_the_wrong_shape(tmp_path):
    from bana_core.evaluation import crf_split

    _voc_with_one_image(tmp_path / "voc", np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))
    logits_dir = tmp_path / "logits"
    logits_dir.mkdir()
    np.save(logits_dir / "x.npy", np.zeros((5, 8, 8), np.float16))
    (logits_dir / "ids.json").write_text(json.dumps(["x"]))
    out = tmp_path / "pred" / "val"
    with pytest.raises(DataError, match=r"x\.npy.*\[21, H, W\].*\(5, 8, 8\)"):
        crf_split(logits_dir=logits_dir, voc_root=tmp_path / "voc", crf_params=(4, 20, 5, 3, 1), out_dir=out,
                  progress=False)
    assert not out.exists()  # no half-written output
