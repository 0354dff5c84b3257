"""Torch datasets for the training stages, with iteration-indexed sampling.

Every sample is drawn for a given (iteration, slot): the image index comes from a per-epoch
permutation seeded by (seed, epoch) and the augmentation RNG is seeded by (seed, iteration,
slot). A run resumed from a checkpoint at iteration k therefore sees exactly the batches an
uninterrupted run would, whatever the number of DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors

from ..classes import NUM_VOC_CLASSES, VOC_CLASSES
from .voc import VocLayout, load_image, load_label, read_voc_xml


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from integers (numpy SeedSequence)."""
    # a Python int before the shift: numpy 1.x has no uint64 >> int
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0]) >> 1


class IterationBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Yields, for iterations start..iterations-1, a batch of (iteration, slot, dataset index)."""

    def __init__(self, n_items: int, batch_size: int, iterations: int, *, seed: int, start: int = 0):
        if n_items <= 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.iterations, self.seed, self.start = n_items, batch_size, iterations, seed, start

    def index(self, iteration: int, slot: int) -> int:
        flat = iteration * self.batch_size + slot
        epoch, pos = divmod(flat, self.n)
        perm = np.random.default_rng(mix_seed(self.seed, epoch)).permutation(self.n)
        return int(perm[pos])

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for it in range(self.start, self.iterations):
            yield [(it, s, self.index(it, s)) for s in range(self.batch_size)]

    def __len__(self) -> int:
        return max(0, self.iterations - self.start)


class _SeededDataset(Dataset):
    seed = 0

    def __getitem__(self, key):
        if isinstance(key, tuple):
            it, slot, index = key
            # The CPU generator only (what the transforms draw from): torch.manual_seed would also
            # queue a CUDA reseed with a formatted stack trace, ~0.2 ms per sample. The model's RNG
            # (CUDA dropout included) is reseeded per iteration by bana_core.train.
            torch.default_generator.manual_seed(mix_seed(self.seed, it, slot))
        else:
            index = key
        return self.load(index)

    def load(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError


class BoxDataset(_SeededDataset):
    """Stage 1: image, its background mask from boxes, and its boxes with class labels."""

    def __init__(self, voc_root: str | Path, image_ids: Sequence[str], transform: Callable | None, *, seed: int = 0,
                 class_names: Sequence[str] = VOC_CLASSES):
        self.layout = VocLayout(Path(voc_root))
        self.ids = list(image_ids)
        self.class_names = tuple(class_names)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> dict:
        image_id = self.ids[index]
        ann = read_voc_xml(self.layout.annotation_path(image_id), class_names=self.class_names)
        image = load_image(self.layout.image_path(image_id), expect_size=(ann.width, ann.height))
        bg = load_label(self.layout.bg_mask_path(image_id), expect_size=(ann.width, ann.height))
        boxes = ann.boxes()
        h, w = image.shape[:2]
        sample = {
            "image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
            "bg_mask": tv_tensors.Mask(torch.from_numpy(bg)),
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes[:, :4]).float(), format="XYXY",
                                              canvas_size=(h, w)),
            "labels": torch.from_numpy(boxes[:, 4]).long(),
        }
        if self.transform is not None:
            sample = self.transform(sample)
        sample["id"] = image_id
        return sample


def collate_boxes(samples: list[dict]) -> dict:
    """Stack images and masks; boxes become torchvision RoI form [K,5] (batch index first)."""
    rois = [torch.cat([torch.full((len(s["boxes"]), 1), float(i)), s["boxes"].as_subclass(torch.Tensor)], 1)
            for i, s in enumerate(samples)]
    return {
        "images": torch.stack([s["image"].as_subclass(torch.Tensor) for s in samples]),
        "bg_mask": torch.stack([s["bg_mask"].as_subclass(torch.Tensor) for s in samples]).float(),
        "boxes": torch.cat(rois) if rois else torch.zeros(0, 5),
        "labels": torch.cat([s["labels"] for s in samples]),
        "ids": [s["id"] for s in samples],
    }


class PseudoLabelDataset(_SeededDataset):
    """Stage 3: image with its two pseudo labels (Y_crf, Y_ret), void = 255."""

    def __init__(self, voc_root: str | Path, items: Sequence[tuple[str, str, str]], transform: Callable | None,
                 *, seed: int = 0, num_classes: int = NUM_VOC_CLASSES):
        """``items``: (image id, path of Y_crf PNG, path of Y_ret PNG); labels below ``num_classes``."""
        self.layout = VocLayout(Path(voc_root))
        self.items = list(items)
        self.transform = transform
        self.seed = seed
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict:
        image_id, crf_path, ret_path = self.items[index]
        image = load_image(self.layout.image_path(image_id))
        size = (image.shape[1], image.shape[0])
        sample = {
            "image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
            "y_crf": tv_tensors.Mask(torch.from_numpy(load_label(crf_path, expect_size=size,
                                                                 num_classes=self.num_classes))),
            "y_ret": tv_tensors.Mask(torch.from_numpy(load_label(ret_path, expect_size=size,
                                                                 num_classes=self.num_classes))),
        }
        if self.transform is not None:
            sample = self.transform(sample)
        sample["id"] = image_id
        return sample


def collate_labels(samples: list[dict]) -> dict:
    return {
        "images": torch.stack([s["image"].as_subclass(torch.Tensor) for s in samples]),
        "y_crf": torch.stack([s["y_crf"].as_subclass(torch.Tensor) for s in samples]).long(),
        "y_ret": torch.stack([s["y_ret"].as_subclass(torch.Tensor) for s in samples]).long(),
        "ids": [s["id"] for s in samples],
    }
