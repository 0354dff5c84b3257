"""The ground truth at the segmenters' output stride (bana_core.stride_reference): the
health checks' reference for what a stride-8 segmenter can score before CRF."""
import math

import numpy as np
import pytest
import torch

from bana_core.models.deeplab import OUTPUT_STRIDE
from bana_core.stage3 import segmenter_from_config
from bana_core.stride_reference import stride_limited_label, stride_reference_miou


def test_stride_one_gives_the_label_back():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 21, size=(37, 53)).astype(np.uint8)
    label[5, 7] = 255
    out = stride_limited_label(label, stride=1)
    keep = label != 255
    assert np.array_equal(out[keep], label[keep])


def test_large_regions_survive_and_thin_parts_vanish_at_stride_8():
    label = np.zeros((121, 161), np.uint8)
    label[24:96, 32:128] = 3       # a 72 x 96 block: 9 x 12 cells
    label[10:110, 140] = 7         # a 1-pixel-wide strut: 1/8 of each cell it crosses
    out = stride_limited_label(label)
    assert (out[32:88, 40:120] == 3).all()          # the block's interior
    assert (out[:16] == 0).all() and (out[:, :24] == 0).all()
    assert not (out == 7).any()                      # no score of a cell ever favours the strut
    # its edges move by less than half a cell
    rows = np.flatnonzero((out == 3).any(1))
    assert abs(rows[0] - 24) <= 4 and abs(rows[-1] - 95) <= 4


@pytest.mark.parametrize("size", [(97, 97), (120, 160), (121, 161)])
def test_cells_are_the_segmenters_score_grid(size):
    # The reference pools to ceil(H / 8) x ceil(W / 8) cells: the grid both DeepLabs score on.
    h, w = size
    assert OUTPUT_STRIDE == 8
    v1 = segmenter_from_config("v1", {"width": 0.0625, "batch_norm": True, "fc6_dilation": 2, "dropout": 0.0},
                               temperature=20).eval()
    v2 = segmenter_from_config("v2", {"depth": 18, "width": 0.125, "feat_dim": 64, "aspp_rates": [1, 2]},
                               temperature=20).eval()
    with torch.no_grad():
        x = torch.zeros(1, 3, h, w)
        for model in (v1, v2):
            assert tuple(model(x)["cosine"].shape[-2:]) == (math.ceil(h / 8), math.ceil(w / 8))
    # a label that changes every 8 pixels along x: cell j holds class j % 2 + 1, centred on 8j
    label = np.ones((h, w), np.uint8) + ((np.arange(w) + 4) // 8 % 2).astype(np.uint8)[None]
    out = stride_limited_label(label)
    centres = np.arange(0, w, 8)
    if (w - 1) % 8 == 0:  # 8k + 1 pixels: score j lands on pixel 8j exactly (align_corners)
        assert np.array_equal(out[h // 2, centres], label[h // 2, centres])


def test_reference_miou_on_a_small_dataset(tmp_path):
    from PIL import Image

    root = tmp_path / "VOC2012"
    (root / "SegmentationClass").mkdir(parents=True)
    big = np.zeros((121, 161), np.uint8)
    big[16:104, 24:136] = 5
    thin = big.copy()
    thin[:, 80] = 9                  # class 9 exists only as a 1-pixel line: IoU 0 at stride 8
    for name, lab in (("a", big), ("b", thin)):
        Image.fromarray(lab, mode="L").save(root / "SegmentationClass" / f"{name}.png")
    one = stride_reference_miou(root, ["a"])
    assert one["n_images"] == 1 and one["stride"] == 8
    assert one["per_class"][0] > 0.9 and one["per_class"][5] > 0.9
    both = stride_reference_miou(root, ["a", "b"])
    assert both["per_class"][9] == 0.0
    assert both["miou"] == pytest.approx(np.mean([v for v in both["per_class"] if v is not None]))
    assert both["miou"] < one["miou"]
    exact = stride_reference_miou(root, ["a", "b"], stride=1)
    assert exact["miou"] == 1.0


def test_reference_after_crf_per_architecture(tmp_path):
    """With the CRF parameters of each architecture the reference also scores the stride-limited
    scores after DenseCRF: a large region stays right, and the CRF snaps its edge to the image's
    colour boundary, which the stride-8 scores had blurred."""
    from PIL import Image

    root = tmp_path / "VOC2012"
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    label = np.zeros((121, 161), np.uint8)
    label[21:99, 27:133] = 5          # edges off the 8-pixel grid
    image = np.full((121, 161, 3), 30, np.uint8)
    image[label == 5] = (220, 200, 40)
    Image.fromarray(label, mode="L").save(root / "SegmentationClass" / "a.png")
    Image.fromarray(image).save(root / "JPEGImages" / "a.jpg", quality=100)
    crf = {"v1": [4, 121, 5, 3, 3], "v2": [4, 67, 3, 3, 1]}
    ref = stride_reference_miou(root, ["a"], crf=crf, temperature=20)
    assert set(ref["after_crf"]) == {"v1", "v2"} and ref["temperature"] == 20
    before = stride_reference_miou(root, ["a"])
    assert ref["miou"] == before["miou"] and "after_crf" not in before
    for arch in crf:
        assert ref["after_crf"][arch] >= ref["miou"] - 1e-9   # the colour edge helps, never hurts here
        assert ref["after_crf"][arch] > 0.97
