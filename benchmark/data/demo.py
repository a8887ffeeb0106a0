"""The embedded demo data set: procedurally generated scenes, no download, deterministic by seed.

A pixel's class is the *shape* of the object it belongs to (disc, square, triangle, ring, cross, star),
never its colour: every object, whatever its class, draws its colour and shading from one shared pool,
and the background's textures use the same colours. Scenes hold one to three objects at varied scale
and rotation, which occlude each other, over a textured background, with light noise and blur; telling
a partly hidden disc from a ring or a square from a cross takes the whole shape.

The options of ``DemoSpec`` make harder variants: distractor shapes labelled background (bars,
crescents, half-discs), clutter lines, more noise and blur. Until December 2026 the defaults held all
of these; every run record names the options its data was made with (``generated_data``).

Image ``i`` of a split depends only on (seed, split, i) and the options, so any subset can be
regenerated exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from benchmark.errors import UserError

CLASS_NAMES = ["background", "disc", "square", "triangle", "ring", "cross", "star"]
GENERATOR_VERSION = 2
MANIFEST = "demo.json"

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    inside = np.ones(u.shape, dtype=bool)
    for angle in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        inside &= u * np.cos(angle) + v * np.sin(angle) <= 0.6
    return inside


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rho2 = u * u + v * v
    return (rho2 <= 1.0) & (rho2 >= 0.5 ** 2)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    phase = (np.arctan2(v, u) * 5 / (2 * np.pi)) % 1.0
    limit = 0.45 + 0.7 * np.abs(2 * phase - 1)
    return np.sqrt(u * u + v * v) <= limit


def _bar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= 1.1) & (np.abs(v) <= 0.2)


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + v * v > 0.75 ** 2)


def _half_disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u * u + v * v <= 1.0) & (v >= 0)


FOREGROUND: list[Shape] = [_disc, _square, _triangle, _ring, _cross, _star]
DISTRACTORS: list[Shape] = [_bar, _crescent, _half_disc]


@dataclass(frozen=True)
class DemoSpec:
    """What to generate: the seed, the pool sizes, the image side and how hard the scenes are. The
    defaults are the demo data set; other values make variants of it (each named by its manifest, which
    a run's record holds), e.g. to look for a data set on which a short schedule shows more."""

    seed: int = 0
    train: int = 2048
    val: int = 320
    size: int = 112
    radius_min: float = 0.16
    """Smallest object radius, as a fraction of the image side."""
    radius_max: float = 0.32
    max_objects: int = 3
    """Labelled shapes per scene: 1 to this many."""
    max_distractors: int = 0
    """Background shapes (bar, crescent, half-disc) per scene: 0 to this many."""
    max_clutter: int = 0
    """Background line segments per scene: 0 to this many."""
    max_noise: float = 0.02
    """Pixel noise std, drawn from 0.01 to this."""
    max_blur: float = 0.3
    """Gaussian blur radius in pixels, drawn from 0 to this."""
    object_contrast: float = 0.3
    """How far an object's second colour lies from its first (0: one flat colour)."""


def _weight(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, kinds: tuple[str, ...]) -> np.ndarray:
    """How much of the second colour each pixel takes (H x W x 1 in [0, 1]), for a random pattern."""
    size = yy.shape[0]
    kind = kinds[rng.integers(len(kinds))]
    angle = rng.uniform(0, np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == "solid":
        weight = np.zeros_like(yy)
    elif kind == "stripes":
        weight = (np.sin(2 * np.pi * along / rng.uniform(4, 14)) > 0).astype(np.float32)
    elif kind == "checker":
        period = rng.uniform(4, 12)
        across = -xx * np.sin(angle) + yy * np.cos(angle)
        weight = ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float32)
    elif kind == "gradient":
        weight = np.clip(along / size + 0.5, 0, 1)
    else:
        cells = int(rng.integers(3, 9))
        coarse = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        weight = np.asarray(coarse.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    return weight[..., None]


BACKGROUND_PATTERNS = ("stripes", "checker", "gradient", "blotches")
OBJECT_PATTERNS = ("solid", "solid", "gradient")


def _paint(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, kinds: tuple[str, ...],
           contrast: float) -> np.ndarray:
    """An H x W x 3 image in [0, 1]: two colours of the shared pool mixed by a random pattern; the
    second colour lies within ``contrast`` of the first."""
    first = rng.random(3)
    second = np.clip(first + rng.uniform(-contrast, contrast, 3), 0, 1)
    weight = _weight(rng, yy, xx, kinds)
    return first * (1 - weight) + second * weight


def _place(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, shape: Shape, spec: DemoSpec) -> np.ndarray:
    """The pixels covered by ``shape`` at a random position, scale, rotation and slight stretch."""
    size = yy.shape[0]
    radius = rng.uniform(spec.radius_min, spec.radius_max) * size
    cy, cx = rng.uniform(0.1, 0.9, size=2) * size
    angle = rng.uniform(0, 2 * np.pi)
    stretch = rng.uniform(0.85, 1.15)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / (radius * stretch)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) * stretch / radius
    return shape(u, v)


def _clutter(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Thin random line segments (background)."""
    size = yy.shape[0]
    start, end = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
    direction = end - start
    length = max(np.linalg.norm(direction), 1.0)
    t = np.clip(((xx - start[0]) * direction[0] + (yy - start[1]) * direction[1]) / length ** 2, 0, 1)
    distance = np.hypot(xx - start[0] - t * direction[0], yy - start[1] - t * direction[1])
    return distance <= rng.uniform(0.5, 1.5)


def render(spec: DemoSpec, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of ``split``: (H x W x 3 uint8 image, H x W uint8 class mask)."""
    split_key = {"train": 0, "val": 1}[split]
    rng = np.random.default_rng([GENERATOR_VERSION, spec.seed, split_key, index])
    size = spec.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = _paint(rng, yy, xx, BACKGROUND_PATTERNS, contrast=1.0)
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(0, spec.max_clutter + 1)):
        image[_clutter(rng, yy, xx)] = rng.random(3)
    objects = [(1 + int(c), FOREGROUND[c])
               for c in rng.integers(0, len(FOREGROUND), rng.integers(1, spec.max_objects + 1))]
    objects += [(0, DISTRACTORS[d])
                for d in rng.integers(0, len(DISTRACTORS), rng.integers(0, spec.max_distractors + 1))]
    for order in rng.permutation(len(objects)):
        label, shape = objects[order]
        covered = _place(rng, yy, xx, shape, spec)
        image[covered] = _paint(rng, yy, xx, OBJECT_PATTERNS, contrast=spec.object_contrast)[covered]
        mask[covered] = label
    image = image + rng.normal(0, rng.uniform(0.01, spec.max_noise), image.shape)
    picture = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    picture = picture.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.0, spec.max_blur))))
    return np.asarray(picture), mask


