"""The run record (``record.json``): one finished or running run, written by the trainer, read by
``report``, ``eval``, ``promote`` and ``run``. Its fields are documented here once.

A record that does not hold exactly these fields (one written by an older version of the suite) is
refused with the command that migrates it: ``python -m benchmark.migrate_records RESULTS_DIR``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.atomic import write_json
from benchmark.errors import UserError

MIGRATE = "python -m benchmark.migrate_records"
"""The command that brings records of older versions of the suite to this format."""


@dataclass
class RunRecord:
    """What one run trained, on what, how it scored, what it cost, and where it ran."""

    status: str
    """'running' while it trains (rewritten at every evaluation), 'finished' at its end, 'diverged' when a
    non-finite step stopped it (see ``diverged``)."""
    method: str
    tag: str | None
    """The variant's name (``run --tag``): the run's folder is ``<method>+<tag>``."""
    method_params: dict[str, Any]
    """The method's parameters as resolved (``methods NAME`` documents them)."""
    fidelity: str
    """How the method's class follows its paper or code, in words."""
    dataset: str
    split: str
    preset: str
    labeled: int
    unlabeled: int
    val: int
    """Number of val images."""
    val_sizes: dict[str, int] | None
    """'WxH' -> number of val images of that size."""
    labeled_fraction: float
    split_sha256: str
    split_files: dict[str, str]
    """sha256 of each file of the split."""
    split_provenance: dict[str, Any]
    data_root: str | None
    generated_data: dict[str, Any] | None
    """For the demo data set: the generator's options the images were made with (its manifest)."""
    seed: int
    iterations: int
    """The schedule's length."""
    completed_iterations: int
    last_miou: float | None
    """mIoU (0-1) of the last evaluation on val."""
    last_iou: list[float] | None
    """Per-class IoU of the last evaluation on val, in ``class_names`` order."""
    best_miou: float | None
    """Highest val mIoU of the run's evaluations (its network is best.pt)."""
    best_iteration: int | None
    best_iou: list[float] | None
    class_names: list[str]
    eval: dict[str, Any]
    """The evaluation protocol (mode, and window and stride for the sliding window)."""
    per_image: str | None
    """File of the per-image intersections and unions on val (last and best), beside the record."""
    test: dict[str, Any] | None
    """For a split with a test list: list name and sha256 from the start; at the run's end images, sizes,
    last_/best_ miou, iou and iteration (the last and the best-on-val networks, evaluated once), per_image
    file and seconds. None for a split without one."""
    train_seconds: float
    wall_seconds: float | None
    data_wait_share: float | None
    """Share of the training time spent waiting for batches."""
    images_per_second: float | None
    """Training images (labeled, unlabeled and mix sources) consumed per second of training."""
    tensorboard: str | None
    """Folder of the TensorBoard scalars, when written."""
    peak_memory_mb: float
    world_size: int
    global_batch: dict[str, int]
    per_process_batch: dict[str, int] | None
    batchnorm: str | None
    """How BatchNorm statistics are computed across processes ('per process' or 'synchronised')."""
    accumulate: int
    lr: float
    """The learning rate after the batch rule."""
    lr_batch_rule: str
    amp: str
    """Autocast of the training step: 'off' (float32), 'bf16' or 'fp16'."""
    teacher_amp: str
    """Autocast of the teachers' no-grad forwards."""
    eval_amp: str
    """Autocast of the evaluation."""
    channels_last: bool
    skipped_steps: int
    """Non-finite steps skipped (``trainer.on_nonfinite=skip``)."""
    determinism: str
    weights: dict[str, Any] | None
    """The encoder's initial weights (source, file, sha256)."""
    config_digest: str
    """Hash of the configuration that decides the training (``Resolved.digest``)."""
    started: str
    updated: str
    torch: str
    torchvision: str
    python: str
    platform: str
    host: str
    device: str
    device_name: str
    cpu_threads: int
    cpu_model: str | None
    """The CPU (model, cores, torch's capability, native bf16, ISA limits set); None in records made
    before the suite recorded it."""
    cpu_cores: int | None
    cpu_capability: str | None
    bf16_native: bool | None
    cpu_limits: dict[str, str] | None
    git_commit: str | None
    git_dirty: bool | None
    """True when the tree had uncommitted changes: no commit reproduces the run."""
    diverged: dict[str, Any] | None = field(default=None)
    """For a run that a non-finite step stopped: ``iteration`` (the step) and ``what`` was not finite. Its
    figures are its last evaluation's before it; ``report`` counts it as a diverged seed, not in the means."""
    filed_as: str | None = field(default=None)
    """For a reference run promoted under another name (``promote --as-tag``): where it was."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "a record") -> RunRecord:
        """The record of ``data``; one of another format is refused with the migration command."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        unknown, missing = sorted(set(data) - names), sorted(required - set(data))
        if unknown or missing:
            parts = ([f"lacks {', '.join(missing[:6])}"] if missing else []) + (
                [f"has unknown fields {', '.join(unknown[:6])}"] if unknown else [])
            raise UserError(f"{source} is not a record of this version of the suite ({'; '.join(parts)}): "
                            f"run {MIGRATE} on its results folder")
        return cls(**data)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def has_diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def diverged_at(self) -> int | None:
        """The step a non-finite loss stopped the run at; None for a run that did not diverge."""
        return (self.diverged or {}).get("iteration", self.completed_iterations) if self.has_diverged else None

    def test_result(self) -> dict[str, Any] | None:
        """The test evaluations (last and best-on-val networks), None for a run without a test list."""
        return self.test if self.test and self.test.get("last_miou") is not None else None


class RecordNotReadable(UserError):
    """A record file that is missing or not JSON (it may be being written by another process)."""


def load_run_record(path: Path) -> RunRecord:
    """The record at ``path``: RecordNotReadable when it is missing or not JSON, a UserError naming the
    migration when it holds a record of another format."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RecordNotReadable(f"{path} is not readable JSON ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a run record (not a JSON object)")
    return RunRecord.from_dict(data, str(path))


def read_run_record(path: Path) -> RunRecord | None:
    """The record at ``path``; None when it is missing or not yet readable JSON."""
    try:
        return load_run_record(path)
    except RecordNotReadable:
        return None


def write_run_record(path: Path, record: RunRecord) -> None:
    """Write the record atomically."""
    write_json(path, record.as_dict())
