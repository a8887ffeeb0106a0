"""Helpers for the tests: the tiny CPU configuration, access to ../shared, made-up run records and a
learnable fixed batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark import config as config_module
from benchmark.method import Batch, Labeled, Unlabeled
from benchmark.records import RunPaths
from benchmark.settings import merge

CHECKOUT = Path(__file__).resolve().parents[1]
"""The checkout the tests run from."""
SHARED = CHECKOUT.parent / "shared"

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


def record_data(**fields: object) -> dict:
    """A finished run record in the present format (every field of ``RunRecord``), with made-up values
    where ``fields`` names none."""
    base = {
        "status": "finished", "method": "supervised", "tag": None, "method_params": {}, "fidelity": "-",
        "dataset": "demo", "split": "demo_1_16", "preset": "demo", "labeled": 128, "unlabeled": 1920, "val": 320,
        "val_sizes": None, "labeled_fraction": 0.0625, "split_sha256": "s", "split_files": {},
        "split_provenance": {}, "data_root": None, "generated_data": None, "seed": 0, "iterations": 100,
        "completed_iterations": 100, "last_miou": 0.5, "last_iou": None, "best_miou": 0.5, "best_iteration": 100,
        "best_iou": None, "class_names": [], "eval": {"mode": "original"}, "per_image": "per_image.npz",
        "test": None, "train_seconds": 10.0, "wall_seconds": 11.0, "data_wait_share": 0.0,
        "images_per_second": 1.0, "tensorboard": None, "peak_memory_mb": 100.0, "world_size": 1,
        "global_batch": {"labeled": 8, "unlabeled": 8}, "per_process_batch": {"labeled": 8, "unlabeled": 8},
        "batchnorm": "per process", "accumulate": 1, "lr": 0.05, "lr_batch_rule": "none", "amp": "off",
        "teacher_amp": "off", "eval_amp": "off", "channels_last": True, "skipped_steps": 0, "determinism": "-",
        "weights": {"source": "file"}, "config_digest": "d", "started": "-", "updated": "-", "torch": "-",
        "torchvision": "-", "python": "-", "platform": "-", "host": "-", "device": "cpu", "device_name": "-",
        "cpu_threads": 2, "cpu_model": None, "cpu_cores": None, "cpu_capability": None, "bf16_native": None,
        "cpu_limits": None, "git_commit": None, "git_dirty": False}
    unknown = set(fields) - set(base) - {"filed_as", "diverged"}
    assert not unknown, f"not record fields: {unknown}"
    return {**base, **fields}


def fake_record(dataset: str, split: str, method: str, seed: int, last: float, best: float, labeled: int,
                fraction: float, status: str = "finished", tag: str | None = None, root: Path | None = None) -> None:
    """A made-up record of a run under ``root`` (default: the results folder) with these figures."""
    path = RunPaths.of(dataset, split, method, seed, tag, root).record
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record_data(
        status=status, dataset=dataset, split=split, method=method, tag=tag, seed=seed, labeled=labeled,
        labeled_fraction=fraction, last_miou=last, best_miou=best, preset=dataset)))


def fixed_batch(n: int = 4, size: int = 48, classes: int = 7) -> Batch:
    """Random images whose labels are a function of the pixel's brightness (learnable in a few steps)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(n, 3, size, size, generator=gen)
    mask = (image.mean(1) * classes).long().clamp_max(classes - 1)
    mask[:, :4] = 255
    ignore = torch.zeros(n, size, size, dtype=torch.bool)
    ignore[:, -5:] = True
    return Batch(Labeled(image, mask),
                 Unlabeled(torch.rand(n, 3, size, size, generator=gen), ignore),
                 Unlabeled(torch.rand(n, 3, size, size, generator=gen), ignore.clone()))
