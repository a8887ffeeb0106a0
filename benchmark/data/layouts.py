"""The training pool and val list of each data set, read from its standard on-disk layout.

``splits make`` draws labeled subsets from the pool; the val list is the data set's official one.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data import demo
from benchmark.data.splits import Sample
from benchmark.errors import UserError


def _demo(root: Path) -> tuple[list[Sample], list[Sample]]:
    manifest = demo.read_manifest(root)
    if manifest is None:
        raise UserError(f"{root} holds no generated demo data set")
    return ([(demo.image_path("train", i), demo.mask_path("train", i)) for i in range(manifest["train"])],
            [(demo.image_path("val", i), demo.mask_path("val", i)) for i in range(manifest["val"])])


POOLS = {"demo": _demo}


def pool_and_val(dataset: str, root: Path) -> tuple[list[Sample], list[Sample]]:
    """(training pool, val list) of ``dataset`` under ``root``."""
    if dataset not in POOLS:
        raise UserError(f"cannot make splits for {dataset!r}: known layouts are {', '.join(sorted(POOLS))}")
    return POOLS[dataset](Path(root))
