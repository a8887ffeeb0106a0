"""Validation of a split against its data root: every problem found, grouped and counted.

Quick checks (before every run): duplicates, overlaps, val and test leakage and files present, in every
list (labeled, unlabeled, val, test). The full check
(``python -m benchmark splits check``) also decodes every image and mask: unreadable files, masks with
values outside the classes and the ignore index, and image/mask size mismatches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from benchmark.config import DataConfig
from benchmark.data.datasets import PairReader
from benchmark.data.layouts import mask_variant
from benchmark.data.splits import Split, structure_problems
from benchmark.errors import DataError


def missing_files(split: Split, root: Path) -> list[str]:
    """One problem per list whose paths do not all exist under ``root`` (standard mask variants count
    as present)."""
    problems = []
    for kind, samples in split.lists():
        missing = [image for image, _ in samples if not (root / image).is_file()]
        missing += [mask for _, mask in samples if mask and not (root / mask).is_file()
                    and mask_variant(split.dataset, root, mask) is None]
        if missing:
            problems.append(f"{kind}: {len(missing)} files missing under {root}, e.g. {', '.join(missing[:3])}")
    return problems


def quick_problems(split: Split, root: Path) -> list[str]:
    """The problems checked before every run."""
    return structure_problems(split) + missing_files(split, root)


def full_problems(split: Split, root: Path, data: DataConfig,
                  advance: Callable[[], None] = lambda: None) -> list[str]:
    """Every problem of the split: structure, and every file decoded and checked. ``advance`` is
    called once per sample (progress)."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for kind, samples in split.lists():
        reader = PairReader(root, samples, data)
        for index, (_, mask) in enumerate(samples):
            try:
                if mask is not None:
                    reader.pair(index)
                else:
                    reader.image(index)
            except DataError as error:
                found[(kind, error.kind)].append(error.path)
            advance()
    problems = structure_problems(split)
    for (kind, what), paths in sorted(found.items()):
        problems.append(f"{kind}: {what}: {len(paths)} files, e.g. {', '.join(paths[:3])}")
    return problems
