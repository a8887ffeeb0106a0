"""Your own data set, described in one small YAML file.

The file names the classes, where images and masks are (folders paired by file name, or a list of
``<image> <mask>`` lines), how masks encode classes (class ids with an ignore value, or one RGB colour
per class), an optional val list, an optional held-out test list (val then selects, test reports), and
the preset it derives from. ``datasets add FILE`` registers it
(a copy beside its splits, ``splits/<name>/dataset.yaml``); ``--dataset-file FILE`` reads it for one
command. From then on it is a data set like the built-in ones: ``splits make`` draws its splits, and
every method runs on it with the derived preset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from benchmark.atomic import write_text
from benchmark.data.folders import paired, png_name
from benchmark.data.splits import read_list, splits_root
from benchmark.errors import UserError
from benchmark.settings import build, setting
from benchmark.yaml_files import presets, read_yaml, shipped_preset

FILE_NAME = "dataset.yaml"
BUILT_IN = ("demo", "voc", "cityscapes", "coco", "camvid", "ade20k")
NAME = re.compile(r"[a-z][a-z0-9]{0,31}")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

@dataclass
class DatasetFile:
    """What a data set file may say; paths are relative to ``root``, which is relative to the file."""

    name: str = setting("", "data set name (lower-case letters and digits): splits/<name>/, split names <name>_1_8")
    classes: list[str] = setting([], "class names in label order, background included where there is one")
    base_preset: str = setting("camvid_cpu", "the preset whose model, optimisation, schedule and evaluation runs use")
    root: str | None = setting(None, "data root, relative to this file; --data-root and BENCHMARK_<NAME>_ROOT win")
    images: str | None = setting(None, "folder of training images; each pairs with the mask of the same stem")
    masks: str | None = setting(None, "folder of training masks (.png, same stem as the image)")
    train_list: str | None = setting(None, "instead of images/masks: a file of '<image> <mask>' lines")
    val_images: str | None = setting(None, "folder of val images (with val_masks)")
    val_masks: str | None = setting(None, "folder of val masks")
    val_list: str | None = setting(None, "instead of val_images/val_masks: a file of '<image> <mask>' lines")
    test_images: str | None = setting(None, "folder of held-out test images (with test_masks): runs report on them")
    test_masks: str | None = setting(None, "folder of test masks")
    test_list: str | None = setting(None, "instead of test_images/test_masks: a file of '<image> <mask>' lines")
    val_fraction: float = setting(0.1, "without a val set: this share of the pool is held out as val, seeded")
    mask_format: Literal["index", "palette"] = setting(
        "index", "'index': single-channel PNG of class ids; 'palette': RGB masks, one colour per class")
    ignore_value: int = setting(255, "index masks: the value of pixels that are never supervised nor evaluated")
    zero_is_void: bool = setting(False, "index masks: 0 marks unlabeled pixels and class k is stored as k + 1 "
                                        "(ADE20K's convention)")
    palette: list[tuple[int, int, int]] = setting([], "palette masks: the RGB colour of each class, in label order")
    ignore_colors: list[tuple[int, int, int]] = setting([], "palette masks: colours of ignored pixels")


@dataclass
class Dataset:
    """A validated data set file and where it was read."""

    spec: DatasetFile
    path: Path

    @property
    def root(self) -> Path | None:
        """The data root the file names, resolved against the file's folder."""
        return None if self.spec.root is None else (self.path.parent / self.spec.root).expanduser().resolve()

    def preset(self) -> dict[str, Any]:
        """The derived preset: the base preset with this data set's data section."""
        preset = shipped_preset(self.spec.base_preset) or {}
        spec = self.spec
        data = {**preset.get("data", {}), "dataset": spec.name, "num_classes": len(spec.classes),
                "class_names": list(spec.classes), "ignore_index": 255, "reduce_zero_label": spec.zero_is_void,
                "label_map": {}, "mask_colors": [], "ignore_colors": []}
        if spec.mask_format == "index" and spec.ignore_value != 255:
            data["label_map"] = {spec.ignore_value: 255}
        if spec.mask_format == "palette":
            data["mask_colors"] = [list(c) for c in spec.palette]
            data["ignore_colors"] = [list(c) for c in spec.ignore_colors]
        if self.root is not None:
            data["root"] = str(self.root)
        return {**preset, "data": data}

    def layout(self) -> str:
        """What the root must hold, for messages."""
        spec = self.spec
        train = spec.train_list or f"{spec.images}/ and {spec.masks}/"
        val = spec.val_list or (f"{spec.val_images}/ and {spec.val_masks}/" if spec.val_images else None)
        test = self.test_layout()
        return f"{train}{' and ' + val if val else ''}{', test ' + test if test else ''} (from {self.path})"

    def test_layout(self) -> str | None:
        """Where the test images are, in words; None without a test set."""
        spec = self.spec
        return spec.test_list or (f"{spec.test_images}/ and {spec.test_masks}/" if spec.test_images else None)

    def required(self) -> list[str]:
        """Folders and files that must exist under the root."""
        spec = self.spec
        names = [spec.images, spec.masks, spec.train_list, spec.val_images, spec.val_masks, spec.val_list,
                 spec.test_images, spec.test_masks, spec.test_list]
        return [name for name in names if name]

    def test_list(self, root: Path) -> list[tuple[str, str | None]]:
        """The held-out test images under ``root`` (empty without a test set)."""

        spec = self.spec
        if spec.test_list:
            return read_list(root / spec.test_list, need_mask=True)
        return _paired(root, spec.test_images, spec.test_masks) if spec.test_images else []

    def pool_and_val(self, root: Path, seed: int = 0) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]], str]:
        """(training pool, val list, how the val list was made) under ``root``."""

        spec = self.spec
        pool = (read_list(root / spec.train_list, need_mask=True) if spec.train_list
                else _paired(root, spec.images, spec.masks))
        if spec.val_list:
            return pool, read_list(root / spec.val_list, need_mask=True), f"val list {spec.val_list}"
        if spec.val_images:
            return pool, _paired(root, spec.val_images, spec.val_masks), f"val folders {spec.val_images}"
        count = max(1, round(len(pool) * spec.val_fraction))
        if count >= len(pool):
            raise UserError(f"{self.path}: {len(pool)} images are too few to hold out {count} for val; give a val "
                            "list or val_images/val_masks")
        held = set(np.random.default_rng(seed).permutation(len(pool))[:count].tolist())
        return ([s for i, s in enumerate(pool) if i not in held], [s for i, s in enumerate(pool) if i in held],
                f"{count} of {len(pool)} images held out as val (seed {seed}, val_fraction {spec.val_fraction})")


