"""Reading image/mask pairs of a split from a dataset root, as torch datasets.

Training datasets are indexed by ``(index, sample_seed)`` pairs from :mod:`benchmark.data.sampling`:
the seed drives that sample's random geometry, so a sample's crop is the same whatever the number of
workers and after a resume.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from benchmark.config import DataConfig
from benchmark.data.layouts import mask_variant
from benchmark.data.splits import Sample
from benchmark.data.transforms import Geometry
from benchmark.errors import DataError


def label_table(label_map: dict, reduce_zero_label: bool = False, ignore_index: int = 255) -> np.ndarray:
    """A 256-entry lookup table from raw mask values to labels: identity, or ADE20K's shift (0 ignored,
    k -> k - 1), then the explicit ``label_map`` entries."""
    table = np.arange(256, dtype=np.int64)
    if reduce_zero_label:
        table = np.where(table == 0, ignore_index, table - 1)
        table[ignore_index] = ignore_index
    for raw, label in label_map.items():
        table[int(raw)] = int(label)
    return table


def colour_labels(rgb: np.ndarray, colours: list, ignore_colours: list, ignore_index: int) -> tuple[np.ndarray, list]:
    """An H x W x 3 colour mask as H x W labels (class ``k`` where the pixel has ``colours[k]``,
    ``ignore_index`` for the ignore colours), and the colours found that are neither."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    known = {(r << 16) | (g << 8) | b: label for label, (r, g, b) in enumerate(colours)}
    known.update({(r << 16) | (g << 8) | b: ignore_index for r, g, b in ignore_colours})
    found, inverse = np.unique(codes, return_inverse=True)
    unknown = [(int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255) for c in found if int(c) not in known]
    lookup = np.array([known.get(int(c), ignore_index) for c in found], dtype=np.int64)
    return lookup[inverse].reshape(codes.shape), unknown


class PairReader:
    """Decodes the images and masks of a list of samples under ``root`` and checks them.

    A listed mask that is absent is read from its standard variant when the data set has one (VOC's
    SegmentationClassAug, Cityscapes' labelIds mapped to train ids): see ``layouts.mask_variant``.
    """

    def __init__(self, root: Path, samples: list[Sample], data: DataConfig) -> None:
        self.root = Path(root)
        self.samples = samples
        self.dataset, self.num_classes, self.ignore_index = data.dataset, data.num_classes, data.ignore_index
        self.table = label_table(data.label_map, data.reduce_zero_label, data.ignore_index)
        self.colours, self.ignore_colours = list(data.mask_colors), list(data.ignore_colors)

    def __len__(self) -> int:
        return len(self.samples)

    def _open(self, path: Path, decode: bool = True) -> Image.Image:
        try:
            picture = Image.open(path)
            if decode:
                picture.load()
            return picture
        except FileNotFoundError:
            raise DataError(f"{path} does not exist (listed in the split); check --data-root or run "
                            "'python -m benchmark splits check'", "missing file", path) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise DataError(f"{path} is not a readable image ({error}); replace the file or remove its line "
                            "from the split", "unreadable image", path) from None

    def sizes(self, most: int = 3) -> dict[str, int]:
        """How many images have each size ("WxH"), the ``most`` common sizes first and the rest counted as
        "other": the resolution a run record states. Reads the files' headers only."""
        counts = Counter()
        for image, _ in self.samples:
            with self._open(self.root / image, decode=False) as picture:
                counts[f"{picture.width}x{picture.height}"] += 1
        common = dict(counts.most_common(most))
        rest = sum(counts.values()) - sum(common.values())
        return {**common, "other": rest} if rest else common

    def image(self, index: int) -> np.ndarray:
        """H x W x 3 uint8 RGB image of sample ``index``."""
        return np.asarray(self._open(self.root / self.samples[index][0]).convert("RGB"))

    def mask(self, index: int) -> np.ndarray:
        """H x W int64 label mask of sample ``index``, with the data set's label map applied."""
        relative = self.samples[index][1]
        if relative is None:
            raise DataError(f"sample {self.samples[index][0]} has no mask but is used as labeled", "no mask",
                            self.samples[index][0])
        path, table = self.root / relative, self.table
        if not path.is_file():
            variant = mask_variant(self.dataset, self.root, relative)
            if variant is not None:
                path, table = variant[0], self.table if variant[1] is None else variant[1]
        picture = self._open(path)
        if self.colours:
            mask, unknown = colour_labels(np.asarray(picture.convert("RGB")), self.colours, self.ignore_colours,
                                          self.ignore_index)
            if unknown:
                raise DataError(f"{path} holds colours {unknown[:5]} that are neither a class's (data set "
                                "palette) nor ignore_colors; add them to the data set file",
                                "mask colours unknown", path)
            return mask
        if picture.mode not in ("L", "P", "I", "I;16"):
            raise DataError(f"{path} has mode {picture.mode}: a mask must be a single-channel (grayscale or "
                            "palette) PNG of class ids", "mask not single-channel", path)
        raw = np.asarray(picture).astype(np.int64)
        if raw.max(initial=0) > 255 or raw.min(initial=0) < 0:
            raise DataError(f"{path} holds values outside 0..255; masks are 8-bit class ids",
                            "mask values out of range", path)
        mask = table[raw]
        bad = (mask >= self.num_classes) & (mask != self.ignore_index)
        if bad.any():
            values = sorted(set(np.unique(raw[bad]).tolist()))
            raise DataError(f"{path} holds mask values {values[:10]} outside the {self.num_classes} classes and "
                            f"the ignore value {self.ignore_index}; fix data.num_classes or data.label_map",
                            "mask values out of range", path)
        return mask

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image and mask of sample ``index``, checked to be the same size."""
        image, mask = self.image(index), self.mask(index)
        if image.shape[:2] != mask.shape:
            path = self.root / self.samples[index][0]
            raise DataError(f"{path} is {image.shape[1]}x{image.shape[0]} but its mask {self.samples[index][1]} "
                            f"is {mask.shape[1]}x{mask.shape[0]}", "image and mask sizes differ", path)
        return image, mask


def to_chw(image: np.ndarray) -> Tensor:
    """H x W x 3 uint8 array to a 3 x H x W uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class TrainSet(Dataset):
    """Training samples after the random geometry.

    Labeled: ``{"image": uint8 3xHxW, "mask": int64 HxW}``. Unlabeled: ``{"image": uint8 3xHxW,
    "ignore": bool HxW}``, True where the crop fell on padding.
    """

    def __init__(self, reader: PairReader, geometry: Geometry, labeled: bool) -> None:
        self.reader, self.geometry, self.labeled = reader, geometry, labeled

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        index, seed = key
        if self.labeled:
            image, mask = self.reader.pair(index)
            image_t, mask_t = self.geometry(to_chw(image), torch.from_numpy(mask), seed)
            return {"image": image_t, "mask": mask_t}
        image_t, pad = self.geometry(to_chw(self.reader.image(index)), None, seed)
        return {"image": image_t, "ignore": pad}


class ValSet(Dataset):
    """Val images at their original size: ``{"image": uint8 3xHxW, "mask": int64 HxW}``."""

    def __init__(self, reader: PairReader) -> None:
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image, mask = self.reader.pair(index)
        return {"image": to_chw(image), "mask": torch.from_numpy(mask)}
