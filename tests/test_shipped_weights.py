"""The demo's shipped pretrained backbones (bana_core.shipped_weights): they match the recipe of
config/config.yaml, a changed recipe is refused before any job, and the copy is checksummed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from workflow_env import copy_workflow, planned_rules, snakemake

from bana_core import shipped_weights
from bana_core.config import load_yaml, validate_config
from bana_core.errors import ConfigError, DataError
from bana_core.models import build_backbone
from bana_core.train import load_weights

ROOT = Path(__file__).resolve().parents[1]


def demo_config() -> dict:
    return validate_config(load_yaml(ROOT / "config" / "config.yaml"), ROOT / "config" / "schema.yaml")


def test_the_demo_ships_weights_made_by_its_own_recipe():
    # Fails when config/config.yaml's pretraining recipe (or RECIPE_VERSION) changes without new
    # weights: rebuild them with `python -m bana_core.shipped_weights rebuild config/config.yaml`.
    config = demo_config()
    assert config["pretrain"]["weights"] == "shipped"
    for net in shipped_weights.NETS:
        assert shipped_weights.recipe_mismatch(config, net) == [], net
    shipped_weights.check_config(config)
    claims = validate_config(load_yaml(ROOT / "config" / "claims.yaml"), ROOT / "config" / "schema.yaml")
    shipped_weights.check_config(claims)


def test_shipped_weights_load_into_the_demo_backbones():
    config = demo_config()
    manifest = json.loads(shipped_weights.MANIFEST.read_text())
    for net in shipped_weights.NETS:
        path = shipped_weights.weights_path(net)
        assert shipped_weights._sha256(path) == manifest[net]["sha256"]
        state, meta = load_weights(path)
        assert meta["net"] == net and meta["val_accuracy"] > 0.5   # the pretraining learned
        if net == "vgg":
            b = config["stage1"]["backbone"]
            model = build_backbone("vgg16", width=b["width"], batch_norm=b["batch_norm"], fc6_dilation=1,
                                   pretrained=None)
        else:
            a = config["stage3"]["arch"]["v2"]
            model = build_backbone("resnet", depth=a["depth"], width=a["width"], pretrained=None)
        model.load_state_dict(state)  # strict: every key and shape


def test_a_changed_recipe_is_refused_with_the_keys_named():
    config = demo_config()
    config["pretrain"]["iterations"] += 1
    config["stage3"]["arch"]["v2"]["width"] = 0.5
    assert shipped_weights.recipe_mismatch(config, "vgg") == ["pretrain.iterations: shipped 4000, config 4001"]
    with pytest.raises(ConfigError, match=r"vgg: pretrain.iterations: shipped 4000, config 4001.*"
                                          r"resnet: backbone.width: shipped 0.25, config 0.5.*pretrain.weights: train"):
        shipped_weights.check_config(config)
    config = demo_config()
    config["seed"] = 1
    assert shipped_weights.recipe_mismatch(config, "resnet") == ["seed: shipped 0, config 1"]


def test_install_checks_the_checksum(tmp_path):
    ship = tmp_path / "demo"
    ship.mkdir()
    torch.save({"model": {"w": torch.ones(2)}, "meta": {"net": "vgg"}}, tmp_path / "trained.pt")
    manifest = shipped_weights.save(demo_config(), {"vgg": tmp_path / "trained.pt"}, ship)
    assert manifest["vgg"]["recipe"] == shipped_weights.recipe(demo_config(), "vgg")
    shipped_weights.install("vgg", tmp_path / "out" / "vgg.pt", ship / "recipe.json")
    assert (tmp_path / "out" / "vgg.pt").read_bytes() == (tmp_path / "trained.pt").read_bytes()
    with open(ship / "vgg.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(DataError, match="vgg.pt.*SHA-256 .* does not match the manifest"):
        shipped_weights.install("vgg", tmp_path / "out" / "again.pt", ship / "recipe.json")
    assert not (tmp_path / "out" / "again.pt").exists()


def test_the_demo_plans_the_shipped_backbones_and_the_tiny_config_trains_them(tmp_path):
    work = copy_workflow(tmp_path)
    demo = planned_rules(work, configfile="config/config.yaml")
    assert "shipped_backbone" in demo and not {"pretrain_backbone", "pretrain_set"} & demo
    tiny = planned_rules(work)
    assert {"pretrain_backbone", "pretrain_set"} <= tiny and "shipped_backbone" not in tiny


def test_a_run_with_another_recipe_and_shipped_weights_stops_before_any_job(tmp_path):
    work = copy_workflow(tmp_path)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["pretrain"]["iterations"] = 100
    (work / "changed.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(work, "-n", configfile="changed.yaml", check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Configuration error in" in err and "pretrain.iterations: shipped 4000, config 100" in err
    assert "Traceback" not in err
    shutil.rmtree(work / ".snakemake", ignore_errors=True)


def test_the_claims_config_plans_its_further_seeds_on_the_shipped_backbones(tmp_path):
    # Further seeds (seed + s) reuse the run's backbones: the recipe check is the run's, not theirs.
    work = copy_workflow(tmp_path)
    rules = planned_rules(work, configfile="config/claims.yaml")
    assert {"shipped_backbone", "seed1_train_segmenter", "seed2_train_classifier"} <= rules
    assert not {r for r in rules if r.endswith(("pretrain_backbone", "pretrain_set"))}
