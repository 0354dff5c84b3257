"""Configuration: JSON-schema validation with readable errors, defaults, and cross-key checks."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import jsonschema
import yaml

from .errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader, node, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key]} and {line})", key_node.start_mark)
            seen[key] = line
        except TypeError:  # an unhashable key: PyYAML's own constructor says so
            break
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path`` (empty file: {}); ConfigError naming the file otherwise."""
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got a {type(data).__name__}")
    return data


def load_config(path: str | Path, schema_path: str | Path) -> dict:
    """``validate_config`` of the YAML file ``path``; every error names the file and the key."""
    return validate_config(load_yaml(path), schema_path, source=path)


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


def _is_integer(checker, instance) -> bool:
    # JSON schema counts 2.0 as an integer; the code would then get a float where it needs
    # an int (range(), tensor sizes), so a config integer must be written as one.
    return isinstance(instance, int) and not isinstance(instance, bool)


_TYPE_CHECKER = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)


def _non_finite(value, path: tuple = ()) -> list[tuple[tuple, float]]:
    """(path, value) of every NaN / inf number in a nested config: NaN passes every JSON-schema
    bound (it fails each comparison) and inf passes every lower one."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, value)]
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in _non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _non_finite(v, (*path, i))]
    return []


def _number_hint(value) -> str:
    """Why a number in the user's YAML arrived as a string, when it did."""
    if not isinstance(value, str):
        return ""
    if re.fullmatch(r"\s*[-+]?[0-9]+[eE][-+]?[0-9]+\s*", value):
        # PyYAML follows YAML 1.1: a float needs a dot before its exponent.
        return f" (YAML reads {value} as text: write it with a dot, e.g. {value.lower().replace('e', '.0e', 1)})"
    try:
        float(value)
    except ValueError:
        return ""
    return " (it is quoted, so YAML reads it as text)"


def _message(e: jsonschema.ValidationError) -> str:
    if e.validator == "additionalProperties":
        # Name the unknown key itself, not just its parent.
        extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        parent = _key_of(e)
        keys = ", ".join((f"{parent}.{k}" if e.absolute_path else k) for k in extra)
        return f"unknown key {keys} (allowed: {', '.join(sorted(e.schema['properties']))})"
    if e.validator == "required":
        # Name the missing key itself ('stage1.iterations'), not its parent.
        missing = [k for k in e.validator_value if k not in e.instance]
        prefix = f"{_key_of(e)}." if e.absolute_path else ""
        return "; ".join(f"config key '{prefix}{k}' is required but missing" for k in missing)
    hint = _number_hint(e.instance) if e.validator == "type" else ""
    return f"config key '{_key_of(e)}': {e.message}{hint}"


def validate_config(config: dict, schema_path: str | Path, *, source: str | Path | None = None) -> dict:
    """Validate ``config`` against the schema, fill defaults, run cross-key checks.

    Returns a new dict; raises ConfigError whose message names the offending key (and
    ``source``, the file the config came from, when given). Numbers must be finite.
    """
    where = f" in {source}" if source is not None else ""
    if not isinstance(config, dict):
        raise ConfigError(f"invalid configuration{where}: the top level must be a mapping, "
                          f"got a {type(config).__name__}")
    schema = load_yaml(schema_path)
    config = copy.deepcopy(config)
    validator_class = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPE_CHECKER)
    validator = _with_defaults(validator_class)(schema)
    problems = [(list(path), f"config key '{'.'.join(map(str, path)) or '<top level>'}': {v} is not a finite number")
                for path, v in _non_finite(config)]
    problems += [(list(e.absolute_path), _message(e)) for e in validator.iter_errors(config)
                 if not (isinstance(e.instance, float) and not math.isfinite(e.instance))]
    if problems:
        problems.sort(key=lambda p: [str(k) for k in p[0]])
        lines = [f"  {msg}" for _, msg in problems[:10]]
        raise ConfigError(f"invalid configuration{where}:\n" + "\n".join(lines))
    try:
        _cross_checks(config)
    except ConfigError as e:
        if source is None:
            raise
        raise ConfigError(f"invalid configuration{where}: {e}") from None
    return _sorted(config)


def _sorted(value):
    """Dicts with sorted keys, recursively: rules pass config blocks as params, and the order
    of keys in a user's YAML must not look like a change that reruns them."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _check_local(config: dict) -> None:
    """A user's own data: stages 1 and 2 (stage 3 only as one named segmenter), one seed, and the
    files the layout needs."""
    local = config["dataset"].get("local")
    if not local:
        raise ConfigError("config key 'dataset.local' is required when dataset.source is 'local'")
    needed = ["root"] if local["layout"] == "voc" else ["annotations", "images"]
    missing = [k for k in needed if k not in local]
    if missing:
        raise ConfigError(f"config key 'dataset.local.{missing[0]}' is required with layout {local['layout']!r}")
    if local["layout"] == "coco" and local.get("classes") is not None:
        raise ConfigError("config key 'dataset.local.classes': the COCO layout's classes are its categories; "
                          "leave it out")
    if "stage3" in config:
        _check_own_segmenter(config["stage3"])
    if len(config["seeds"]) > 1:
        raise ConfigError("config key 'seeds': a user's own data runs one seed (set 'seed')")
    if config["stage1"]["backbone"].get("pretrained") == "pretrain":
        raise ConfigError("config key 'stage1.backbone.pretrained': 'pretrain' is the demo's synthetic "
                          "pretraining; use imagenet, a path to a state dict, or null")


def _check_own_segmenter(stage3: dict) -> None:
    """A user's own data: stage 3 is one segmenter, named by ``stage3.segmenter`` (null: none)."""
    from .experiments import parse_segmenter
    from .loss_registry import LOSSES

    name = stage3.get("segmenter")
    if name is None:
        return
    try:
        seg = parse_segmenter(name)
    except ValueError:
        seg = None
    if seg is None or seg.loss not in LOSSES or seg.lam is not None:
        raise ConfigError(f"config key 'stage3.segmenter': {name!r} is not <arch>-<loss> with arch v1 or v2 "
                          f"and a loss of {', '.join(LOSSES)}")
    if seg.full_supervision:
        raise ConfigError(f"config key 'stage3.segmenter': {name!r} trains on ground-truth masks; your boxes "
                          "give pseudo labels (use nal, ce_crf, ...)")
    if stage3["arch"][seg.arch].get("pretrained") == "pretrain":
        raise ConfigError(f"config key 'stage3.arch.{seg.arch}.pretrained': 'pretrain' is the demo's synthetic "
                          "pretraining; use imagenet, a path to a state dict, or null")


def _cross_checks(config: dict) -> None:
    ds = config["dataset"]
    if ds["source"] == "local":
        _check_local(config)
        return
    if config["stage3"].get("segmenter") is not None:
        raise ConfigError("config key 'stage3.segmenter' is for a user's own data (dataset.source: local); "
                          "the paper's segmenters follow from its tables")
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
        for name, spec in dl.items():
            to = str(spec.get("extract_to", "."))
            if to.startswith(("/", "\\", "~")) or ".." in re.split(r"[/\\]", to):
                raise ConfigError(f"config key 'dataset.download.{name}.extract_to': {to!r} must be a folder "
                                  "inside data/<dataset.name>/ (relative, without '..')")
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
    for key in ("stage1", "stage3"):
        scale = (config[key].get("augment") or {}).get("scale")
        if scale and scale[0] > scale[1]:
            raise ConfigError(f"config key '{key}.augment.scale': {scale} is not [low, high] (low > high)")
