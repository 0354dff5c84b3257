"""The demo's pretrained tiny backbones, shipped with the package (``pretrain.weights: shipped``).

They play ImageNet's role in the demo, as torchvision's ImageNet weights do in the paper config:
made once by the demo's pretraining recipe (rule ``pretrain_backbone``, which stays and which
``pretrain.weights: train`` runs), then versioned here so the demo does not spend ~13 min of
CPU remaking them. ``demo/recipe.json`` records, per backbone, the recipe the weights came from
and their SHA-256; the workflow refuses shipped weights whose recipe differs from the config's
(and the tests fail when the demo config's recipe changes without new weights).

The recipe is what decides the weights: the pretraining keys of the config (the rendered set,
the schedule, the backbone's shape), the seed, and :data:`RECIPE_VERSION`, which a change to the
pretraining code that changes its result must bump (hashing all code the pretraining imports
would invalidate the weights on every refactor of the models or the trainer). Rebuild with::

    python -m bana_core.shipped_weights rebuild config/config.yaml

(about 10 min on 2 cores), then commit ``bana_core/pretrained/demo/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from . import rule_params
from .errors import ConfigError, DataError
from .io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

# Bump when a change to the pretraining code (bana_core.stage1.pretrain_backbone, the pretraining
# set's renderer in bana_core.data.synthetic.pretrain) changes what it produces.
RECIPE_VERSION = 1
NETS = ("vgg", "resnet")
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained" / "demo"
MANIFEST = SHIPPED_DIR / "recipe.json"


def weights_path(net: str) -> Path:
    return SHIPPED_DIR / f"{net}.pt"


def recipe(config: dict, net: str) -> dict:
    """What decides one pretrained backbone: the config keys its two rules read, seed, version."""
    return {"pretrain_set": rule_params.pretrain_set(config), "pretrain": rule_params.pretrain(config),
            "backbone": rule_params.pretrain_backbone(config, net), "seed": config["seed"],
            "version": RECIPE_VERSION}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: shipped {a!r}, config {b!r}"]


def recipe_mismatch(config: dict, net: str, manifest_path: Path = MANIFEST) -> list[str]:
    """How the config's recipe for ``net`` differs from the shipped weights' (empty: they match)."""
    if not Path(manifest_path).exists():
        return [f"no shipped weights ({manifest_path} is missing)"]
    shipped = read_json(manifest_path).get(net, {}).get("recipe")
    if shipped is None:
        return [f"no shipped weights for {net} in {manifest_path}"]
    return _differences(shipped, recipe(config, net))


def check_config(config: dict) -> None:
    """Raise ConfigError, naming the differing keys and the two ways out, when the config asks
    for shipped weights that another recipe made."""
    problems = [f"{net}: {d}" for net in NETS for d in recipe_mismatch(config, net)]
    if problems:
        raise ConfigError("pretrain.weights is 'shipped', but the shipped backbones came from another recipe ("
                          + "; ".join(problems) + "). Set pretrain.weights: train to pretrain them in this run, "
                          "or rebuild them: python -m bana_core.shipped_weights rebuild <config>")


def install(net: str, out: Path, manifest_path: Path = MANIFEST) -> None:
    """Copy the shipped ``net`` backbone to ``out`` after checking its SHA-256 against the manifest."""
    src = Path(manifest_path).parent / f"{net}.pt"
    expected = read_json(manifest_path)[net]["sha256"]
    if not src.exists():
        raise DataError(src, "shipped weights missing (reinstall the package, or set pretrain.weights: train)")
    actual = _sha256(src)
    if actual != expected:
        raise DataError(src, f"SHA-256 {actual[:12]}... does not match the manifest's {expected[:12]}...")
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)


def save(config: dict, trained: dict[str, Path], out_dir: Path = SHIPPED_DIR) -> dict:
    """Write ``trained`` backbones ({net: backbone.pt}) and their recipes into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for net, path in trained.items():
        with atomic_path(out_dir / f"{net}.pt") as tmp:
            shutil.copyfile(path, tmp)
        manifest[net] = {"recipe": recipe(config, net), "sha256": _sha256(out_dir / f"{net}.pt")}
    write_json(out_dir / "recipe.json", manifest)
    return manifest


def rebuild(config: dict, out_dir: Path = SHIPPED_DIR, threads: int = 2) -> dict:
    """Run the config's pretraining recipe (as rules pretrain_set and pretrain_backbone do) and
    ship the result."""
    import torch

    from .data.synthetic import write_pretrain_set
    from .stage1 import pretrain_backbone

    torch.set_num_threads(threads)
    set_cfg = rule_params.pretrain_set(config)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_pretrain_set(tmp / "images.npz", set_cfg["n_per_class"], set_cfg["image_size"], seed=config["seed"],
                           clutter=set_cfg["clutter"], workers=threads)
        trained = {}
        for net in NETS:
            work = tmp / net
            work.mkdir()
            summary = pretrain_backbone(net=net, cfg=rule_params.pretrain(config),
                                        backbone_cfg=rule_params.pretrain_backbone(config, net),
                                        images_path=tmp / "images.npz", out=work / "backbone.pt", work_dir=work,
                                        device=torch.device("cpu"), seed=config["seed"])
            log.info("%s: %s", net, summary)
            trained[net] = work / "backbone.pt"
        return save(config, trained, out_dir)


def main(argv: list[str] | None = None) -> None:
    from .config import load_yaml, validate_config

    parser = argparse.ArgumentParser(description="Rebuild the demo's shipped pretrained backbones.")
    parser.add_argument("command", choices=["rebuild", "check"])
    parser.add_argument("config", help="the config whose pretraining recipe to run (config/config.yaml)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    schema = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"
    config = validate_config(load_yaml(args.config), schema)
    if args.command == "rebuild":
        print(json.dumps(rebuild(config, threads=args.threads), indent=1))
    else:
        try:
            check_config(config)
        except ConfigError as e:
            raise SystemExit(f"{args.config}: {e}") from None
        print("shipped backbones match the recipe of", args.config)


if __name__ == "__main__":  # pragma: no cover
    main()
