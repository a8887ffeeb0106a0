"""Fixtures: a tiny demo data set with its own splits and results folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from benchmark.data import demo, splits
from helpers import TINY

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32 + 8 image demo data set of 64 px."""
    root = tmp_path_factory.mktemp("data") / "demo"
    demo.generate(root, demo.DemoSpec(seed=0, train=32, val=8, size=64))
    return root


@pytest.fixture()
def env(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Splits, results and the demo root in temporary folders, with splits demo_1_4 (8 labeled) and
    demo_full (32) of the tiny data set; returns the temporary folder."""
    monkeypatch.setenv("BENCHMARK_SPLITS", str(tmp_path / "splits"))
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BENCHMARK_DEMO_ROOT", str(tiny_root))
    pool = [(demo.image_path("train", i), demo.mask_path("train", i)) for i in range(32)]
    val = [(demo.image_path("val", i), demo.mask_path("val", i)) for i in range(8)]
    for name, (labeled, unlabeled) in splits.nested_draw(pool, {"demo_1_4": 8, "demo_full": 32}, 0).items():
        splits.write("demo", name, labeled, unlabeled, {"summary": "test fixture"}, val)
    return tmp_path


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    """The TINY overrides as a YAML file for ``--config``."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path
