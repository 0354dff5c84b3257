"""Configuration: JSON-schema validation with readable errors, defaults, and cross-key checks."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from .errors import ConfigError


def load_yaml(path: str | Path) -> dict:
    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None


def _with_defaults(validator_class):
    """A validator that also fills in the schema's `default`s (missing keys only)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_of(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Validate ``config`` against the schema, fill defaults, run cross-key checks.

    Returns a new dict; raises ConfigError whose message names the offending key.
    """
    schema = load_yaml(schema_path)
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            if e.validator == "additionalProperties":
                # Name the unknown key itself, not just its parent.
                extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
                parent = _key_of(e)
                keys = ", ".join((f"{parent}.{k}" if e.absolute_path else k) for k in extra)
                lines.append(f"  unknown key {keys} (allowed: {', '.join(sorted(e.schema['properties']))})")
            elif e.validator == "required":
                # Name the missing key itself ('stage1.iterations'), not its parent.
                missing = [k for k in e.validator_value if k not in e.instance]
                prefix = f"{_key_of(e)}." if e.absolute_path else ""
                lines += [f"  config key '{prefix}{k}' is required but missing" for k in missing]
            else:
                lines.append(f"  config key '{_key_of(e)}': {e.message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    _cross_checks(config)
    return _sorted(config)


def _sorted(value):
    """Dicts with sorted keys, recursively: rules pass config blocks as params, and the order
    of keys in a user's YAML must not look like a change that reruns them."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _cross_checks(config: dict) -> None:
    ds = config["dataset"]
    if ds["source"] == "synthetic" and not ds.get("synthetic"):
        raise ConfigError("config key 'dataset.synthetic' is required when dataset.source is 'synthetic'")
    if ds["source"] == "download":
        dl = ds.get("download") or {}
        needed = ["voc_trainval", "sbd"]
        if config["coco"]["enabled"]:
            needed += ["coco_train", "coco_annotations"]
        missing = [k for k in needed if k not in dl]
        if missing:
            raise ConfigError(
                "config key 'dataset.download' lacks " + ", ".join(missing) + " (url + md5 of each archive)"
            )
    pretrain = config.get("pretrain", {})
    wants_pretrain = [
        key for key, value in [
            ("stage1.backbone.pretrained", config["stage1"]["backbone"].get("pretrained")),
            ("stage3.arch.v1.pretrained", config["stage3"]["arch"]["v1"].get("pretrained")),
            ("stage3.arch.v2.pretrained", config["stage3"]["arch"]["v2"].get("pretrained")),
        ] if value == "pretrain"
    ]
    if wants_pretrain and not pretrain.get("enabled"):
        raise ConfigError(f"config key '{wants_pretrain[0]}' is 'pretrain' but pretrain.enabled is false")
    if pretrain.get("enabled"):
        missing = [k for k in ("n_per_class", "image_size", "iterations", "batch_size", "lr") if k not in pretrain]
        if missing:
            raise ConfigError(f"config key 'pretrain' lacks {', '.join(missing)} (needed when pretrain.enabled)")
    if config["stage1"]["grid_size"] not in config["stage1"]["grid_sizes"]:
        raise ConfigError("config key 'stage1.grid_size' must be one of stage1.grid_sizes (Table 6 rows)")
    if config["stage2"]["grid_size"] not in config["stage2"]["gen_grid_sizes"]:
        raise ConfigError("config key 'stage2.grid_size' must be one of stage2.gen_grid_sizes (Table 6 columns)")
    for step in config["stage1"]["lr_steps"]:
        if step >= config["stage1"]["iterations"]:
            raise ConfigError(f"config key 'stage1.lr_steps': step {step} is not below stage1.iterations")
