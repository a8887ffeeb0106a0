"""Images paired with their masks by file name, in two folders under a data root."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmark.data.splits import Sample
from benchmark.errors import UserError


def paired(root: Path, images: str, masks: str, suffixes: tuple[str, ...], mask_name: Callable[[str], str]) -> list[Sample]:
    """Every image (a file with one of ``suffixes``) under ``root/images`` with its mask under ``root/masks``
    (sorted by name); an image without its mask is an error naming it."""
    found = sorted(p for p in (root / images).iterdir() if p.suffix.lower() in suffixes)
    pairs, missing = [], []
    for image in found:
        mask = f"{masks}/{mask_name(image.name)}"
        (pairs if (root / mask).is_file() else missing).append((f"{images}/{image.name}", mask))
    if missing:
        raise UserError(f"{len(missing)} images under {root / images} have no mask under {root / masks}, e.g. "
                        + ", ".join(m for _, m in missing[:3]))
    return pairs


def png_name(name: str) -> str:
    """The mask file name of an image: its stem with .png."""
    return str(Path(name).with_suffix(".png"))
