"""bana_core.rule_params: each rule gets exactly the config keys it reads, chosen by inclusion."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bana_core import rule_params
from bana_core.config import load_yaml, validate_config
from bana_core.experiments import Segmenter, parse_segmenter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo() -> dict:
    return validate_config(load_yaml(ROOT / "config" / "config.yaml"), ROOT / "config" / "schema.yaml")


def test_a_new_key_in_a_block_changes_no_rule_settings(demo):
    # A key nobody reads must not rerun anything (it used to rerun all of stage 1).
    edited = copy.deepcopy(demo)
    for block in ("stage1", "stage2", "stage3", "pretrain"):
        edited[block]["unread_new_key"] = 1
    edited["stage3"]["arch"]["v2"]["unread_new_key"] = 1
    seg = Segmenter("v2", "nal")
    assert rule_params.stage1_train(edited) == rule_params.stage1_train(demo)
    assert rule_params.stage2_shard(edited) == rule_params.stage2_shard(demo)
    assert rule_params.coco_shard(edited) == rule_params.coco_shard(demo)
    assert rule_params.pretrain(edited) == rule_params.pretrain(demo)
    assert rule_params.pretrain_set(edited) == rule_params.pretrain_set(demo)
    assert rule_params.pretrain_backbone(edited, "resnet") == rule_params.pretrain_backbone(demo, "resnet")
    assert rule_params.stage3_train(edited, seg) == rule_params.stage3_train(demo, seg)


def test_a_read_key_does_change_them(demo):
    edited = copy.deepcopy(demo)
    edited["stage1"]["lr"] *= 2
    edited["stage3"]["arch"]["v1"]["iterations"] += 1
    assert rule_params.stage1_train(edited)["lr"] == 2 * demo["stage1"]["lr"]
    v1, v2 = Segmenter("v1", "nal"), Segmenter("v2", "nal")
    assert rule_params.stage3_train(edited, v1) != rule_params.stage3_train(demo, v1)
    assert rule_params.stage3_train(edited, v2) == rule_params.stage3_train(demo, v2)


def test_stage1_settings_leave_out_the_experiment_grid(demo):
    got = rule_params.stage1_train(demo)
    assert not {"grid_size", "grid_sizes", "trainsets"} & set(got)
    assert got["backbone"] == demo["stage1"]["backbone"] and got["lr"] == demo["stage1"]["lr"]


def test_pretraining_gets_the_backbone_shape_only(demo):
    # Not the whole stage3.arch.v2 block: its learning rate or CRF must not rerun the pretraining.
    assert rule_params.pretrain_backbone(demo, "resnet") == {"depth": 18, "width": 0.25}
    assert rule_params.pretrain_backbone(demo, "vgg") == {"width": 0.125, "batch_norm": True}
    assert "enabled" not in rule_params.pretrain(demo) and "threads" not in rule_params.pretrain(demo)


def test_stage3_settings_of_one_segmenter(demo):
    v1 = rule_params.stage3_train(demo, parse_segmenter("v1-nal"))
    assert set(v1["arch"]) == {"v1"} and "crf" not in v1["arch"]["v1"]  # the CRF step's key
    assert v1["lam"] == demo["stage3"]["lam"] and v1["damp"] == demo["stage3"]["damp"]
    assert not {"eval_scales", "eval_flip", "fig3_lambdas", "fig3_damps"} & set(v1)
    fig3 = rule_params.stage3_train(demo, parse_segmenter("v1-nal-lam0.5-damp3"))
    assert "lam" not in fig3 and "damp" not in fig3  # it carries its own


def test_a_missing_key_is_named():
    with pytest.raises(KeyError, match="clutter"):
        rule_params.pretrain_set({"pretrain": {"n_per_class": 1, "image_size": 32, "iterations": 1, "batch_size": 1,
                                            "lr": 0.1}})


def test_the_pretraining_set_and_schedule_are_apart(demo):
    # Changing the schedule must not re-render the 24,000 images; the rendering keys are not
    # the schedule's (both backbones read one rendered set).
    assert set(rule_params.pretrain_set(demo)) == {"n_per_class", "image_size", "clutter"}
    assert set(rule_params.pretrain(demo)) == {"iterations", "batch_size", "lr"}
