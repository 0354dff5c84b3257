"""The dataset: one job per image, the split plan, the list files and the summary."""

from __future__ import annotations

import json
import math
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from ...classes import COCO_CATEGORIES, COCO_ID_TO_NAME
from ...io import atomic_dir, save_label_png, write_json
from .catalogue import CLASS_SPECS, UNSEEN_SPECS, VOC_SPECS
from .scenes import TRAITS, World, instance_boxes, jitter_image_size, render_scene
from .textures import FAMILIES
from ..voc import voc_xml
from .writers import coco_annotation, save_jpeg, write_sbd
# ---------------------------------------------------------------------------------------------
# Per-image jobs
# ---------------------------------------------------------------------------------------------

_POSES = ("Unspecified", "Frontal", "Left", "Right", "Rear")


@dataclass(frozen=True)
class _Task:
    index: int                # global image index: the RNG stream
    image_id: str
    split: str                # train | val | test | sbd_only | coco
    in_sbd: bool = False
    forced: int | None = None
    crowd: bool = False
    gray: bool = False
    coco_id: int = 0


def _run_task(task: _Task, *, out: Path, size: tuple[int, int], seed: int, world: World) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, task.index]))
    coco = task.split == "coco"
    wh = jitter_image_size(rng, size)
    scene = render_scene(rng, wh, coco=coco, forced=task.forced, crowd=task.crowd, world=world)
    # What the world drew, for the summary's rates (crowd members are not single objects).
    world_record = {"background": scene.background,
                    "in_context": scene.background in CLASS_SPECS[scene.specs[scene.main]].context,
                    "traits": [list(t) for t, g in zip(scene.traits, scene.groups, strict=True) if g < 0]}
    n = len(scene.specs)
    boxes = instance_boxes(scene.instances, n)
    if coco:
        save_jpeg(out / "coco" / "train2017" / f"{task.coco_id:012d}.jpg", scene.image, task.gray)
        anns = []
        for k in range(n):
            if scene.groups[k] < 0:
                anns.append(coco_annotation(scene.instances == k + 1, CLASS_SPECS[scene.specs[k]].coco_id, False))
        for g in sorted(set(scene.groups) - {-1}):
            members = [k + 1 for k in range(n) if scene.groups[k] == g]
            anns.append(coco_annotation(np.isin(scene.instances, members),
                                         CLASS_SPECS[scene.specs[members[0] - 1]].coco_id, True))
        image = {"id": task.coco_id, "file_name": f"{task.coco_id:012d}.jpg", "width": wh[0], "height": wh[1],
                 "license": 1}
        return {"split": "coco", "image": image, "annotations": anns, "gray": task.gray,
                "classes": [COCO_ID_TO_NAME[CLASS_SPECS[s].coco_id] for s, g in zip(scene.specs, scene.groups, strict=True)
                            if g < 0], "world": world_record}

    voc = out / "VOCdevkit" / "VOC2012"
    save_jpeg(voc / "JPEGImages" / f"{task.image_id}.jpg", scene.image)
    h, w = scene.instances.shape
    min_area = max(12, int(0.004 * h * w))
    areas = np.bincount(scene.instances.ravel(), minlength=n + 1)[1:]
    objects = []
    for k in range(n):
        x1, y1, x2, y2 = (int(b) for b in boxes[k])
        objects.append({
            "name": CLASS_SPECS[scene.specs[k]].name, "pose": _POSES[int(rng.integers(len(_POSES)))],
            "truncated": int(x1 == 0 or y1 == 0 or x2 == w or y2 == h),
            "difficult": int(areas[k] < 2 * min_area), "box": (x1, y1, x2, y2),
        })
    segmented = task.split != "sbd_only"
    (voc / "Annotations" / f"{task.image_id}.xml").write_text(voc_xml(task.image_id, wh, objects, segmented=segmented))
    lut = np.array([0] + [CLASS_SPECS[s].voc_index for s in scene.specs], dtype=np.uint8)
    cls = lut[scene.instances]
    labels: list[int] = []
    if segmented:
        # VOC's thin void border, on the background side only so object pixels keep their label.
        void = ndimage.binary_dilation(scene.instances > 0, structure=np.ones((3, 3), bool)) & (scene.instances == 0)
        save_label_png(voc / "SegmentationClass" / f"{task.image_id}.png", np.where(void, 255, cls))
        save_label_png(voc / "SegmentationObject" / f"{task.image_id}.png",
                       np.where(void, 255, scene.instances).astype(np.uint8))
        labels = sorted(int(x) for x in np.unique(np.where(void, 255, cls)) if x != 255)
    if task.in_sbd:
        ds = out / "benchmark_RELEASE" / "dataset"
        (ds / "img" / f"{task.image_id}.jpg").write_bytes((voc / "JPEGImages" / f"{task.image_id}.jpg").read_bytes())
        write_sbd(ds, task.image_id, cls, scene.instances, [int(x) for x in lut[1:]])
    return {"split": task.split, "id": task.image_id, "classes": [o["name"] for o in objects], "labels": labels,
            "world": world_record}


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


