"""Joint augmentation: boxes follow the image, masks pad with their own fill."""
import torch
from torchvision import tv_tensors

from bana_core.data.transforms import MEAN_RGB_U8, normalize, train_transform


def sample(h=40, w=60):
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    image[:, 10:20, 30:50] = 200
    mask = torch.ones(h, w, dtype=torch.uint8)
    mask[10:20, 30:50] = 0
    return {"image": tv_tensors.Image(image), "bg_mask": tv_tensors.Mask(mask),
            "boxes": tv_tensors.BoundingBoxes(torch.tensor([[30.0, 10, 50, 20]]), format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([7])}


def test_boxes_follow_scale_and_flip():
    torch.manual_seed(0)
    t = train_transform(64, scale=(2.0, 2.0), jitter=0, hflip=True)
    for _ in range(5):
        out = t(sample())
        image, boxes = out["image"], out["boxes"]
        for (x1, y1, x2, y2), lab in zip(boxes.round().long().tolist(), out["labels"].tolist(), strict=True):
            assert lab == 7
            inside = image[0, y1:y2, x1:x2]
            assert inside.numel() > 0 and (inside > 100).float().mean() > 0.9
            assert (out["bg_mask"][y1:y2, x1:x2] == 0).float().mean() > 0.9


def test_padding_uses_mean_colour_and_mask_fill():
    torch.manual_seed(0)
    t = train_transform(100, scale=(1.0, 1.0), jitter=0, hflip=False, mask_fill=0)
    out = t(sample(40, 60))
    assert out["image"].shape == (3, 100, 100)
    padded = out["image"].sum(0) == sum(MEAN_RGB_U8)
    assert padded.float().mean() > 0.5
    assert (out["bg_mask"][padded] == 0).all()


def test_boxes_cut_away_are_dropped():
    torch.manual_seed(3)
    t = train_transform(16, scale=(1.0, 1.0), jitter=0, hflip=False)
    dropped = 0
    for _ in range(20):
        out = t(sample())
        assert len(out["boxes"]) == len(out["labels"])
        dropped += len(out["boxes"]) == 0
    assert dropped > 0


def test_label_masks_pad_with_void():
    torch.manual_seed(0)
    t = train_transform(80, scale=(1.0, 1.0), jitter=0, hflip=False, mask_fill=255, boxes=False)
    s = {"image": tv_tensors.Image(torch.zeros(3, 20, 20, dtype=torch.uint8)),
         "y_crf": tv_tensors.Mask(torch.ones(20, 20, dtype=torch.uint8))}
    out = t(s)
    assert (out["y_crf"] == 255).sum() == 80 * 80 - 400


def test_normalize_matches_imagenet_stats():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize(x)
    assert torch.allclose(y[0, 0], torch.full((2, 2), (1 - 0.485) / 0.229))
