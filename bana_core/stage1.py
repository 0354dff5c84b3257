"""Stage 1: train the box classifier with BAP (or the GAP baseline), and score it on val boxes.

Also the demo's backbone pretraining, which plays ImageNet's role for the tiny models.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .bap import background_attention, pool_foreground
from .classes import VOC_CLASSES
from .data.datasets import BoxDataset, IterationBatchSampler, collate_boxes, mix_seed
from .data.transforms import normalize, train_transform
from .data.voc import VocLayout, bg_mask_from_boxes, load_image, read_voc_xml
from .models import build_backbone, make_param_groups, place_model
from .models.classifier import BoxClassifier
from .train import TrainSpec, load_weights, save_weights, step_lr, train

log = logging.getLogger(__name__)


def build_classifier(backbone_cfg: dict, *, pool: str, grid_size: int, roi_size=(2, 2),
                     min_bg_fraction: float = 0.125, pretrained: str | None = None,
                     num_classes: int = len(VOC_CLASSES)) -> BoxClassifier:
    """``num_classes`` counts background: 21 for VOC, K + 1 for a user's own K classes."""
    # Dropout2d after fc6 and fc7 while training, as the released classifier; weights saved
    # before the key existed were trained without it.
    backbone = build_backbone("vgg16", width=backbone_cfg.get("width", 1.0),
                              batch_norm=backbone_cfg.get("batch_norm", False), fc6_dilation=1,
                              dropout=backbone_cfg.get("dropout", 0.0), pretrained=pretrained)
    return BoxClassifier(backbone, backbone.out_channels, num_classes, pool=pool, grid_size=grid_size,
                         roi_size=tuple(roi_size), min_bg_fraction=min_bg_fraction)


def classifier_from_weights(path: Path, device: torch.device) -> BoxClassifier:
    state, meta = load_weights(path, device)
    # Weights saved before class_names existed were VOC's.
    class_names = tuple(meta.get("class_names", VOC_CLASSES))
    model = build_classifier(meta["backbone"], pool=meta["pool"], grid_size=meta["grid_size"],
                             roi_size=meta["roi_size"], min_bg_fraction=meta["min_bg_fraction"],
                             num_classes=len(class_names))
    model.load_state_dict(state)
    model.class_names = class_names
    return place_model(model, device).eval()


def train_classifier(*, voc_root: Path, image_ids: list[str], pool: str, grid_size: int, cfg: dict,
                     pretrained: str | None, out: Path, work_dir: Path, device: torch.device, seed: int,
                     workers: int = 0, progress: bool = True,
                     class_names: tuple[str, ...] = VOC_CLASSES) -> list[dict]:
    """Train one classifier (pool x grid x train set) and write its weights to ``out``.

    ``class_names``: label -> name, background first, as the XMLs name the boxes (VOC's 21 for
    the paper; a user's own classes for ``dataset.source: local``); kept in the weights' meta."""
    torch.manual_seed(seed)
    model = build_classifier(cfg["backbone"], pool=pool, grid_size=grid_size, roi_size=cfg["roi_size"],
                             min_bg_fraction=cfg["min_bg_fraction"], pretrained=pretrained,
                             num_classes=len(class_names))
    model = place_model(model, device)
    groups = make_param_groups([model.backbone], [model.classifier], lr=cfg["lr"],
                               weight_decay=cfg["weight_decay"])
    optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    aug = cfg["augment"]
    dataset = BoxDataset(voc_root, image_ids, train_transform(
        cfg["crop_size"], scale=tuple(aug["scale"]), jitter=aug["jitter"], hflip=aug["hflip"], mask_fill=0),
        seed=seed, class_names=class_names)

    def batches(start: int):
        sampler = IterationBatchSampler(len(dataset), cfg["batch_size"], cfg["iterations"], seed=seed, start=start)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_boxes, num_workers=workers)

    def step(model, batch):
        images = normalize(batch["images"].to(device))
        logits, targets = model(images, batch["bg_mask"].to(device), batch["boxes"].to(device),
                                batch["labels"].to(device))
        loss = F.cross_entropy(logits.float(), targets)
        with torch.no_grad():
            acc = (logits.argmax(1) == targets).float().mean()
        return loss, {"acc": acc}

    spec = TrainSpec(iterations=cfg["iterations"], lr=cfg["lr"], lr_factor=step_lr(cfg["lr_steps"], cfg["lr_gamma"]),
                     seed=seed, checkpoint=work_dir / "checkpoint.pt", checkpoint_every=cfg["checkpoint_every"],
                     log_csv=work_dir / "train_log.csv", progress=progress, desc=f"stage1 {pool}-g{grid_size}")
    history = train(model, optimizer, batches, step, spec, device)
    meta = {"backbone": cfg["backbone"], "pool": pool, "grid_size": grid_size, "roi_size": list(cfg["roi_size"]),
            "min_bg_fraction": cfg["min_bg_fraction"], "n_train_images": len(image_ids)}
    if tuple(class_names) != VOC_CLASSES:
        meta["class_names"] = list(class_names)
    save_weights(out, model, meta)
    (work_dir / "checkpoint.pt").unlink(missing_ok=True)
    return history