def _voc_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct VOC-style ids (2007_000032 ...), increasing, spread over 2007-2012."""
    ids, per_year = [], math.ceil(n / 6)
    for year in range(2007, 2013):
        nums = np.cumsum(rng.integers(1, 40, per_year)) + 20
        ids += [f"{year}_{int(x):06d}" for x in nums]
    return ids[:n]


def _plan(n_train: int, n_val: int, n_test: int, n_sbd_only: int, n_coco: int, seed: int) -> list[_Task]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    n_voc = n_train + n_val + n_test + n_sbd_only
    ids = _voc_ids(rng, n_voc)
    roles = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test + ["sbd_only"] * n_sbd_only)
    roles = roles[rng.permutation(n_voc)]  # splits interleave in id order, as in VOC
    tasks: list[_Task] = []
    seen: Counter = Counter()
    # SBD covers about half of VOC train and of VOC val (at least one of each) besides its own images.
    sbd_of = {r: set(rng.permutation(n)[:max(1, n // 2) if n else 0].tolist())
              for r, n in (("train", n_train), ("val", n_val))}
    for i, (image_id, role) in enumerate(zip(ids, roles, strict=True)):
        k = seen[role]
        seen[role] += 1
        forced = k % 20 if role in ("train", "val", "test") and k < 20 else None  # every class early on
        in_sbd = role == "sbd_only" or k in sbd_of.get(role, ())
        tasks.append(_Task(i, image_id, str(role), in_sbd=in_sbd, forced=forced))
    coco_ids = np.sort(rng.choice(np.arange(1, 600_000), size=n_coco, replace=False))
    for k, cid in enumerate(coco_ids):
        forced = len(VOC_SPECS) + k if k < len(UNSEEN_SPECS) else None  # every unseen class
        tasks.append(_Task(n_voc + k, f"{int(cid):012d}", "coco", forced=forced, crowd=k % 12 == 3,
                           gray=k % 15 == 7, coco_id=int(cid)))
    return tasks


def _sbd_split(rng: np.random.Generator, tasks: list[_Task]) -> tuple[list[str], list[str]]:
    """SBD train / val: both take SBD-only images, VOC train images and VOC val images."""
    train, val = [], []
    for role, p_train in (("sbd_only", 0.75), ("train", 0.6), ("val", 0.5)):
        ids = [t.image_id for t in tasks if t.in_sbd and t.split == role]
        to_train = rng.random(len(ids)) < p_train
        if role == "val" and len(ids) >= 2:  # keep the train_aug set operation non-trivial
            to_train[0], to_train[1] = True, False
        train += [i for i, f in zip(ids, to_train, strict=True) if f]
        val += [i for i, f in zip(ids, to_train, strict=True) if not f]
    return sorted(train), sorted(val)


def _write_list(path: Path, ids) -> None:
    path.write_text("".join(f"{i}\n" for i in sorted(ids)))


def _write_split_lists(voc: Path, ds: Path, by_split: dict[str, list[dict]], tasks: list[_Task],
                       seed: int) -> tuple[dict[str, list[str]], tuple[list[str], list[str]]]:
    """VOC's segmentation lists and SBD's train / val lists; returns the ids of each."""
    split_ids = {s: sorted(r["id"] for r in by_split.get(s, [])) for s in ("train", "val", "test", "sbd_only")}
    sets = voc / "ImageSets" / "Segmentation"
    _write_list(sets / "train.txt", split_ids["train"])
    _write_list(sets / "val.txt", split_ids["val"])
    _write_list(sets / "trainval.txt", split_ids["train"] + split_ids["val"])
    _write_list(sets / "test.txt", split_ids["test"])
    sbd_train, sbd_val = _sbd_split(np.random.default_rng(np.random.SeedSequence([seed, 0x5BD])), tasks)
    _write_list(ds / "train.txt", sbd_train)
    _write_list(ds / "val.txt", sbd_val)
    return split_ids, (sbd_train, sbd_val)


def _write_coco_instances(coco: Path, coco_records: list[dict]) -> list[dict]:
    """COCO's instances_train2017.json; returns its annotations."""
    annotations = []
    for r in coco_records:
        for a in r["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": r["image"]["id"], **a})
    instances = {
        "info": {"description": "bana-pipeline synthetic COCO-style train2017", "version": "1.0",
                 "year": 2017, "contributor": "bana_core.data.synthetic", "date_created": "2017/09/01"},
        "licenses": [{"id": 1, "name": "CC0 (synthetic)", "url": ""}],
        "images": [r["image"] for r in coco_records],
        "annotations": annotations,
        "categories": [{"supercategory": sc, "id": i, "name": n} for i, n, sc in COCO_CATEGORIES],
    }
    (coco / "annotations" / "instances_train2017.json").write_text(json.dumps(instances, separators=(",", ":")))
    return annotations


