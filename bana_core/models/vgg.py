"""VGG16 in DeepLab's form: output stride 8, conv5 dilated, fc6/fc7 as convolutions.

Layout (DeepLab-LargeFOV's caffe model, as BANA's released ``VGG16``):

    conv1_1-2  pool1 (3x3, s2, p1)
    conv2_1-2  pool2 (3x3, s2, p1)
    conv3_1-3  pool3 (3x3, s2, p1)
    conv4_1-3  pool4 (3x3, s1, p1)
    conv5_1-3 (dilation 2)  pool5 (3x3, s1, p1)  pool5a (avg 3x3, s1, p1)
    fc6 3x3 conv to fc_dim, dilation d (stage 1: 1; LargeFOV: 12), ReLU [dropout]
    fc7 1x1 conv to fc_dim, ReLU [dropout]

``self.features`` keeps torchvision's ``vgg16`` / ``vgg16_bn`` module indices (only the pooling
layers differ), so torchvision's conv weights map onto it one to one.

Output size: every pool with stride 2 maps n to floor((n - 1) / 2) + 1 = ceil(n / 2), the rest keep
the size, so an H x W input gives exactly ``ceil(H / 8) x ceil(W / 8)`` features (321 -> 41, 96 -> 12).
"""

from __future__ import annotations

import math

import torch.nn as nn
from torch import Tensor

from ..errors import ConfigError

__all__ = ["VGG16DeepLab", "VGG16_CHANNELS", "scaled_channels", "check_width", "IMAGENET_MEAN", "IMAGENET_STD"]

# torchvision's ImageNet statistics (RGB in [0, 1]): the normalisation its weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's configuration "D" (VGG16); "M" = pooling.
VGG16_CHANNELS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
MIN_CHANNELS = 8


def check_width(width, key: str = "width") -> float:
    """``width`` as a float > 0, or ConfigError naming ``key``."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ConfigError(f"{key}: channel multiplier must be a number > 0 (1.0 = the paper's size), got {width!r}")
    return float(width)


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 8 (a layer narrower than that cannot learn much)."""
    return max(MIN_CHANNELS, int(round(channels * width)))


def check_int(value, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return value


def check_bool(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    return value


def check_dropout(value, key: str = "dropout") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}: dropout probability must be in [0, 1), got {value!r}")
    return float(value)


class VGG16DeepLab(nn.Module):
    """VGG16 with output stride 8 and convolutional fc6/fc7 (DeepLab), ``out_channels`` features.

    Args:
        width: multiplies every channel count (convs and ``fc_dim``), rounded, at least 8.
        batch_norm: BatchNorm after every conv (as torchvision's ``vgg16_bn``) and after fc6/fc7;
            for the demo-size variants, which do not learn without it.
        fc6_dilation: dilation (= padding) of the 3x3 fc6: 1 for stage 1, 12 for DeepLab-V1 LargeFOV.
        fc_dim: fc6/fc7 channels before ``width`` (DeepLab: 1024).
        dropout: channel dropout (``nn.Dropout2d``, as BANA's released code) after fc6 and fc7.

    ``forward``: ``[N, 3, H, W]`` normalised with ``input_mean`` / ``input_std`` ->
    ``[N, out_channels, ceil(H/8), ceil(W/8)]`` (non-negative: fc7 ends with a ReLU).
    """

    input_mean = IMAGENET_MEAN
    input_std = IMAGENET_STD

    def __init__(self, *, width: float = 1.0, batch_norm: bool = False, fc6_dilation: int = 1,
                 fc_dim: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.width = check_width(width)
        self.batch_norm = check_bool(batch_norm, "batch_norm")
        self.fc6_dilation = check_int(fc6_dilation, "fc6_dilation", 1)
        check_int(fc_dim, "fc_dim", 1)
        self.dropout = check_dropout(dropout)

        layers: list[nn.Module] = []
        in_ch, n_pool = 3, 0
        for v in VGG16_CHANNELS:
            if v == "M":
                n_pool += 1
                # pool1-3 halve the size, pool4-5 keep it (output stride 8)
                layers.append(nn.MaxPool2d(3, stride=2 if n_pool <= 3 else 1, padding=1))
                continue
            out_ch = scaled_channels(v, self.width)
            dilation = 2 if n_pool == 4 else 1  # conv5: dilation 2 replaces pool4's stride
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation))
            if self.batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool5a = nn.AvgPool2d(3, stride=1, padding=1)  # DeepLab-LargeFOV's pool5a

        fc = scaled_channels(fc_dim, self.width)
        d = self.fc6_dilation
        self.fc6 = nn.Conv2d(in_ch, fc, 3, padding=d, dilation=d)
        self.bn6 = nn.BatchNorm2d(fc) if self.batch_norm else nn.Identity()
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout2d(self.dropout) if self.dropout > 0 else nn.Identity()
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.bn7 = nn.BatchNorm2d(fc) if self.batch_norm else nn.Identity()
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout2d(self.dropout) if self.dropout > 0 else nn.Identity()
        self.out_channels = fc
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation (used when no pretrained weights are loaded)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def conv_layers(self) -> list[tuple[str, nn.Conv2d]]:
        """The 13 convs of ``features`` in order, with their state-dict prefixes."""
        return [(f"features.{name}", m) for name, m in self.features.named_children() if isinstance(m, nn.Conv2d)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool5a(self.features(x))
        x = self.drop6(self.relu6(self.bn6(self.fc6(x))))
        return self.drop7(self.relu7(self.bn7(self.fc7(x))))

    def extra_repr(self) -> str:
        return (f"width={self.width}, batch_norm={self.batch_norm}, fc6_dilation={self.fc6_dilation}, "
                f"out_channels={self.out_channels}, dropout={self.dropout}")
