"""Helpers for the tests: the tiny CPU configuration and access to ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark import config as config_module
from benchmark.settings import merge

SHARED = Path(__file__).resolve().parents[2] / "shared"

TINY = {
    "data": {"crop_size": 48, "batch_size": 4, "unlabeled_batch_size": 4, "workers": 0},
    "model": {"head_channels": 16, "low_level_channels": 8},
    "schedule": {"iters": 4, "eval_every": 2},
    "eval": {"batch_size": 8},
}
"""Overrides of the demo preset that make a training step take a few tens of milliseconds."""


def resolve_tiny(method_cls: type, **extra: object) -> config_module.Resolved:
    """The demo preset with the TINY overrides (and ``extra`` merged in) for ``method_cls``."""
    return config_module.resolve("demo", method_cls.Params, extra=merge(TINY, extra))


def shared_or_skip(relative: str) -> Path:
    """A path under ../shared, or skip the test when the checkout has no shared folder."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is not available (no ../shared beside this checkout)")
    return path
