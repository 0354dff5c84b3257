"""The shared training loop: exact resume from checkpoints, lr schedules, logs."""
import csv

import pytest
import torch

from bana_core.data.datasets import IterationBatchSampler
from bana_core.train import TrainSpec, load_weights, poly_lr, save_weights, step_lr, train


class Interrupt(Exception):
    pass


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 3))


def batches_from(start, iterations=6, seed=1):
    sampler = IterationBatchSampler(16, 4, iterations, seed=seed, start=start)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(5))
    y = torch.arange(16) % 3
    for batch in sampler:
        idx = torch.tensor([i for _, _, i in batch])
        yield {"x": x[idx], "y": y[idx]}


def run(tmp_path, fail_at=None, iterations=6):
    model = make_model()
    opt = torch.optim.SGD([{"params": model.parameters(), "lr_mult": 1.0}], lr=0.1, momentum=0.9)

    def step(m, b):
        if fail_at is not None and b is not None and step.calls == fail_at:
            raise Interrupt
        step.calls += 1
        return torch.nn.functional.cross_entropy(m(b["x"]), b["y"]), {"ce": 0.0}

    step.calls = 0
    spec = TrainSpec(iterations=iterations, lr=0.1, lr_factor=poly_lr(iterations, 0.9), seed=3,
                     checkpoint=tmp_path / "ckpt.pt", checkpoint_every=2, log_csv=tmp_path / "log.csv",
                     progress=False)
    history = train(model, opt, lambda s: batches_from(s, iterations), step, spec, torch.device("cpu"))
    return model, history


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight, _ = run(tmp_path / "a")
    with pytest.raises(Interrupt):
        run(tmp_path / "b", fail_at=5)  # dies during iteration 5, after the checkpoint at 4
    assert (tmp_path / "b" / "ckpt.pt").exists()
    resumed, history = run(tmp_path / "b")
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    assert [row["iteration"] for row in history] == list(range(6))
    with open(tmp_path / "b" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == list(range(6))


def test_lr_schedules():
    assert step_lr([5000], 0.1)(4999) == 1 and step_lr([5000], 0.1)(5000) == pytest.approx(0.1)
    assert poly_lr(100, 0.9)(0) == 1 and poly_lr(100, 0.9)(50) == pytest.approx(0.5 ** 0.9)
    warm = poly_lr(100, 0.9, warmup=10)
    assert warm(0) == pytest.approx(0.1 * 1.0) and warm(4) == pytest.approx(0.5 * 0.96 ** 0.9)
    assert warm(9) == pytest.approx(0.91 ** 0.9) and warm(50) == pytest.approx(0.5 ** 0.9)  # poly after it


def test_weights_round_trip_and_errors(tmp_path):
    model = make_model()
    save_weights(tmp_path / "w.pt", model, {"arch": "toy"})
    state, meta = load_weights(tmp_path / "w.pt")
    assert meta == {"arch": "toy"} and set(state) == set(model.state_dict())
    from bana_core.errors import DataError

    with pytest.raises(DataError, match="not found"):
        load_weights(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="junk.pt"):
        load_weights(tmp_path / "junk.pt")


def test_sampler_is_a_function_of_iteration():
    a = [b for b in IterationBatchSampler(10, 3, 8, seed=2)]
    b = [b for b in IterationBatchSampler(10, 3, 8, seed=2, start=5)]
    assert a[5:] == b
    seen = [i for batch in a[:3] for _, _, i in batch] + [a[3][0][2]]
    assert sorted(seen) == list(range(10))  # first epoch is a permutation


def test_augmented_sample_depends_only_on_seed_iteration_and_slot(tmp_path):
    """What resume relies on: a keyed sample ignores the global RNG state and what came before."""
    from bana_core.data.datasets import BoxDataset
    from bana_core.data.synthetic import synthesize
    from bana_core.data.transforms import train_transform
    from bana_core.data.voc import VocLayout, read_split, write_box_masks

    root = tmp_path / "data"
    synthesize(root, image_size=(64, 48), n_train=4, n_val=2, n_test=1, n_sbd_only=0, n_coco=1, seed=0,
               progress=False)
    layout = VocLayout(root / "VOCdevkit" / "VOC2012")
    ids = read_split(layout.split_path("train"))
    write_box_masks(layout, ids, progress=False)
    data = BoxDataset(layout.root, ids, train_transform(32, scale=(0.5, 1.5), jitter=0.5, hflip=True, mask_fill=0),
                      seed=3)

    def sample(key):
        item = data[key]
        return item["image"], item["boxes"]

    torch.manual_seed(0)
    first = sample((5, 1, 2))
    torch.manual_seed(123)
    torch.rand(1000)
    sample((6, 0, 1))  # another sample in between
    again = sample((5, 1, 2))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = sample((7, 1, 2))  # same image, another iteration: another crop / jitter
    assert not torch.equal(first[0], other[0])


def test_resume_with_a_numpy_schedule(tmp_path):
    """A schedule returning numpy scalars (the pretraining's cosine) still gives a checkpoint that
    torch.load(weights_only=True) reads: resuming a killed pretraining once failed there."""
    import numpy as np

    def run_cosine(fail_at=None):
        model = make_model()
        opt = torch.optim.SGD([{"params": model.parameters(), "lr_mult": 1.0}], lr=0.1, momentum=0.9)
        calls = []

        def step(m, b):
            if fail_at is not None and len(calls) == fail_at:
                raise Interrupt
            calls.append(1)
            return torch.nn.functional.cross_entropy(m(b["x"]), b["y"]), {"acc": np.float32(0.5)}

        spec = TrainSpec(iterations=6, lr=0.1, lr_factor=lambda it: 0.5 * (1 + np.cos(np.pi * it / 6)), seed=3,
                         checkpoint=tmp_path / "ckpt.pt", checkpoint_every=2, progress=False)
        return train(model, opt, lambda s: batches_from(s), step, spec, torch.device("cpu")), model

    with pytest.raises(Interrupt):
        run_cosine(fail_at=5)
    torch.load(tmp_path / "ckpt.pt", weights_only=True)  # raised UnpicklingError before the fix
    history, resumed = run_cosine()
    assert [row["iteration"] for row in history] == list(range(6))
    assert all(type(row["lr"]) is float for row in history)


def test_full_supervision_trains_on_the_train_aug_ground_truth(tmp_path):
    # ce_gt reads the train_aug split and SegmentationClassAug (no pseudo labels); other
    # segmenters read the merged pseudo-label index.
    from bana_core.experiments import parse_segmenter
    from bana_core.io import write_json
    from bana_core.stage3 import training_items

    voc = tmp_path / "VOC2012"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("b\na\n")
    gt = parse_segmenter("v2-ce_gt")
    assert gt.full_supervision and not parse_segmenter("v2-ce_crf").full_supervision
    items = training_items(gt, voc, voc / "ImageSets" / "Segmentation" / "train_aug.txt")
    assert items == [(i, voc / "SegmentationClassAug" / f"{i}.png", voc / "SegmentationClassAug" / f"{i}.png")
                     for i in ("a", "b")]
    write_json(tmp_path / "labels" / "index.json", {"a": {"crf": "s/crf/a.png", "ret": "s/ret/a.png"}})
    pseudo = training_items(parse_segmenter("v2-nal"), voc, tmp_path / "labels" / "index.json")
    assert pseudo == [("a", tmp_path / "labels" / "s/crf/a.png", tmp_path / "labels" / "s/ret/a.png")]
