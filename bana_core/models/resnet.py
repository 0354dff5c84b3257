"""ResNet trunks with output stride 8 (DeepLab-V2) and the ASPP head.

``ResNetTrunk`` is torchvision's ResNet (its ``BasicBlock`` / ``Bottleneck`` blocks, its module
names, so torchvision's ImageNet state dict loads into it once ``fc.*`` is dropped) without
avgpool/fc, with a channel multiplier, and with layer3/layer4 turned from stride 2 into dilation
2/4. The dilation is applied after construction by :func:`dilate_layer`, because torchvision's
``replace_stride_with_dilation`` refuses ``BasicBlock`` (ResNet-18/34): it works on any block
type and, for ResNet-50/101, gives exactly torchvision's
``resnet101(replace_stride_with_dilation=[False, True, True])`` (tested).

Output size: conv1 (7x7, s2, p3), maxpool (3x3, s2, p1) and layer2's stride-2 convs each map
n to ceil(n / 2), so an H x W input gives ``ceil(H / 8) x ceil(W / 8)`` features.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

from ..errors import ConfigError
from .vgg import IMAGENET_MEAN, IMAGENET_STD, check_bool, check_int, check_width, scaled_channels

__all__ = ["ResNetTrunk", "ASPP", "dilate_layer", "RESNET_LAYERS"]

# torchvision's block counts per depth
RESNET_LAYERS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def dilate_layer(layer: nn.Sequential, previous_dilation: int, dilation: int) -> None:
    """Turn a stride-2 residual layer into a stride-1 layer with ``dilation``, in place.

    As torchvision's ``replace_stride_with_dilation``: the conv that had the stride (first block)
    gets ``previous_dilation``, every other 3x3 conv of the layer gets ``dilation``; the shortcut
    1x1 conv loses its stride. Padding = dilation keeps the size.
    """
    for i, block in enumerate(layer):
        for m in block.modules():
            if not isinstance(m, nn.Conv2d):
                continue
            was_strided = m.stride != (1, 1)
            m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                d = previous_dilation if (i == 0 and was_strided) else dilation
                m.dilation, m.padding = (d, d), (d, d)
        if hasattr(block, "stride"):
            block.stride = 1


class ResNetTrunk(nn.Module):
    """ResNet-{18,34,50,101,152} conv1..layer4 with output stride 8.

    Args:
        depth: torchvision depth; 101 is DeepLab-V2's, 18 the demo-size variant.
        width: multiplies every channel count (stem 64 and layer widths 64/128/256/512, then
            x4 for Bottleneck outputs), rounded, at least 8. Same topology at any width.
        freeze_bn: keep BatchNorm statistics and affine parameters fixed (eval mode, no grad);
            off by default, as BANA's released DeepLab-V2 config (FREEZE_BN: False).

    ``forward``: ``[N, 3, H, W]`` -> ``[N, out_channels, ceil(H/8), ceil(W/8)]``.
    """

    input_mean = IMAGENET_MEAN
    input_std = IMAGENET_STD

    def __init__(self, depth: int = 101, *, width: float = 1.0, freeze_bn: bool = False):
        super().__init__()
        if isinstance(depth, bool) or depth not in RESNET_LAYERS:
            raise ConfigError(f"depth: ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth!r}")
        self.depth = depth
        self.width = check_width(width)
        self.freeze_bn = check_bool(freeze_bn, "freeze_bn")
        block, counts = RESNET_LAYERS[depth]
        planes = [scaled_channels(64 * 2**i, self.width) for i in range(4)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], counts[0], 1)
        self.layer2 = self._make_layer(block, planes[1], counts[1], 2)
        self.layer3 = self._make_layer(block, planes[2], counts[2], 2)
        self.layer4 = self._make_layer(block, planes[3], counts[3], 2)
        dilate_layer(self.layer3, 1, 2)
        dilate_layer(self.layer4, 2, 4)
        self.out_channels = planes[3] * block.expansion
        del self.inplanes

        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.requires_grad_(False)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        # torchvision's ResNet._make_layer with free channel counts
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def train(self, mode: bool = True) -> ResNetTrunk:
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, out_channels={self.out_channels}, freeze_bn={self.freeze_bn}"


class ASPP(nn.Module):
    """DeepLab-V2 atrous spatial pyramid pooling: parallel 3x3 convs, dilation = padding = rate,
    outputs summed.

    Each branch maps to ``out_channels`` features (not to class scores as in DeepLab-V2) because
    a cosine classifier follows; as BANA's released ``DeepLab_ASPP``: no bias, N(0, 0.01) init, ReLU
    on the sum.
    """

    def __init__(self, in_channels: int, out_channels: int, rates=(6, 12, 18, 24)):
        super().__init__()
        rates = tuple(rates)
        if not rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rates):
            raise ConfigError(f"aspp_rates: need a non-empty list of integers >= 1, got {rates!r}")
        check_int(in_channels, "in_channels", 1)
        check_int(out_channels, "feat_dim", 1)
        self.rates = rates
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r, bias=False) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return F.relu(out)