_loaded: dict[str, Dataset] = {}
"""Data sets read with --dataset-file in this process, by name."""


def _paired(root: Path, images: str | None, masks: str | None) -> list[tuple[str, str | None]]:
    """Every image under ``root/images`` with the mask of the same stem under ``root/masks``."""
    pairs = paired(root, str(images), str(masks), IMAGE_SUFFIXES, png_name)
    if not pairs:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root / str(images)}")
    return pairs


def read(path: Path) -> Dataset:
    """Read and validate a data set file; every problem is one line naming the file."""
    path = Path(path).expanduser().resolve()
    data = read_yaml(path)
    try:
        spec = build(DatasetFile, data)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    problems = []
    if not NAME.fullmatch(spec.name):
        problems.append(f"name {spec.name!r} must be lower-case letters and digits, starting with a letter")
    elif spec.name in BUILT_IN:
        problems.append(f"name {spec.name!r} is a built-in data set; pick another")
    if not spec.classes or len(spec.classes) > 255:
        problems.append("classes must list between 1 and 255 class names")
    if bool(spec.train_list) == bool(spec.images or spec.masks):
        problems.append("give either images and masks (folders) or train_list")
    elif not spec.train_list and not (spec.images and spec.masks):
        problems.append("images and masks go together")
    if bool(spec.val_images) != bool(spec.val_masks):
        problems.append("val_images and val_masks go together")
    if spec.val_list and spec.val_images:
        problems.append("give val_list or val_images/val_masks, not both")
    if bool(spec.test_images) != bool(spec.test_masks):
        problems.append("test_images and test_masks go together")
    if spec.test_list and spec.test_images:
        problems.append("give test_list or test_images/test_masks, not both")
    if not 0 < spec.val_fraction < 1:
        problems.append("val_fraction must lie in (0, 1)")
    if spec.mask_format == "palette" and len(spec.palette) != len(spec.classes):
        problems.append(f"palette masks need one colour per class: {len(spec.palette)} colours for "
                        f"{len(spec.classes)} classes")
    if spec.mask_format == "index" and (spec.palette or spec.ignore_colors):
        problems.append("palette and ignore_colors are for mask_format: palette")
    if not 0 <= spec.ignore_value <= 255:
        problems.append("ignore_value must lie in 0..255")
    offset = 1 if spec.zero_is_void else 0
    if spec.mask_format == "index" and offset <= spec.ignore_value < len(spec.classes) + offset:
        problems.append(f"ignore_value {spec.ignore_value} is a class id (there are {len(spec.classes)} classes)")
    if spec.mask_format == "palette" and spec.zero_is_void:
        problems.append("zero_is_void is for index masks")
    colours = [tuple(c) for c in [*spec.palette, *spec.ignore_colors]]
    if any(not 0 <= v <= 255 for c in colours for v in c):
        problems.append("colours are [r, g, b] with values in 0..255")
    if len(set(colours)) != len(colours):
        problems.append("a colour appears twice in palette/ignore_colors")
    if spec.base_preset not in presets():
        problems.append(f"base_preset {spec.base_preset!r} is not one of {', '.join(presets())}")
    if problems:
        raise UserError(f"{path}: " + "; ".join(problems))
    return Dataset(spec, path)


