"""Stage 3: DeepLab-V1/V2 trained on the pseudo labels with NAL (or a rival loss, from
``bana_core.loss_registry``), and prediction with multi-scale + flip averaging into saved logits.

What follows prediction lives in ``bana_core.evaluation``: the DenseCRF as its own step fed by
those logits (``crf_split``), scoring (``evaluate_split``) and the VOC evaluation-server archive
of the test predictions (``archive_test_predictions``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from .classes import NUM_VOC_CLASSES
from .data.datasets import IterationBatchSampler, PseudoLabelDataset, collate_labels
from .data.transforms import normalize, train_transform
from .data.voc import VocLayout, load_image, read_split
from .experiments import Segmenter
from .io import atomic_dir, write_json
from .label_index import read_pseudo_label_index
from .losses import build_loss
from .models import build_segmenter, place_model
from .models.deeplab import DeepLab, resize_bilinear
from .progress import progress as track
from .train import TrainSpec, load_weights, poly_lr, save_weights, train

log = logging.getLogger(__name__)


def segmenter_from_config(arch: str, arch_cfg: dict, *, temperature: float,
                          pretrained: str | None = None, num_classes: int = NUM_VOC_CLASSES) -> DeepLab:
    """The DeepLab of one ``stage3.arch.<arch>`` config block (through the model registry);
    ``num_classes`` counts the background (a user's own classes + 1)."""
    kwargs = dict(num_classes=num_classes, temperature=temperature, width=arch_cfg.get("width", 1.0),
                  pretrained=pretrained)
    if arch == "v1":
        kwargs["batch_norm"] = arch_cfg.get("batch_norm", False)
        kwargs["fc6_dilation"] = arch_cfg.get("fc6_dilation", 12)
        kwargs["dropout"] = arch_cfg.get("dropout", 0.5)
    else:
        kwargs["resnet_depth"] = arch_cfg.get("depth", 101)
        kwargs["feat_dim"] = arch_cfg.get("feat_dim", 256)
        kwargs["aspp_rates"] = tuple(arch_cfg.get("aspp_rates", (6, 12, 18, 24)))
    return build_segmenter(arch, **kwargs)


def segmenter_from_weights(path: Path, device: torch.device) -> DeepLab:
    state, meta = load_weights(path, device)
    model = segmenter_from_config(meta["arch"], meta["arch_cfg"], temperature=meta["temperature"],
                                  num_classes=meta.get("num_classes", NUM_VOC_CLASSES))
    model.load_state_dict(state)
    return place_model(model, device).eval()


def loss_settings(stage3: dict, seg: Segmenter) -> dict:
    """The loss hyper-parameters of one segmenter: the config's, or its own lambda / damp (Fig. 3)."""
    return {
        "temperature": stage3["temperature"],
        "lam": stage3["lam"] if seg.lam is None else seg.lam,
        "damp": stage3["damp"] if seg.damp is None else seg.damp,
        "detach_sigma": stage3["detach_sigma"],
        "beta": stage3["bootstrap_beta"],
    }


def training_items(seg: Segmenter, voc_root: Path, labels: Path) -> list[tuple[str, Path, Path]]:
    """(image id, Y_crf PNG, Y_ret PNG) of each training image, sorted. ``labels`` is the merged
    pseudo-label index, or for a full-supervision segmenter the train_aug split, whose ground
    truth (``SegmentationClassAug``) then stands for both labels."""
    if seg.full_supervision:
        layout = VocLayout(Path(voc_root))
        return [(i, layout.label_path(i, aug=True), layout.label_path(i, aug=True)) for i in sorted(read_split(labels))]
    index = read_pseudo_label_index(labels)
    return [(image_id, paths["crf"], paths["ret"]) for image_id, paths in sorted(index.items())]


def train_segmenter(*, seg: Segmenter, stage3: dict, voc_root: Path, label_index: Path, pretrained: str | None,
                    out: Path, work_dir: Path, device: torch.device, seed: int, workers: int = 0,
                    progress: bool = True, num_classes: int = NUM_VOC_CLASSES) -> list[dict]:
    """Train one segmenter on ``label_index`` (see :func:`training_items`) and save its weights.
    ``num_classes`` (background included) is kept in the weights' meta for prediction."""
    arch_cfg = stage3["arch"][seg.arch]
    torch.manual_seed(seed)
    model = segmenter_from_config(seg.arch, arch_cfg, temperature=stage3["temperature"],
                                  pretrained=pretrained, num_classes=num_classes)
    model = place_model(model, device)
    groups = model.param_groups(arch_cfg["lr"], stage3["weight_decay"], classifier_lr_mult=stage3["classifier_lr_mult"])
    optimizer = torch.optim.SGD(groups, lr=arch_cfg["lr"], momentum=stage3["momentum"])
    settings = loss_settings(stage3, seg)
    loss_fn = build_loss(seg.loss, **settings)
    aug = stage3["augment"]
    items = training_items(seg, voc_root, label_index)
    dataset = PseudoLabelDataset(voc_root, items, train_transform(
        stage3["crop_size"], scale=tuple(aug["scale"]), jitter=aug["jitter"], hflip=aug["hflip"], mask_fill=255,
        boxes=False), seed=seed, num_classes=num_classes)

    def batches(start: int):
        sampler = IterationBatchSampler(len(dataset), arch_cfg["batch_size"], arch_cfg["iterations"], seed=seed,
                                        start=start)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_labels, num_workers=workers)

    def step(model, batch):
        images = normalize(batch["images"].to(device))
        y_crf, y_ret = batch["y_crf"].to(device), batch["y_ret"].to(device)
        cosine = model(images)["cosine"].float()
        # Scores are upsampled to label size (bilinear keeps cosines in [-1, 1]).
        cosine = resize_bilinear(cosine, y_crf.shape[-2:])
        total, parts = loss_fn(cosine, y_crf, y_ret)
        return total, parts

    spec = TrainSpec(iterations=arch_cfg["iterations"], lr=arch_cfg["lr"],
                     lr_factor=poly_lr(arch_cfg["iterations"], stage3["lr_power"], warmup=stage3.get("warmup", 0)),
                     seed=seed,
                     checkpoint=work_dir / "checkpoint.pt", checkpoint_every=stage3["checkpoint_every"],
                     log_csv=work_dir / "train_log.csv", progress=progress, desc=f"stage3 {seg.name}")
    history = train(model, optimizer, batches, step, spec, device)
    meta = {"arch": seg.arch, "arch_cfg": arch_cfg, "temperature": stage3["temperature"], "loss": seg.loss,
            "loss_settings": settings, "n_train_images": len(dataset), "num_classes": num_classes}
    save_weights(out, model, meta)
    (work_dir / "checkpoint.pt").unlink(missing_ok=True)
    return history


