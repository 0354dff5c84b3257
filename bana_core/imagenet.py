"""Where torchvision's ImageNet weights of each backbone live, without importing torch.

The workflow plans one local ``imagenet_weights`` job per file the config's ``pretrained:
imagenet`` backbones need; planning must not pay for importing torch and torchvision, so the
URLs are listed here (``tests/test_models.py`` checks them against torchvision's own).
Each file name ends in the first hex digits of the file's SHA-256, which the download checks.
"""

from __future__ import annotations

from .errors import ConfigError

_BASE = "https://download.pytorch.org/models/"
# (net, ResNet depth) -> torchvision's IMAGENET1K_V1 weights: VGG16_Weights, ResNet<depth>_Weights
IMAGENET_URLS = {
    ("vgg", None): _BASE + "vgg16-397923af.pth",
    ("resnet", 18): _BASE + "resnet18-f37072fd.pth",
    ("resnet", 34): _BASE + "resnet34-b627a593.pth",
    ("resnet", 50): _BASE + "resnet50-0676ba61.pth",
    ("resnet", 101): _BASE + "resnet101-63fe2227.pth",
    ("resnet", 152): _BASE + "resnet152-394f9c45.pth",
}


def imagenet_url(net: str, depth: int | None = None) -> str:
    """The URL of the ImageNet weights of ``vgg`` (VGG16) or ``resnet`` of ``depth``."""
    key = (net, None if net == "vgg" else depth)
    if key not in IMAGENET_URLS:
        raise ConfigError(f"pretrained: no torchvision ImageNet weights wired for {net}"
                          + (f"-{depth}" if depth else ""))
    return IMAGENET_URLS[key]


def file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def url_of_file(name: str) -> str:
    """The URL of one of the files above, from its name (the rule's wildcard)."""
    by_name = {file_name(u): u for u in IMAGENET_URLS.values()}
    if name not in by_name:
        raise ConfigError(f"{name!r} is not a torchvision ImageNet weights file this pipeline knows")
    return by_name[name]
