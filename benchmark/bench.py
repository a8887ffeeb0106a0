"""``python -m benchmark bench``: the cost of one training step of each method, measured side by side.

Every method (and every value of an optional ``--vary`` setting) is built as the trainer builds it and
fed the same synthetic batch of the preset's crop and batch sizes. After two warm-up steps each, the
timed steps go round-robin over the candidates, so that a slower or busier moment of the machine hits
all of them alike; the table reports the median time per step and its ratio to the first candidate.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.table import Table

from benchmark import config as config_module
from benchmark.config import crop_hw
from benchmark import method as registry
from benchmark.data.batch import Batch, Labeled, Unlabeled
from benchmark.step import Numerics, Stepper, build_method, build_optimizers, pick_device


@dataclass
class Candidate:
    """One configuration under test."""

    label: str
    stepper: Stepper
    device: torch.device
    times: list[float]
    peak_mb: float = 0.0


def synthetic_batch(crop: tuple[int, int], labeled: int, unlabeled: int, classes: int, device: torch.device,
                    channels_last: bool) -> Batch:
    """A fixed random batch of the run's shapes."""
    gen = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        x = torch.rand(n, 3, *crop, generator=gen).to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    no_padding = torch.zeros(unlabeled, *crop, dtype=torch.bool, device=device)
    return Batch(Labeled(images(labeled), torch.randint(0, classes, (labeled, *crop), generator=gen).to(device)),
                 Unlabeled(images(unlabeled), no_padding), Unlabeled(images(unlabeled), no_padding.clone()))


def _candidate(name: str, preset: str, overrides: list[str], label: str) -> tuple[Candidate, Batch]:
    cls = registry.get(name)
    resolved = config_module.resolve(preset, cls.Params, overrides=overrides)
    cfg = resolved.run
    device = pick_device(cfg.trainer.device)
    numerics = Numerics.resolve(cfg.trainer.amp, cfg.trainer.channels_last, device)
    method, _, _ = build_method(resolved, cls, device, numerics)
    optimizers = build_optimizers(method, cfg)
    stepper = Stepper(method, optimizers, method.trainable(), numerics, device, cfg.seed, cfg.schedule.iters)
    batch = synthetic_batch(crop_hw(cfg.data), cfg.data.batch_size, cfg.data.unlabeled_batch_size,
                            cfg.data.num_classes, device, numerics.channels_last)
    return Candidate(label, stepper, device, []), batch


def _timed(candidate: Candidate, batch: Batch, iteration: int) -> float:
    cuda = candidate.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(candidate.device)
        torch.cuda.reset_peak_memory_stats(candidate.device)
    start = time.perf_counter()
    candidate.stepper(lambda device, channels_last: batch, iteration)
    if cuda:
        torch.cuda.synchronize(candidate.device)
        candidate.peak_mb = max(candidate.peak_mb, torch.cuda.max_memory_allocated(candidate.device) / 2 ** 20)
    return time.perf_counter() - start


def main(methods: list[str], preset: str, steps: int, overrides: list[str], console: Console,
         vary: str | None = None) -> list[Candidate]:
    """Time ``steps`` steps of each method (x each value of ``vary``, 'key=v1,v2') and print the table."""
    variants = [[]]
    if vary:
        key, _, values = vary.partition("=")
        variants = [[f"{key}={value}"] for value in values.split(",")]
    candidates = []
    for name in methods:
        for variant in variants:
            label = name + (f" ({variant[0]})" if variant else "")
            candidates.append(_candidate(name, preset, [*overrides, *variant], label))
    for candidate, batch in candidates:
        for warm in range(2):
            _timed(candidate, batch, warm)
    for step in range(steps):
        for candidate, batch in candidates:
            candidate.times.append(_timed(candidate, batch, 2 + step))
    base = statistics.median(candidates[0][0].times)
    table = Table(title=f"one training step, preset {preset}, median of {steps} interleaved steps")
    for column in ("method", "ms / step", "ratio", "spread (min-max ms)", "peak CUDA memory"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for candidate, _ in candidates:
        median = statistics.median(candidate.times)
        memory = f"{candidate.peak_mb:.0f} MB" if candidate.device.type == "cuda" else "n/a on CPU (see run records)"
        table.add_row(candidate.label, f"{1000 * median:.1f}", f"{median / base:.2f}",
                      f"{1000 * min(candidate.times):.0f}-{1000 * max(candidate.times):.0f}", memory)
    console.print(table)
    return [candidate for candidate, _ in candidates]
