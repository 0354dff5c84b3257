"""The synthetic world's phenomena: context, camouflage, soft edges, holes, thin parts.

Each is a seeded probability (bana_core.data.synthetic.World); these tests check that the draws
happen at the configured rates and that each one does to the image what it claims.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from bana_core.data.synthetic import (
    CLASS_SPECS,
    CONTEXT_FAMILIES,
    FAMILIES,
    TRAITS,
    VOC_SPECS,
    World,
    render_scene,
    synthesize,
)
from bana_core.data.synthetic.scenes import _add_thin_parts
from bana_core.data.synthetic.textures import render_background

ROOT = Path(__file__).resolve().parents[1]
SIZE = (64, 48)
NONE = World(context=0.0, camouflage=0.0, soft_edges=0.0, holes=0.0, thin_parts=0.0)
AEROPLANE = [s.name for s in CLASS_SPECS].index("aeroplane")


def _scenes(world: World, n: int, seed: int = 0, **kw):
    return [render_scene(np.random.default_rng([seed, i]), SIZE, world=world, **kw) for i in range(n)]


def _within(count: int, n: int, p: float) -> bool:
    """count is a plausible Binomial(n, p) draw (4 standard deviations)."""
    return abs(count - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1


def test_context_one_puts_every_class_in_its_setting():
    scenes = _scenes(dataclasses.replace(NONE, context=1.0), 60, forced=AEROPLANE)
    assert all(s.background in CLASS_SPECS[s.specs[s.main]].context for s in scenes)
    planes = [s for s in scenes if s.specs[s.main] == AEROPLANE]
    assert len(planes) >= 20 and {s.background for s in planes} == {"sky"}
    # the main object is the largest visible one
    for s in scenes:
        areas = np.bincount(s.instances.ravel(), minlength=len(s.specs) + 1)[1:]
        assert areas[s.main] == areas.max()


def test_context_zero_spreads_the_families():
    scenes = _scenes(NONE, 330, forced=AEROPLANE)
    counts = {f: sum(s.background == f for s in scenes) for f in FAMILIES}
    assert all(_within(c, len(scenes), 1 / len(FAMILIES)) for c in counts.values()), counts
    planes = [s for s in scenes if s.specs[s.main] == AEROPLANE]
    assert len({s.background for s in planes}) >= 6


@pytest.mark.parametrize("context", [0.3, 0.7])
def test_context_frequency_matches_the_setting(context):
    scenes = _scenes(dataclasses.replace(NONE, context=context), 300, seed=1)
    in_context = sum(s.background in CLASS_SPECS[s.specs[s.main]].context for s in scenes)
    # in context by the draw, or by chance when the uniform draw lands on a preferred family
    p = np.mean([context + (1 - context) * len(CLASS_SPECS[s.specs[s.main]].context) / len(FAMILIES)
                 for s in scenes])
    assert _within(in_context, len(scenes), p), (in_context, p)


def test_traits_are_drawn_at_their_rates():
    world = World(context=0.0, camouflage=0.3, soft_edges=0.6, holes=0.5, thin_parts=0.4)
    traits = [t for s in _scenes(world, 250, seed=2) for t in s.traits]
    n = len(traits)
    for name in ("camouflage", "soft_edges", "thin_parts"):
        assert _within(sum(name in t for t in traits), n, getattr(world, name)), name
    # a hole is cut only where one fits inside the object: at most the rate, and most of the time
    holes = sum("holes" in t for t in traits)
    assert 0.5 * 0.5 * n < holes <= n * 0.5 + 4 * np.sqrt(n * 0.25)
    assert not any(t for s in _scenes(NONE, 40) for t in s.traits)
    assert set(TRAITS) == {"camouflage", "soft_edges", "holes", "thin_parts"}


def _boundary_contrast(scenes) -> float:
    """Mean colour difference between an object pixel and a background pixel beside it."""
    diffs = []
    for s in scenes:
        img, inst = s.image.astype(float), s.instances
        for a, b, ia, ib in ((img[:, :-1], img[:, 1:], inst[:, :-1], inst[:, 1:]),
                             (img[:-1], img[1:], inst[:-1], inst[1:])):
            edge = (ia > 0) != (ib > 0)
            diffs.append(np.abs(a - b)[edge].mean(axis=1))
    return float(np.concatenate(diffs).mean())


def test_camouflage_and_soft_edges_weaken_the_boundaries():
    plain = _boundary_contrast(_scenes(NONE, 80, seed=3))
    camouflaged = _boundary_contrast(_scenes(dataclasses.replace(NONE, camouflage=1.0), 80, seed=3))
    soft = _boundary_contrast(_scenes(dataclasses.replace(NONE, soft_edges=1.0), 80, seed=3))
    assert camouflaged < 0.75 * plain and soft < 0.85 * plain, (plain, camouflaged, soft)


def test_holes_show_background_through_the_object():
    def share_with_enclosed_background(world):
        holed, n = 0, 0
        for s in _scenes(world, 120, seed=4):
            for k in range(len(s.specs)):
                m = s.instances == k + 1
                n += 1
                holed += bool((ndimage.binary_fill_holes(m) & ~m & (s.instances == 0)).any())
        return holed / n

    base = share_with_enclosed_background(NONE)  # bicycle wheels, chair backs, donuts
    assert share_with_enclosed_background(dataclasses.replace(NONE, holes=1.0)) > base + 0.3


def test_thin_parts_are_one_or_two_pixels_wide():
    yy, xx = np.mgrid[0:80, 0:80].astype(float)
    dx, dy = xx + 0.5 - 40, yy + 0.5 - 40
    disc = np.hypot(dx, dy) <= 15
    outside = 0
    for seed in range(20):
        mask = disc.copy()
        _add_thin_parts(np.random.default_rng(seed), mask, dx, dy)
        added = mask & ~disc
        outside += int(added.any())
        # a 3 x 3 opening removes every added pixel but a few where a part meets the disc
        assert (ndimage.binary_opening(mask, np.ones((3, 3), bool)) & added).sum() <= 4
        assert ndimage.label(mask, np.ones((3, 3), bool))[1] == 1  # unbroken, attached to the object
    assert outside >= 8  # spikes leave the object about half the time


def test_scene_is_a_function_of_its_seed():
    world = World(context=0.5, camouflage=0.5, soft_edges=0.5, holes=0.5, thin_parts=0.5)
    a, b = (render_scene(np.random.default_rng(7), SIZE, world=world) for _ in range(2))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instances, b.instances)
    assert (a.specs, a.background, a.main, a.traits) == (b.specs, b.background, b.main, b.traits)
    others = [render_scene(np.random.default_rng(s), SIZE, world=world) for s in (8, 9, 10)]
    assert all(not np.array_equal(a.image, o.image) for o in others)


def test_every_family_renders_its_own_colours():
    h, w = 48, 64
    mean_rgb = {f: np.mean([render_background(np.random.default_rng(i), h, w, f).reshape(-1, 3).mean(0)
                            for i in range(12)], axis=0) for f in CONTEXT_FAMILIES}
    r, g, b = mean_rgb["sky"]
    assert b > r + 20  # blue
    r, g, b = mean_rgb["grass"]
    assert g > r and g > b  # green
    r, g, b = mean_rgb["water"]
    assert b > r + 20
    assert np.ptp(mean_rgb["road"]) < 0.5 * np.ptp(mean_rgb["grass"])  # grey asphalt
    for f in FAMILIES:
        img = render_background(np.random.default_rng(0), h, w, f)
        assert img.shape == (h, w, 3) and np.isfinite(img).all() and img.std() > 3
    with pytest.raises(ValueError, match="unknown background family"):
        render_background(np.random.default_rng(0), h, w, "moon")


def test_catalogue_context_names_real_families():
    assert all(s.context and set(s.context) <= set(CONTEXT_FAMILIES) for s in CLASS_SPECS)
    assert {f for s in VOC_SPECS for f in s.context} == set(CONTEXT_FAMILIES)
    by_name = {s.name: s.context for s in CLASS_SPECS}
    assert by_name["aeroplane"] == ("sky",) and by_name["boat"] == ("water",) and by_name["train"] == ("rail",)
    assert {by_name[c] for c in ("cow", "sheep", "horse")} == {("grass",)}
    assert {by_name[c] for c in ("sofa", "chair", "diningtable", "tvmonitor")} == {("indoor",)}
    assert {by_name[c] for c in ("car", "bus", "motorbike", "bicycle")} == {("road",)}


def test_world_rejects_non_probabilities():
    with pytest.raises(ValueError, match="World.context is a probability"):
        World(context=1.5)
    with pytest.raises(ValueError, match="World.holes"):
        World(holes=-0.1)


def test_schema_defaults_are_the_world_defaults():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    props = schema["properties"]["dataset"]["properties"]["synthetic"]["properties"]
    assert {f.name: f.default for f in dataclasses.fields(World)} == {
        f.name: props[f.name]["default"] for f in dataclasses.fields(World)}


def test_summary_reports_the_draws(tmp_path):
    world = World(context=1.0, camouflage=0.0, soft_edges=1.0, holes=0.0, thin_parts=0.0)
    summary = synthesize(tmp_path / "s", image_size=SIZE, n_train=6, n_val=20, n_test=2, n_sbd_only=2, n_coco=3,
                         seed=0, world=world, progress=False)
    on_disk = json.loads((tmp_path / "s" / "synthetic_summary.json").read_text())
    assert on_disk["world"] == summary["world"]
    w = summary["world"]
    assert w["settings"] == dataclasses.asdict(world)
    assert w["voc"]["images"] == 30 and w["coco"]["images"] == 3
    assert w["voc"]["in_context"] == 1.0 and sum(w["voc"]["backgrounds"].values()) == 30
    assert set(w["voc"]["backgrounds"]) <= set(CONTEXT_FAMILIES)
    assert w["voc"]["traits"] == {"camouflage": 0.0, "soft_edges": 1.0, "holes": 0.0, "thin_parts": 0.0}


def test_calibration_statistics(tmp_path, capsys):
    from bana_core.world_calibration import main

    settings = {"image_size": [64, 48], "n_train": 4, "n_val": 20, "n_test": 1, "n_sbd_only": 0, "n_coco": 1,
                "seed": 0, "holes": 0.0}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"dataset": {"synthetic": settings}}))
    main([str(tmp_path / "c.yaml"), "--seeds", "0,1"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["seed"] for x in lines] == [0, 1]
    for x in lines:
        assert 30 < x["box_fill_val"] < 90
        assert x["labels_in_val"] == 21  # the first 20 val images cycle through the classes
        assert 1.0 <= x["objects_per_image_val"] <= 4.0 and 1.0 <= x["objects_per_image_voc"] <= 4.0
        assert x["world"]["images"] == 25 and x["world"]["traits"]["holes"] == 0.0
        assert 5 < x["foreground_share_val"] < 60
    assert lines[0]["box_fill_val"] != lines[1]["box_fill_val"]


def test_object_scale_sets_the_foreground_share(tmp_path):
    # Larger objects cover more of the image, with the scene's objects and classes as drawn.
    from bana_core.data.synthetic.dataset import synthesize
    from bana_core.world_calibration import foreground_share

    shares = []
    for scale in (1.0, 2.0):
        root = tmp_path / f"s{scale}"
        synthesize(root, image_size=(96, 72), n_train=2, n_val=40, n_test=1, n_sbd_only=0, n_coco=1, seed=0,
                   world=World(object_scale=scale), progress=False)
        voc = root / "VOCdevkit" / "VOC2012"
        ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
        shares.append(foreground_share(voc, ids))
    assert 0.05 < shares[0] < shares[1] < 0.6
    assert shares[1] > 1.3 * shares[0]
    with pytest.raises(ValueError, match="object_scale must be positive"):
        World(object_scale=0.0)


def test_foreground_share_counts_labelled_pixels_only(tmp_path):
    from PIL import Image

    from bana_core.world_calibration import foreground_share

    (tmp_path / "SegmentationClass").mkdir()
    label = np.zeros((10, 10), np.uint8)
    label[:2] = 3          # 20 object pixels
    label[2:4] = 255       # 20 void pixels: not labelled
    Image.fromarray(label, mode="L").save(tmp_path / "SegmentationClass" / "x.png")
    assert foreground_share(tmp_path, ["x"]) == pytest.approx(20 / 80)
