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


def make_shard(root, name, labels):
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
