"""Records of older versions of the suite migrate once to the present RunRecord format: what they lack is
filled with what it meant when they were written, their numbers never change, their runs still resume."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmark import config, run_record
from benchmark.data import demo
from benchmark.migrate_records import FORMER_DEFAULTS, migrate
from benchmark.records import REFERENCE_ROOT, RunPaths
from benchmark.run_record import RunRecord, read_run_record
from helpers import record_data
from methods.fixmatch import FixMatch

OLDER = ("teacher_amp", "eval_amp", "generated_data", "val_sizes", "data_root", "test", "per_image", "cpu_model",
         "cpu_cores", "cpu_capability", "bf16_native", "cpu_limits", "filed_as", "tensorboard")
"""Fields the suite's first records did not have."""


def _old_run(root: Path, seed: int, **fields: object) -> RunPaths:
    """A run folder as an older version wrote it: config.yaml, a checkpoint, a record without ``OLDER``."""
    paths = RunPaths.of("demo", "demo_1_16", "fixmatch", seed, None, root)
    paths.folder.mkdir(parents=True)
    resolved = config.resolve("demo", FixMatch.Params)
    paths.config.write_text(json.dumps({**resolved.as_dict(), "preset": "demo", "sources": []}))
    data = record_data(method="fixmatch", seed=seed, amp="bf16", config_digest="old", last_iou=[0.1, 0.9],
                       **fields)
    paths.record.write_text(json.dumps({k: v for k, v in data.items() if k not in OLDER or k in fields}))
    torch.save({"format": 1, "config_digest": "old", "iteration": 3}, paths.checkpoint)
    return paths


def test_an_old_record_is_refused_with_the_migration_command(tmp_path: Path) -> None:
    import pytest

    from benchmark.errors import UserError

    paths = _old_run(tmp_path, 0)
    with pytest.raises(UserError, match=r"lacks bf16_native, cpu_capability.*: run python -m benchmark.migrate_records"):
        read_run_record(paths.record)


def test_migration_fills_what_old_records_meant_and_keeps_their_numbers(tmp_path: Path) -> None:
    sized = _old_run(tmp_path, 0, val_sizes={"112x112": 320})
    plain = _old_run(tmp_path, 1)
    before = json.loads(plain.record.read_text())
    assert migrate(tmp_path) == (2, 2, 2)
    record = read_run_record(plain.record)
    assert record.amp == record.teacher_amp == "bf16" and record.eval_amp == "off"
    assert record.generated_data == demo.manifest_of(FORMER_DEFAULTS)
    assert demo.variant(record.generated_data) == "max_distractors=2, max_clutter=3, max_noise=0.06, max_blur=1.0"
    assert record.val_sizes == {"112x112": 320} == read_run_record(sized.record).val_sizes  # the same images'
    assert record.cpu_model is None and record.test is None
    assert (record.last_miou, record.best_miou, record.last_iou) == (before["last_miou"], before["best_miou"],
                                                                    before["last_iou"])
    digest = config.resolve("demo", FixMatch.Params).digest()
    assert record.config_digest == digest != "old"
    assert torch.load(plain.checkpoint, weights_only=True)["config_digest"] == digest  # the run resumes
    assert migrate(tmp_path) == (2, 0, 0)  # once


def test_every_committed_reference_record_is_a_run_record() -> None:
    paths = sorted((REFERENCE_ROOT / "runs").glob("**/record.json"))
    assert len(paths) > 100
    records = [read_run_record(path) for path in paths]
    assert all(isinstance(record, RunRecord) and (record.finished or record.has_diverged) for record in records)
    assert all(record.generated_data is not None for record in records if record.dataset == "demo")
    fields = run_record.dataclasses.fields(RunRecord)
    keys = list(json.loads(paths[0].read_text()))
    required = [f.name for f in fields if f.default is run_record.dataclasses.MISSING]
    assert keys == [f.name for f in fields if f.name in keys] and set(required) <= set(keys)  # defaulted may be absent