def _summary(seed: int, size: tuple[int, int], world: World, records: list[dict], by_split: dict[str, list[dict]],
             split_ids: dict[str, list[str]], sbd: tuple[list[str], list[str]], annotations: list[dict]) -> dict:
    """What ``synthesize`` wrote: counts per split, objects and classes per split, the world's rates."""
    sbd_train, sbd_val = sbd
    coco_records = by_split.get("coco", [])
    train_aug = (set(sbd_train) | set(sbd_val) | set(split_ids["train"])) - set(split_ids["val"])
    return {
        "seed": seed, "image_size": list(size),
        "counts": {**{s: len(v) for s, v in split_ids.items()}, "sbd_train": len(sbd_train),
                   "sbd_val": len(sbd_val), "train_aug": len(train_aug), "coco": len(coco_records),
                   "coco_annotations": len(annotations),
                   "coco_crowd": sum(a["iscrowd"] for a in annotations),
                   "coco_grayscale": sum(r["gray"] for r in coco_records)},
        "objects_per_image": {s: round(float(np.mean([len(r["classes"]) for r in rs])), 3)
                              for s, rs in sorted(by_split.items())},
        "class_histogram": {s: dict(sorted(Counter(c for r in rs for c in r["classes"]).items()))
                            for s, rs in sorted(by_split.items())},
        "labels_in_val": sorted({lab for r in by_split.get("val", []) for lab in r["labels"]}),
        "unseen_classes": [s.name for s in UNSEEN_SPECS],
        "world": {"settings": asdict(world),
                  "voc": _world_rates([r for r in records if r["split"] != "coco"]),
                  "coco": _world_rates(coco_records)},
    }


def synthesize(root: Path, *, image_size: tuple[int, int] = (160, 120), n_train: int = 300, n_val: int = 100,
               n_test: int = 100, n_sbd_only: int = 200, n_coco: int = 200, seed: int = 0, workers: int = 1,
               world: World | None = None, progress: bool = True) -> dict:
    """Write the synthetic VOC 2012 + SBD + COCO miniature under ``root`` (replacing it whole).

    ``image_size`` is (W, H) before per-image jitter; ``world`` sets the rates of context,
    camouflage, soft edges, holes and thin parts (None: ``World()``, the demo's). Returns the summary also written to
    ``<root>/synthetic_summary.json``. The output is byte-identical for a given seed, whatever
    ``workers``.
    """
    root = Path(root)
    size = (int(image_size[0]), int(image_size[1]))
    if min(size) < 32:
        raise ValueError(f"image_size must be at least 32 x 32, got {size}")
    counts = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "n_sbd_only": n_sbd_only, "n_coco": n_coco}
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"image counts must be >= 0, got {counts}")
    world = World() if world is None else world
    tasks = _plan(n_train, n_val, n_test, n_sbd_only, n_coco, seed)
    with atomic_dir(root) as tmp:
        voc, ds, coco = tmp / "VOCdevkit" / "VOC2012", tmp / "benchmark_RELEASE" / "dataset", tmp / "coco"
        for d in (voc / "JPEGImages", voc / "Annotations", voc / "SegmentationClass", voc / "SegmentationObject",
                  voc / "ImageSets" / "Segmentation", ds / "img", ds / "cls", ds / "inst",
                  coco / "train2017", coco / "annotations"):
            d.mkdir(parents=True, exist_ok=True)
        job = partial(_run_task, out=tmp, size=size, seed=seed, world=world)
        records = list(imap_tasks(job, tasks, workers, progress, "synthesize"))

        by_split: dict[str, list[dict]] = {}
        for r in records:
            by_split.setdefault(r["split"], []).append(r)
        split_ids, sbd = _write_split_lists(voc, ds, by_split, tasks, seed)
        annotations = _write_coco_instances(coco, by_split.get("coco", []))
        summary = _summary(seed, size, world, records, by_split, split_ids, sbd, annotations)
        write_json(tmp / "synthetic_summary.json", summary)
    return summary


def _world_rates(records: list[dict]) -> dict:
    """What the world drew: background families, the share of scenes in their main object's
    context, and the share of (non-crowd) objects with each trait."""
    traits = [t for r in records for t in r["world"]["traits"]]
    return {
        "images": len(records),
        "in_context": round(float(np.mean([r["world"]["in_context"] for r in records])), 3) if records else None,
        "backgrounds": {f: n for f in FAMILIES if (n := sum(r["world"]["background"] == f for r in records))},
        "objects": len(traits),
        "traits": {t: round(float(np.mean([t in x for x in traits])), 3) if traits else None for t in TRAITS},
    }


def imap_tasks(job: Callable, tasks: list, workers: int, progress: bool, desc: str) -> Iterator:
    """``job(t)`` for each task, in order, in ``workers`` processes when more than one."""
    if workers > 1:
        methods = multiprocessing.get_all_start_methods()
        # fork: the workflow runs this from a script without a __main__ guard, which spawn re-runs.
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            yield from _progress(pool.map(job, tasks, chunksize=8), len(tasks), progress, desc)
    else:
        yield from _progress(map(job, tasks), len(tasks), progress, desc)


def _progress(it, total: int, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="img")


