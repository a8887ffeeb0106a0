"""TensorBoard scalars of a run, written when the optional ``tensorboard`` package is installed
(``pip install -e '.[tensorboard]'``); without it nothing is written and nothing changes.

Under the run's folder, ``tensorboard/``: every logged part of every step (losses, mask ratio, ...) as
``train/<part>``, the learning rate, and at each evaluation ``val/miou`` and ``train/images_per_second``.
A resumed run purges the events after its checkpoint's step, so re-done steps are not shown twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Scalars:
    """A SummaryWriter when TensorBoard is importable and this process writes, else a no-op."""

    def __init__(self, folder: Path, enabled: bool, resumed_at: int | None = None) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra is not installed
            return
        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"), purge_step=resumed_at)

    @property
    def folder(self) -> str | None:
        return self.writer.log_dir if self.writer else None

    def step(self, iteration: int, parts: dict[str, float], lr: float) -> None:
        if self.writer:
            for name, value in parts.items():
                self.writer.add_scalar(f"train/{name}", value, iteration)
            self.writer.add_scalar("train/lr", lr, iteration)

    def evaluation(self, iteration: int, miou: float, images_per_second: float | None) -> None:
        if self.writer:
            self.writer.add_scalar("val/miou", 100 * miou, iteration)
            if images_per_second:
                self.writer.add_scalar("train/images_per_second", images_per_second, iteration)
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()