def image_path(split: str, index: int) -> str:
    """Path of an image relative to the demo root."""
    return f"images/{split}/{index:05d}.png"


def mask_path(split: str, index: int) -> str:
    """Path of a mask relative to the demo root."""
    return f"masks/{split}/{index:05d}.png"


def default_root(spec: DemoSpec = DemoSpec()) -> Path:
    """Where the demo data set is generated when the user names no root: the user's cache folder, in a
    folder named by a digest of the manifest, so that data generated with other defaults is never reused."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(json.dumps(manifest_of(spec), sort_keys=True).encode()).hexdigest()[:8]
    return cache / "semiseg-bench" / f"demo-v{GENERATOR_VERSION}-seed{spec.seed}-{digest}"


def generate(root: Path, spec: DemoSpec) -> None:
    """Write the data set under ``root`` (into a temporary folder first, renamed when complete)."""
    root = Path(root)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, count in (("train", spec.train), ("val", spec.val)):
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "masks" / split).mkdir(parents=True)
        for index in range(count):
            image, mask = render(spec, split, index)
            Image.fromarray(image).save(tmp / image_path(split, index))
            Image.fromarray(mask).save(tmp / mask_path(split, index))
    manifest = manifest_of(spec)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        os.replace(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if read_manifest(root) != manifest:  # another process finished first with the same data
            raise


def spec_with(changes: list[str]) -> DemoSpec:
    """The default DemoSpec with ``key=value`` changes (values of the field's type); a bad key or value is
    the user's mistake and names the fields."""
    kinds = {f.name: f.type for f in fields(DemoSpec)}
    values = {}
    for change in changes:
        key, sep, text = change.partition("=")
        if not sep or key not in kinds:
            raise UserError(f"{change!r} is not KEY=VALUE with KEY one of {', '.join(kinds)}")
        try:
            values[key] = int(text) if kinds[key] == "int" else float(text)
        except ValueError:
            raise UserError(f"{key}={text}: not a number of type {kinds[key]}") from None
        least = {"size": 16, "train": 1, "val": 1, "max_objects": 1, "max_noise": 0.01}.get(key, 0)
        if values[key] < least:
            raise UserError(f"{key}={text}: must be at least {least}")
    spec = replace(DemoSpec(), **values)
    if spec.radius_min > spec.radius_max:
        raise UserError(f"radius_min={spec.radius_min} is above radius_max={spec.radius_max}")
    return spec


def manifest_of(spec: DemoSpec) -> dict:
    """What a data set generated per ``spec`` says of itself (its ``demo.json``, and a run record's
    ``generated_data``)."""
    return {"generator_version": GENERATOR_VERSION, **asdict(spec), "classes": CLASS_NAMES}


def differences(manifest: dict | None, spec: DemoSpec = DemoSpec()) -> list[tuple[str, Any, Any]]:
    """(option, value in ``manifest``, value in ``spec``) for each option, the generator version included,
    in which generated data differs from ``spec`` (no manifest: every option differs)."""
    made = manifest or {}
    return [(key, made.get(key), value) for key, value in manifest_of(spec).items()
            if key != "classes" and made.get(key) != value]


def variant(manifest: dict | None) -> str | None:
    """The options in which generated data differs from the demo's defaults ("max_distractors=0, ..."),
    or None for the default data set: what keeps runs on other data from being averaged with the rest."""
    return ", ".join(f"{key}={value}" for key, value, _ in differences(manifest)) or None


def read_manifest(root: Path) -> dict | None:
    """The manifest of a generated demo root, or None when the folder holds no complete data set."""
    try:
        return json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def ensure(root: Path, spec: DemoSpec | None = None) -> Path:
    """Generate demo data at ``root`` unless a complete data set is there already: per ``spec``, or the
    defaults when it is None. With a spec, data already there must have been generated with it."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is not None:
        if manifest.get("generator_version") != GENERATOR_VERSION:
            raise UserError(f"{root} holds demo data of generator version {manifest.get('generator_version')}, "
                            f"this code makes version {GENERATOR_VERSION}; delete the folder to regenerate it")
        differ = [f"{key}={made} (not {value})" for key, made, value in differences(manifest, spec)] if spec else []
        if differ:
            raise UserError(f"{root} holds demo data generated with other options ({', '.join(differ)}); "
                            "choose another folder")
        return root
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty and holds no demo data set ({MANIFEST} missing); "
                        "pass an empty or new folder as --data-root for the demo data")
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists():
        root.rmdir()
    generate(root, spec or DemoSpec())
    return root
