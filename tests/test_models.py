"""Backbones, DeepLab-V1/V2, weight loading (ImageNet mapping, local files, no network), param groups."""

from __future__ import annotations

import logging
import math
import urllib.error

import pytest
import torch
import torch.nn as nn
import torchvision

from bana_core.errors import ConfigError, DataError
from bana_core.models import (
    BACKBONES,
    DeepLab,
    ResNetTrunk,
    VGG16DeepLab,
    build_backbone,
    build_segmenter,
    decimate_vgg16_fc,
    init_backbone,
    load_local_state_dict,
    make_param_groups,
    place_model,
)
from bana_core.models.resnet import ASPP
from bana_core.models.weights import vgg16_to_deeplab

SIZES = [(33, 47), (65, 65), (96, 97)]


def convs(module: nn.Module) -> list[tuple]:
    return [(name, m.stride, m.padding, m.dilation, tuple(m.weight.shape))
            for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]


def fake_torchvision_state(builder) -> dict[str, torch.Tensor]:
    """Random tensors with the shapes of a torchvision model's state dict (built on the meta device)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in builder().state_dict().items()}
    g = torch.Generator().manual_seed(0)
    return {k: (torch.randn(s, generator=g) if k.split(".")[-1] != "num_batches_tracked"
                else torch.tensor(0)) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def tv_vgg16_state():
    return fake_torchvision_state(torchvision.models.vgg16)


# --- VGG16 DeepLab -----------------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_output_stride_8_and_channels(batch_norm):
    model = VGG16DeepLab(width=1 / 8, batch_norm=batch_norm).eval()
    assert model.out_channels == 128
    assert [m.out_channels for _, m in model.conv_layers()] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn == (15 if batch_norm else 0)  # 13 convs + fc6 + fc7
    for h, w in SIZES:
        with torch.no_grad():
            out = model(torch.randn(2, 3, h, w))
        assert out.shape == (2, 128, math.ceil(h / 8), math.ceil(w / 8))
        assert (out >= 0).all()  # fc7 ends with a ReLU


def test_vgg_layout_matches_torchvision_vgg16():
    with torch.device("meta"):
        tv = torchvision.models.vgg16()
        tv_bn = torchvision.models.vgg16_bn()
        model = VGG16DeepLab(fc6_dilation=12)
        model_bn = VGG16DeepLab(batch_norm=True)
    # same module indices, same conv shapes: torchvision's weights map one to one
    tv_convs = [(n, tuple(m.weight.shape)) for n, m in tv.features.named_children() if isinstance(m, nn.Conv2d)]
    assert [(n.split(".")[1], tuple(m.weight.shape)) for n, m in model.conv_layers()] == tv_convs
    assert len(model.features) == len(tv.features) and len(model_bn.features) == len(tv_bn.features)
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == [(3, 2, 1)] * 3 + [(3, 1, 1)] * 2
    dil = [m.dilation for _, m in model.conv_layers()]
    assert dil == [(1, 1)] * 10 + [(2, 2)] * 3
    assert model.fc6.weight.shape == (1024, 512, 3, 3) and model.fc6.dilation == (12, 12)
    assert model.fc6.padding == (12, 12)
    assert model.fc7.weight.shape == (1024, 1024, 1, 1)


def test_width_rounds_to_at_least_8_channels():
    model = VGG16DeepLab(width=0.01, fc_dim=100)
    assert {m.out_channels for _, m in model.conv_layers()} == {8}
    assert model.out_channels == 8
    assert VGG16DeepLab(width=0.25).out_channels == 256


@pytest.mark.parametrize("kwargs, key", [
    (dict(width=0), "width"), (dict(width=-0.5), "width"), (dict(width="1/8"), "width"),
    (dict(batch_norm="yes"), "batch_norm"), (dict(fc6_dilation=0), "fc6_dilation"),
    (dict(dropout=1.0), "dropout"), (dict(fc_dim=0), "fc_dim"),
])
def test_vgg_rejects_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        VGG16DeepLab(**kwargs)


# --- ResNet trunks -----------------------------------------------------------------------------

def test_resnet101_dilation_equals_torchvision_replace_stride():
    with torch.device("meta"):
        tv = torchvision.models.resnet101(replace_stride_with_dilation=[False, True, True])
        ours = ResNetTrunk(101)
    assert convs(ours) == convs(tv)
    tv_keys = {k: v.shape for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.state_dict().items()} == tv_keys
    assert ours.out_channels == 2048


def test_resnet18_basicblock_dilation_by_hand():
    trunk = ResNetTrunk(18, width=0.25)
    c = {name: (m.stride, m.dilation, m.padding) for name, m in trunk.named_modules() if isinstance(m, nn.Conv2d)}
    assert c["layer2.0.conv1"] == ((2, 2), (1, 1), (1, 1))  # layer2 keeps its stride
    assert c["layer3.0.conv1"] == ((1, 1), (1, 1), (1, 1))  # the strided conv: previous dilation
    assert c["layer3.0.conv2"] == ((1, 1), (2, 2), (2, 2))
    assert c["layer3.1.conv1"] == ((1, 1), (2, 2), (2, 2))
    assert c["layer3.0.downsample.0"][0] == (1, 1)
    assert c["layer4.0.conv1"] == ((1, 1), (2, 2), (2, 2))
    assert c["layer4.0.conv2"] == ((1, 1), (4, 4), (4, 4))
    assert c["layer4.1.conv2"] == ((1, 1), (4, 4), (4, 4))
    assert c["layer4.0.downsample.0"][0] == (1, 1)
    assert trunk.out_channels == 128 and trunk.conv1.out_channels == 16


@pytest.mark.parametrize("depth, width, channels", [(18, 0.25, 128), (50, 1 / 8, 256)])
def test_resnet_output_stride_8(depth, width, channels):
    trunk = ResNetTrunk(depth, width=width).eval()
    for h, w in SIZES:
        with torch.no_grad():
            out = trunk(torch.randn(1, 3, h, w))
        assert out.shape == (1, channels, math.ceil(h / 8), math.ceil(w / 8))


def test_resnet_rejects_bad_depth_and_freezes_bn_on_request():
    with pytest.raises(ConfigError, match="depth"):
        ResNetTrunk(20)
    trunk = ResNetTrunk(18, width=1 / 8, freeze_bn=True).train()
    bns = [m for m in trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training and not m.weight.requires_grad for m in bns)
    assert trunk.conv1.weight.requires_grad and trunk.training


def test_aspp_sums_branches():
    aspp = ASPP(4, 3, rates=(1, 2))
    x = torch.randn(1, 4, 5, 5)
    expected = torch.relu(aspp.branches[0](x) + aspp.branches[1](x))
    assert torch.equal(aspp(x), expected)
    assert [b.dilation for b in aspp.branches] == [(1, 1), (2, 2)]
    with pytest.raises(ConfigError, match="aspp_rates"):
        ASPP(4, 3, rates=())


# --- DeepLab ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, kwargs, feat_dim", [
    ("v1", dict(width=1 / 8, batch_norm=True), 128),
    ("v1", dict(width=1 / 8, batch_norm=False, feat_dim=64), 8),
    ("v2", dict(width=0.25, resnet_depth=18), 64),
])
def test_deeplab_cosine_and_logits(arch, kwargs, feat_dim):
    model = DeepLab(arch, 21, temperature=20.0, **kwargs).eval()
    assert model.feat_dim == feat_dim and model.classifier.weight.shape == (21, feat_dim)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 65, 71))
    cos = out["cosine"]
    assert cos.shape == (2, 21, 9, 9)
    assert cos.min() >= -1 and cos.max() <= 1
    assert torch.allclose(out["logits"], 20.0 * cos)
    # cosine by hand from phi and W
    with torch.no_grad():
        phi = model.features(torch.randn(1, 3, 17, 17))
        expected = torch.einsum("nchw,kc->nkhw", nn.functional.normalize(phi, dim=1),
                                nn.functional.normalize(model.classifier.weight, dim=1))
        assert torch.allclose(model.classifier(phi), expected, atol=1e-6)


def test_deeplab_v1_uses_largefov_settings():
    model = DeepLab("v1", width=1 / 8)
    assert model.backbone.fc6.dilation == (12, 12)
    assert isinstance(model.backbone.drop6, nn.Dropout2d) and model.backbone.drop6.p == 0.5


def test_deeplab_v2_resnet101_full_size():
    torch.manual_seed(0)
    model = DeepLab("v2").eval()
    assert model.backbone.out_channels == 2048 and model.feat_dim == 256
    assert [tuple(b.weight.shape) for b in model.head.branches] == [(256, 2048, 3, 3)] * 4
    assert [b.dilation[0] for b in model.head.branches] == [6, 12, 18, 24]
    assert model.classifier.weight.shape == (21, 256)
    n_trunk = sum(p.numel() for p in model.backbone.parameters())
    with torch.device("meta"):
        tv = torchvision.models.resnet101()
    assert n_trunk == sum(p.numel() for n, p in tv.named_parameters() if not n.startswith("fc."))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 65))
    assert out["cosine"].shape == (1, 21, 9, 9)


@pytest.mark.parametrize("kwargs, key", [
    (dict(arch="v3"), "arch"), (dict(arch="v1", temperature=0), "temperature"),
    (dict(arch="v1", num_classes=0), "num_classes"), (dict(arch="v2", resnet_depth=19), "depth"),
    (dict(arch="v1", width=0), "width"), (dict(arch="v2", feat_dim=0, resnet_depth=18), "feat_dim"),
])
def test_deeplab_rejects_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        DeepLab(**kwargs)


# --- ImageNet weights: decimation and mapping (fake torchvision state dicts) ---------------------

def test_decimate_vgg16_fc_takes_the_documented_slices(tv_vgg16_state):
    sd = tv_vgg16_state
    out = decimate_vgg16_fc(sd)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "fc6.weight": (1024, 512, 3, 3), "fc6.bias": (1024,), "fc7.weight": (1024, 1024, 1, 1), "fc7.bias": (1024,)}
    w6, w7 = sd["classifier.0.weight"], sd["classifier.3.weight"]
    # torchvision flattens pool5 [512, 7, 7] as c * 49 + y * 7 + x; taps 0, 3, 6 of y and x
    o, c, ky, kx = torch.meshgrid(torch.arange(1024), torch.arange(512), torch.arange(3), torch.arange(3),
                                  indexing="ij")
    assert torch.equal(out["fc6.weight"], w6[4 * o, c * 49 + (3 * ky) * 7 + 3 * kx])
    assert torch.equal(out["fc6.bias"], sd["classifier.0.bias"][4 * torch.arange(1024)])
    i, j = torch.meshgrid(torch.arange(1024), torch.arange(1024), indexing="ij")
    assert torch.equal(out["fc7.weight"][:, :, 0, 0], w7[4 * i, 4 * j])
    assert torch.equal(out["fc7.bias"], sd["classifier.3.bias"][4 * torch.arange(1024)])
    # a few entries spelled out
    assert out["fc6.weight"][1, 2, 1, 2] == w6[4, 2 * 49 + 3 * 7 + 6]
    assert out["fc6.weight"][1023, 511, 2, 0] == w6[4092, 511 * 49 + 6 * 7 + 0]
    assert out["fc7.weight"][5, 7, 0, 0] == w7[20, 28]
    assert out["fc6.weight"].is_contiguous() and out["fc7.weight"].is_contiguous()


def test_decimate_rejects_wrong_shapes():
    bad = {"classifier.0.weight": torch.zeros(4096, 100), "classifier.0.bias": torch.zeros(4096),
           "classifier.3.weight": torch.zeros(4096, 4096), "classifier.3.bias": torch.zeros(4096)}
    with pytest.raises(DataError, match=r"classifier\.0\.weight.*\(4096, 100\)"):
        decimate_vgg16_fc(bad)
    bad["classifier.0.weight"] = torch.zeros(4096, 25088)
    del bad["classifier.3.weight"]
    with pytest.raises(DataError, match="no 'classifier.3.weight'"):
        decimate_vgg16_fc(bad)


def test_imagenet_vgg_init_maps_convs_by_position(tv_vgg16_state, monkeypatch):
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return tv_vgg16_state

    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict", fake_get_state_dict)
    model = build_backbone("vgg16", fc6_dilation=12, pretrained="imagenet")
    assert calls == [torchvision.models.VGG16_Weights.IMAGENET1K_V1]
    tv_conv_idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16 features
    for idx, (prefix, conv) in zip(tv_conv_idx, model.conv_layers(), strict=True):
        assert prefix == f"features.{idx}"
        assert torch.equal(conv.weight, tv_vgg16_state[f"features.{idx}.weight"])
        assert torch.equal(conv.bias, tv_vgg16_state[f"features.{idx}.bias"])
    dec = decimate_vgg16_fc(tv_vgg16_state)
    for key, value in dec.items():
        assert torch.equal(model.state_dict()[key], value)
    # the normalisation those weights expect is the data pipeline's
    from bana_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    assert model.input_mean == IMAGENET_MEAN and model.input_std == IMAGENET_STD


def test_imagenet_refused_for_demo_sizes_before_any_download(monkeypatch):
    def must_not_download(self, *args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict", must_not_download)
    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", must_not_download)
    with pytest.raises(ConfigError, match="width.*batch_norm"):
        build_backbone("vgg16", width=0.25, pretrained="imagenet")
    with pytest.raises(ConfigError, match="batch_norm=True"):
        build_backbone("vgg16", batch_norm=True, pretrained="imagenet")
    with pytest.raises(ConfigError, match="width"):
        build_backbone("resnet18", width=0.5, pretrained="imagenet")
    with pytest.raises(DataError):  # the mapping itself checks too
        vgg16_to_deeplab({}, VGG16DeepLab())


def test_imagenet_resnet_init_drops_fc(monkeypatch):
    fake = fake_torchvision_state(torchvision.models.resnet18)
    # old torchvision files carry no num_batches_tracked: BatchNorm fills it in
    fake_old = {k: v for k, v in fake.items() if not k.endswith("num_batches_tracked")}
    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", lambda self, **kw: fake_old)
    trunk = build_backbone("resnet", depth=18, pretrained="imagenet")
    state = trunk.state_dict()
    assert not any(k.startswith("fc.") for k in state)
    for key, value in fake_old.items():
        if not key.startswith("fc."):
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("name, weights_cls, kwargs", [
    ("vgg16", "VGG16_Weights", {}),
    ("resnet", "ResNet101_Weights", {"depth": 101}),
])
def test_unreachable_download_is_a_helpful_config_error(monkeypatch, name, weights_cls, kwargs):
    def offline(self, *args, **kw):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(getattr(torchvision.models, weights_cls), "get_state_dict", offline)
    with torch.device("meta") if name == "resnet" else torch.device("cpu"):
        model = build_backbone(name, **kwargs)
    with pytest.raises(ConfigError) as info:
        init_backbone(model, "imagenet")
    msg = str(info.value)
    assert "cannot download" in msg and "URLError" in msg
    assert "pretrained: <path>" in msg and "pretrained: null" in msg and "random init" in msg
    url = getattr(torchvision.models, weights_cls).IMAGENET1K_V1.url
    assert url in msg and url.rsplit("/", 1)[-1] in msg  # where to put a copied file
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_deeplab_imagenet_download_failure_surfaces(monkeypatch):
    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict",
                        lambda self, **kw: (_ for _ in ()).throw(OSError("Network is unreachable")))
    with pytest.raises(ConfigError, match="Network is unreachable"):
        DeepLab("v1", pretrained="imagenet")


# --- local state dicts -----------------------------------------------------------------------

def small_vgg(seed: int) -> VGG16DeepLab:
    torch.manual_seed(seed)
    model = VGG16DeepLab(width=1 / 8, batch_norm=True)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
        for name, buf in model.named_buffers():
            if "running" in name:
                buf.uniform_(0.5, 1.5)
    return model


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("wrap", ["raw", "model", "state_dict", "module"])
def test_local_state_dict_round_trip(tmp_path, wrap):
    src, dst = small_vgg(0), small_vgg(1)
    state = src.state_dict()
    obj = {"raw": state, "model": {"model": state, "meta": {"net": "vgg"}}, "state_dict": {"state_dict": state},
           "module": {f"module.{k}": v for k, v in state.items()}}[wrap]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    result = load_local_state_dict(dst, path, strict=True)
    assert result.missing == [] and result.unexpected == []
    assert_same_state(src, dst)


def test_local_state_dict_key_map(tmp_path):
    src, dst = small_vgg(0), small_vgg(1)
    wrapped = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    wrapped["classifier.weight"] = torch.zeros(21, 128, 1, 1)
    path = tmp_path / "classifier.pth"
    torch.save({"model": wrapped}, path)
    with pytest.raises(DataError, match="unexpected keys"):
        load_local_state_dict(dst, path, strict=True)
    load_local_state_dict(dst, path, key_map={"backbone.": "", "classifier.": None}, strict=True)
    assert_same_state(src, dst)


def test_local_state_dict_missing_key(tmp_path, caplog):
    src, dst = small_vgg(0), small_vgg(1)
    state = src.state_dict()
    del state["fc7.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(DataError, match=r"partial\.pth.*missing keys \[fc7\.weight\]") as info:
        load_local_state_dict(dst, path, strict=True)
    assert info.value.path == path
    before = dst.fc7.weight.clone()
    with caplog.at_level(logging.WARNING, logger="bana_core.models.weights"):
        result = load_local_state_dict(dst, path, strict=False)
    assert result.missing == ["fc7.weight"] and result.unexpected == []
    assert "partial.pth" in caplog.text and "fc7.weight" in caplog.text
    assert torch.equal(dst.fc6.weight, src.fc6.weight) and torch.equal(dst.fc7.weight, before)


def test_local_state_dict_shape_mismatch(tmp_path):
    other = VGG16DeepLab(width=0.25, batch_norm=True)
    path = tmp_path / "wide.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(DataError, match=r"wide\.pth: features\.0\.weight: shape \(16, 3, 3, 3\) in the file, "
                                        r"\(8, 3, 3, 3\) in the model"):
        load_local_state_dict(small_vgg(1), path, strict=False)


def test_local_state_dict_bad_files(tmp_path):
    model = small_vgg(0)
    with pytest.raises(DataError, match="not found"):
        load_local_state_dict(model, tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="junk.pth: cannot read weights"):
        load_local_state_dict(model, junk)
    listy = tmp_path / "list.pth"
    torch.save([1, 2], listy)
    with pytest.raises(DataError, match="list.pth: not a state dict"):
        load_local_state_dict(model, listy)


def test_init_backbone_values(tmp_path):
    model = small_vgg(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert init_backbone(model, None) is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for bad in ["pretrain", "", str(tmp_path / "absent.pth")]:
        with pytest.raises(ConfigError, match="pretrained"):
            init_backbone(model, bad)


def test_pretrained_backbone_file_feeds_stage3(tmp_path):
    """The pretrain rule saves a backbone; DeepLab v1 (fc6 dilation 12) and v2 load it by path."""
    vgg = build_backbone("vgg16", width=1 / 8, batch_norm=True, fc6_dilation=1)
    resnet = build_backbone("resnet", depth=18, width=0.25)
    for m in (vgg, resnet):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(1.0)
    torch.save({"model": vgg.state_dict(), "meta": {"net": "vgg"}}, tmp_path / "vgg.pth")
    torch.save({"model": resnet.state_dict(), "meta": {"net": "resnet"}}, tmp_path / "resnet.pth")
    v1 = DeepLab("v1", width=1 / 8, batch_norm=True, pretrained=str(tmp_path / "vgg.pth"))
    v2 = DeepLab("v2", width=0.25, resnet_depth=18, pretrained=tmp_path / "resnet.pth")
    assert_same_state(v1.backbone, vgg)
    assert_same_state(v2.backbone, resnet)


# --- parameter groups --------------------------------------------------------------------------

def group_of(groups) -> dict[int, dict]:
    owner = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in owner, "parameter in two groups"
            owner[id(p)] = g
    return owner


@pytest.mark.parametrize("arch, kwargs", [("v1", dict(width=1 / 8, batch_norm=True)),
                                          ("v2", dict(width=1 / 8, resnet_depth=18))])
def test_deeplab_param_groups(arch, kwargs):
    model = DeepLab(arch, **kwargs)
    groups = model.param_groups(0.001, 5e-4, classifier_lr_mult=10)
    owner = group_of(groups)
    assert set(owner) == {id(p) for p in model.parameters()}  # each parameter exactly once
    spec = {g["name"]: (g["lr_mult"], g["lr"], g["weight_decay"]) for g in groups}
    assert spec["pretrained_weights"] == (1.0, 0.001, 5e-4)
    assert spec["pretrained_biases"] == (2.0, pytest.approx(0.002), 0.0)
    assert spec["new_weights"] == (10, pytest.approx(0.01), 5e-4)
    assert owner[id(model.classifier.weight)]["name"] == "new_weights"
    for name, p in model.backbone.named_parameters():
        expected = "pretrained_weights" if p.dim() > 1 else "pretrained_biases"
        assert owner[id(p)]["name"] == expected, name
    if arch == "v1":  # fc6/fc7 come pretrained with the backbone; the classifier alone is new
        assert owner[id(model.backbone.fc6.weight)]["name"] == "pretrained_weights"
        assert owner[id(model.backbone.bn6.weight)]["name"] == "pretrained_biases"
        assert [g["name"] for g in groups] == ["pretrained_weights", "pretrained_biases", "new_weights"]
    else:  # the ASPP replaces DeepLab-V2's fc8 branches: new
        assert all(owner[id(b.weight)]["name"] == "new_weights" for b in model.head.branches)
    torch.optim.SGD(groups, lr=0.001, momentum=0.9)  # valid SGD groups


def test_make_param_groups_four_groups_and_frozen_params():
    backbone = VGG16DeepLab(width=1 / 8)
    head = nn.Conv2d(backbone.out_channels, 21, 1)
    groups = make_param_groups([backbone], [head], lr=0.01, weight_decay=5e-4)
    assert [(g["name"], g["lr_mult"], g["weight_decay"]) for g in groups] == [
        ("pretrained_weights", 1.0, 5e-4), ("pretrained_biases", 2.0, 0.0),
        ("new_weights", 10.0, 5e-4), ("new_biases", 20.0, 0.0)]
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.02, 0.1, 0.2])
    assert groups[2]["params"] == [head.weight] and groups[3]["params"] == [head.bias]
    assert len(groups[0]["params"]) == 15 and len(groups[1]["params"]) == 15  # 13 convs + fc6 + fc7
    backbone.fc7.requires_grad_(False)
    owner = group_of(make_param_groups([backbone], [head], lr=0.01, weight_decay=5e-4))
    assert id(backbone.fc7.weight) not in owner and id(backbone.fc6.weight) in owner
    with pytest.raises(ValueError, match="both"):
        make_param_groups([backbone], [backbone.fc6], lr=0.01, weight_decay=0)
    with pytest.raises(ConfigError, match="lr"):
        make_param_groups([backbone], [head], lr=0, weight_decay=0)
    with pytest.raises(ConfigError, match="weight_decay"):
        make_param_groups([backbone], [head], lr=0.1, weight_decay=-1)


# --- registry --------------------------------------------------------------------------------

def test_registry():
    assert {"vgg16", "resnet", "resnet18", "resnet101"} <= set(BACKBONES)
    assert isinstance(build_backbone("resnet18", width=1 / 8), ResNetTrunk)
    assert build_backbone("resnet", depth=50, width=1 / 8).out_channels == 256
    assert build_backbone("vgg16", width=1 / 8, batch_norm=True).out_channels == 128
    with pytest.raises(ConfigError, match=r"unknown name 'vgg19'.*vgg16"):
        build_backbone("vgg19")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['depth'\]"):
        build_backbone("vgg16", depth=18)
    seg = build_segmenter("v2", resnet_depth=18, width=1 / 8, num_classes=5)
    assert isinstance(seg, DeepLab) and seg.num_classes == 5
    with pytest.raises(ConfigError, match="arch"):
        build_segmenter("v9")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['depth'\]"):
        build_segmenter("v2", depth=18)


def test_segmenter_from_config_maps_every_arch_key():
    from bana_core.stage3 import segmenter_from_config

    v1 = segmenter_from_config("v1", {"width": 0.125, "batch_norm": True, "fc6_dilation": 4, "dropout": 0.0},
                               temperature=7.0)
    assert v1.temperature == 7.0 and v1.num_classes == 21
    assert v1.backbone.dropout == 0.0 and isinstance(v1.backbone.drop6, nn.Identity)
    assert v1.backbone.fc6.dilation == (4, 4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in v1.backbone.modules())
    default = segmenter_from_config("v1", {"width": 0.125}, temperature=20.0)
    assert default.backbone.dropout == 0.5 and default.backbone.fc6.dilation == (12, 12)  # LargeFOV
    v2 = segmenter_from_config("v2", {"depth": 18, "width": 0.125, "aspp_rates": [2, 3]}, temperature=20.0)
    assert v2.head.rates == (2, 3)
    with pytest.raises(ConfigError, match="dropout"):
        segmenter_from_config("v1", {"width": 0.125, "dropout": 1.0}, temperature=20.0)


# --- placement ---------------------------------------------------------------------------------

def test_place_model_channels_last_same_outputs_and_round_trip(tmp_path):
    from bana_core.stage1 import build_classifier, classifier_from_weights
    from bana_core.train import save_weights

    torch.manual_seed(0)
    model = build_classifier({"width": 0.125, "batch_norm": True}, pool="bap", grid_size=2).eval()
    x = torch.randn(2, 3, 40, 56)
    expected = model.features(x)
    placed = place_model(model, torch.device("cpu"))
    assert placed is model  # moved in place, as Module.to
    conv_weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert conv_weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    got = model.features(x)
    assert got.shape == expected.shape == (2, 128, 5, 7)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # weights saved from a channels-last model load into a fresh one (also placed) unchanged
    save_weights(tmp_path / "m.pt", model, {"backbone": {"width": 0.125, "batch_norm": True}, "pool": "bap",
                                             "grid_size": 2, "roi_size": [2, 2], "min_bg_fraction": 0.125})
    loaded = classifier_from_weights(tmp_path / "m.pt", torch.device("cpu"))
    assert loaded.classifier.weight.is_contiguous(memory_format=torch.channels_last)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    torch.testing.assert_close(loaded.features(x), got, rtol=0, atol=0)



# --- stage-1 dropout, as the released classifier ------------------------------------------------

def test_stage1_classifier_drops_fc_channels_while_training_only():
    from bana_core.stage1 import build_classifier

    torch.manual_seed(0)
    model = build_classifier({"width": 0.125, "batch_norm": True, "dropout": 0.5}, pool="bap", grid_size=2)
    assert isinstance(model.backbone.drop6, nn.Dropout2d) and model.backbone.drop6.p == 0.5
    assert isinstance(model.backbone.drop7, nn.Dropout2d) and model.backbone.drop7.p == 0.5
    x = torch.randn(2, 3, 40, 56)
    model.train()
    f = model.features(x)  # [2, 128, 5, 7]
    dropped = (f.flatten(2).abs().amax(-1) == 0).float().mean()  # whole channels zeroed by drop7
    assert 0.3 < dropped < 0.7
    model.eval()
    torch.testing.assert_close(model.features(x), model.features(x), rtol=0, atol=0)
    assert (model.features(x).flatten(2).abs().amax(-1) == 0).float().mean() < 0.3
    # weights saved before the key existed: no dropout
    plain = build_classifier({"width": 0.125, "batch_norm": True}, pool="bap", grid_size=2)
    assert isinstance(plain.backbone.drop6, nn.Identity)


def test_stage1_dropout_key_defaults_to_the_released_value(tmp_path):
    from pathlib import Path

    import yaml

    from bana_core.config import validate_config

    root = Path(__file__).resolve().parents[1]
    schema = root / "config" / "schema.yaml"
    paper = validate_config(yaml.safe_load((root / "config" / "voc2012.yaml").read_text()), schema)
    assert paper["stage1"]["backbone"]["dropout"] == 0.5
    tiny = validate_config(yaml.safe_load((root / "tests" / "data" / "tiny_config.yaml").read_text()), schema)
    assert tiny["stage1"]["backbone"]["dropout"] == 0.5  # the schema's default
    bad = yaml.safe_load((root / "tests" / "data" / "tiny_config.yaml").read_text())
    bad["stage1"]["backbone"]["dropout"] = 1.0
    with pytest.raises(ConfigError, match="dropout"):
        validate_config(bad, schema)


# --- geometry: output stride 8 and align_corners=True --------------------------------------------

def test_features_of_a_321_crop_sit_on_pixels_0_8_to_320():
    from bana_core.models.deeplab import resize_bilinear

    backbone = build_backbone("vgg16", width=0.125, batch_norm=False, fc6_dilation=1).eval()
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(0.01)
                m.bias.zero_()
        x = torch.ones(1, 3, 321, 321)
        base = backbone(x)
        assert base.shape[-2:] == (41, 41)
        # one bright pixel at (160, 160) changes a block of features centred on feature (20, 20):
        # feature i's receptive field is centred on pixel 8i
        x[..., 160, 160] = 1e4
        rows, cols = torch.nonzero((backbone(x) - base)[0].abs().amax(0) > 0, as_tuple=True)
    assert rows.min() + rows.max() == 40 and cols.min() + cols.max() == 40
    # and resizing 41 -> 321 puts feature i on pixel 8i exactly (align_corners=True)
    f = torch.arange(41, dtype=torch.float64).expand(1, 1, 41, 41)
    up = resize_bilinear(f, (321, 321))[0, 0, 0]
    assert torch.equal(up[::8], torch.arange(41, dtype=torch.float64))


def test_imagenet_urls_are_torchvisions():
    # bana_core.imagenet lists them so that planning never imports torchvision
    import torchvision.models as tvm

    from bana_core.imagenet import IMAGENET_URLS, url_of_file

    assert IMAGENET_URLS[("vgg", None)] == tvm.VGG16_Weights.IMAGENET1K_V1.url
    for depth in (18, 34, 50, 101, 152):
        assert IMAGENET_URLS[("resnet", depth)] == getattr(tvm, f"ResNet{depth}_Weights").IMAGENET1K_V1.url
    assert url_of_file("resnet101-63fe2227.pth") == tvm.ResNet101_Weights.IMAGENET1K_V1.url