@torch.no_grad()
def box_accuracy(model: BoxClassifier, voc_root: Path, image_ids: list[str], device: torch.device,
                 max_images: int | None = None) -> dict:
    """Classify every box of whole (unaugmented) images from its BAP-pooled features.

    The 21-way scores are restricted to the 20 object classes (a box is never background).
    """
    layout = VocLayout(Path(voc_root))
    model.eval()
    correct = total = 0
    weight = model.classifier_weight[1:]  # object classes only
    for image_id in image_ids[:max_images]:
        ann = read_voc_xml(layout.annotation_path(image_id))
        boxes = ann.boxes()
        if len(boxes) == 0:
            continue
        image = load_image(layout.image_path(image_id), expect_size=(ann.width, ann.height))
        x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None].to(device))
        feats = model.features(x)
        h, w = feats.shape[-2:]
        sy, sx = h / image.shape[0], w / image.shape[1]
        bg = bg_mask_from_boxes(image.shape[0], image.shape[1], boxes).astype(np.float32)
        bg_small = F.interpolate(torch.from_numpy(bg)[None, None].to(device), size=(h, w), mode="nearest")
        if model.pool == "gap":
            attention = torch.zeros_like(bg_small)
        else:
            attention = background_attention(feats, bg_small, model.grid_size)
        rois = torch.tensor([[0, b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes],
                            dtype=feats.dtype, device=device)
        pooled = pool_foreground(feats, attention, rois, tuple(model.roi_size)).mean(dim=(2, 3))
        pred = (pooled @ weight.t()).argmax(1).cpu().numpy() + 1
        correct += int((pred == boxes[:, 4]).sum())
        total += len(boxes)
    return {"box_accuracy": correct / max(total, 1), "n_boxes": total}


# --- demo pretraining ------------------------------------------------------------------------

def pretrain_backbone(*, net: str, cfg: dict, backbone_cfg: dict, images_path: Path, out: Path, work_dir: Path,
                      device: torch.device, seed: int, progress: bool = True) -> dict:
    """Supervised single-object classification on synthetic images: ImageNet's role in the demo.

    ``images_path``: the pretraining set (:func:`bana_core.data.synthetic.write_pretrain_set`).
    Saves the backbone's state dict (loadable through `pretrained: <path>`).
    """
    from .data.synthetic import read_pretrain_set

    torch.manual_seed(seed)
    images, labels = read_pretrain_set(images_path)  # rendered once for both nets (rule pretrain_set)
    n_val = max(len(images) // 10, 1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    val_idx, train_idx = order[:n_val], order[n_val:]
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(labels).long() - 1  # 20 object classes
    if net == "vgg":
        backbone = build_backbone("vgg16", width=backbone_cfg.get("width", 1.0),
                          batch_norm=backbone_cfg.get("batch_norm", False), fc6_dilation=1, pretrained=None)
    else:
        backbone = build_backbone("resnet", depth=backbone_cfg.get("depth", 18), width=backbone_cfg.get("width", 1.0),
                          pretrained=None)
    head = torch.nn.Linear(backbone.out_channels, 20)
    model = place_model(torch.nn.Sequential(backbone, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head), device)
    groups = make_param_groups([backbone], [head], lr=cfg["lr"], weight_decay=5e-4)
    optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9)

    def batches(start: int):
        for it in range(start, cfg["iterations"]):
            g = torch.Generator().manual_seed(mix_seed(seed, it))
            idx = torch.from_numpy(train_idx)[torch.randint(len(train_idx), (cfg["batch_size"],), generator=g)]
            x = x_all[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
            yield {"x": x, "y": y_all[idx]}

    def step(model, batch):
        logits = model(normalize(batch["x"].to(device)))
        y = batch["y"].to(device)
        return F.cross_entropy(logits.float(), y), {"acc": (logits.argmax(1) == y).float().mean()}

    spec = TrainSpec(iterations=cfg["iterations"], lr=cfg["lr"],
                     lr_factor=lambda it: 0.5 * (1 + np.cos(np.pi * it / cfg["iterations"])), seed=seed,
                     checkpoint=work_dir / "checkpoint.pt", checkpoint_every=max(cfg["iterations"] // 4, 1),
                     log_csv=work_dir / "train_log.csv", progress=progress, desc=f"pretrain {net}")
    train(model, optimizer, batches, step, spec, device)
    model.eval()
    with torch.no_grad():
        logits = model(normalize(x_all[val_idx].to(device)))
        acc = float((logits.argmax(1).cpu() == y_all[val_idx]).float().mean())
    log.info("pretrain %s: held-out accuracy %.3f on %d images", net, acc, n_val)
    save_weights(out, backbone, {"net": net, "backbone": backbone_cfg, "val_accuracy": acc})
    (work_dir / "checkpoint.pt").unlink(missing_ok=True)
    return {"val_accuracy": acc, "n_val": n_val}
