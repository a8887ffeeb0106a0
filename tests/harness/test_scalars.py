"""TensorBoard scalars: written when tensorboard is installed, nothing (and no error) without it."""

from __future__ import annotations

import builtins
import json

import pytest

from benchmark import cli
from benchmark.records import RunPaths
from benchmark.scalars import Scalars


def test_without_tensorboard_a_run_writes_no_events_and_records_none(env, tiny_config, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: object, **kwargs: object):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert Scalars(env, enabled=True).writer is None
    assert cli.main(["run", "--quiet", "--method", "supervised", "--split", "demo_1_4", "--config", str(tiny_config)]) == 0
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    assert json.loads(paths.record.read_text())["tensorboard"] is None and not (paths.folder / "tensorboard").exists()


def test_with_tensorboard_every_part_the_lr_and_the_miou_are_logged(env, tiny_config) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert cli.main(["run", "--quiet", "--method", "fixmatch", "--split", "demo_1_4", "--config", str(tiny_config)]) == 0
    paths = RunPaths.of("demo", "demo_1_4", "fixmatch", 0)
    record = json.loads(paths.record.read_text())
    events = EventAccumulator(record["tensorboard"])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_x", "train/loss_u", "train/mask_ratio", "train/lr", "val/miou",
            "train/images_per_second"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [round(e.value, 4) for e in events.Scalars("val/miou")] == [
        round(100 * line["miou"], 4) for line in map(json.loads, paths.metrics.read_text().splitlines())]