@torch.no_grad()
def predict_logits(model: DeepLab, image: np.ndarray, *, scales: Sequence[float], flip: bool,
                   device: torch.device) -> torch.Tensor:
    """Logits [K,H,W] averaged over scales and horizontal flips, at image size (one batch)."""
    h, w = image.shape[:2]
    x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None].to(device))
    total = torch.zeros(model.num_classes, h, w, device=device)
    n = 0
    for s in scales:
        xs = x if s == 1 else resize_bilinear(x, scale=s)
        batch = torch.cat([xs, xs.flip(-1)]) if flip else xs
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            logits = model(batch)["logits"].float()
        logits = resize_bilinear(logits, (h, w))
        if flip:
            logits = torch.stack([logits[0], logits[1].flip(-1)])
        total += logits.sum(0)
        n += logits.shape[0]
    return (total / n).cpu()


def predict_split(*, model_path: Path, voc_root: Path, image_ids: Sequence[str], out_dir: Path, scales, flip: bool,
                  device: torch.device, progress: bool = True) -> None:
    """Save averaged logits (float16 .npy per image) for a split; the CRF step reads them."""
    model = segmenter_from_weights(model_path, device)
    layout = VocLayout(Path(voc_root))
    with atomic_dir(out_dir) as tmp:
        for image_id in track(image_ids, desc=f"predict {out_dir.parent.parent.name}", enabled=progress):
            logits = predict_logits(model, load_image(layout.image_path(image_id)), scales=scales, flip=flip,
                                    device=device)
            np.save(tmp / f"{image_id}.npy", logits.numpy().astype(np.float16))
        write_json(tmp / "ids.json", list(image_ids))