def registered_path(name: str) -> Path:
    """Where ``datasets add`` keeps the file of data set ``name``."""

    return splits_root() / name / FILE_NAME


def use(path: Path) -> Dataset:
    """Read a data set file for this process (``--dataset-file``)."""
    dataset = read(path)
    _loaded[dataset.spec.name] = dataset
    return dataset


def find(name: str) -> Dataset | None:
    """The data set ``name`` read in this process or registered, else None."""
    if name in _loaded:
        return _loaded[name]
    path = registered_path(name)
    return read(path) if path.is_file() else None


def registered() -> list[str]:
    """Names of the registered data sets."""

    return sorted(p.parent.name for p in splits_root().glob(f"*/{FILE_NAME}"))


def add(path: Path) -> tuple[Dataset, Path]:
    """Register the data set file ``path`` (a copy with its root made absolute)."""
    dataset = read(path)
    data = read_yaml(dataset.path)
    if dataset.root is not None:
        data["root"] = str(dataset.root)
    target = registered_path(dataset.spec.name)
    write_text(target, f"# registered from {dataset.path}\n" + yaml.safe_dump(data, sort_keys=False))
    return dataset, target


EXAMPLE_PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                   (145, 30, 180)]
"""Colours of the example's classes (background, disc, square, triangle, ring, cross, star)."""


def write_example(folder: Path, train: int = 96, val: int = 24, test: int = 0) -> Path:
    """A small data set laid out as a user's might be, from demo scenes: JPEG images and RGB colour masks
    in photos/ and labels/, val images in val/photos and val/labels, ``test`` held-out images (other
    scenes than val's) in test/photos and test/labels, and its file ``shapes.yaml``; returns the file."""
    from PIL import Image

    from benchmark.data import demo

    folder = Path(folder)
    colours = np.array(EXAMPLE_PALETTE, dtype=np.uint8)
    for split, count, first, prefix in (("train", train, 0, ""), ("val", val, 0, "val/"), ("val", test, val, "test/")):
        (folder / prefix / "photos").mkdir(parents=True, exist_ok=True)
        (folder / prefix / "labels").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = demo.render(demo.DemoSpec(seed=7), split, first + index)
            Image.fromarray(image).save(folder / prefix / "photos" / f"scene{index:04d}.jpg", quality=95)
            Image.fromarray(colours[mask]).save(folder / prefix / "labels" / f"scene{index:04d}.png")
    spec = {"name": "shapes", "classes": list(demo.CLASS_NAMES), "base_preset": "demo", "root": ".",
            "images": "photos", "masks": "labels", "val_images": "val/photos", "val_masks": "val/labels",
            "mask_format": "palette", "palette": [list(c) for c in EXAMPLE_PALETTE]}
    if test:
        spec.update(test_images="test/photos", test_masks="test/labels")
    path = folder / "shapes.yaml"
    write_text(path, "# An example data set file: python -m benchmark datasets add " + str(path) + "\n"
               + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None))
    return path
