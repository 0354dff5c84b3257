"""Config validation: defaults, readable errors naming the key, cross-key checks."""
from pathlib import Path

import pytest

from bana_core.config import load_yaml, validate_config
from bana_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"


def demo():
    return load_yaml(ROOT / "config" / "config.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "voc2012.yaml"])
def test_shipped_configs_are_valid(name):
    cfg = validate_config(load_yaml(ROOT / "config" / name), SCHEMA)
    assert cfg["stage1"]["roi_size"] == [2, 2]
    assert cfg["stage2"]["crf"] == [4, 55, 3, 3, 3]


def test_paper_config_has_table1_hyper_parameters():
    cfg = validate_config(load_yaml(ROOT / "config" / "voc2012.yaml"), SCHEMA)
    assert cfg["stage1"]["grid_size"] == 4 and cfg["stage2"]["grid_size"] == 1
    assert cfg["stage2"]["bg_threshold"] == 0.99
    assert cfg["stage3"]["arch"]["v1"]["crf"] == [4, 121, 5, 3, 3]
    assert cfg["stage3"]["arch"]["v2"]["crf"] == [4, 67, 3, 3, 1]
    assert (cfg["stage3"]["temperature"], cfg["stage3"]["lam"], cfg["stage3"]["damp"]) == (20, 0.1, 7)
    assert cfg["dataset"]["expected_train_aug"] == 10582


def test_defaults_are_filled_without_touching_the_input():
    raw = demo()
    del raw["stage1"]["momentum"]
    cfg = validate_config(raw, SCHEMA)
    assert cfg["stage1"]["momentum"] == 0.9
    assert "momentum" not in raw["stage1"]


def test_bad_value_names_the_key():
    raw = demo()
    raw["stage1"]["lr"] = -1
    with pytest.raises(ConfigError, match=r"stage1\.lr"):
        validate_config(raw, SCHEMA)


def test_unknown_key_is_named():
    raw = demo()
    raw["stage3"]["lamda"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown key stage3\.lamda"):
        validate_config(raw, SCHEMA)


def test_wrong_type_names_the_key():
    raw = demo()
    raw["stage2"]["n_shards"] = "four"
    with pytest.raises(ConfigError, match=r"stage2\.n_shards"):
        validate_config(raw, SCHEMA)


def test_pretrain_setting_needs_pretrain_enabled():
    raw = demo()
    raw["pretrain"]["enabled"] = False
    with pytest.raises(ConfigError, match=r"stage1\.backbone\.pretrained"):
        validate_config(raw, SCHEMA)


def test_download_source_needs_archives():
    raw = load_yaml(ROOT / "config" / "voc2012.yaml")
    del raw["dataset"]["download"]["sbd"]
    with pytest.raises(ConfigError, match="sbd"):
        validate_config(raw, SCHEMA)


def test_default_grid_must_be_in_table6_grids():
    raw = demo()
    raw["stage1"]["grid_sizes"] = [1, 2]
    with pytest.raises(ConfigError, match=r"stage1\.grid_size"):
        validate_config(raw, SCHEMA)
