"""``python -m benchmark bench``: what a training step of each method costs, where its time goes, and how
close it comes to the model calls it must make.

Every method (and every value of an optional ``--vary`` setting) is built as the trainer builds it and
fed one synthetic batch of the preset's crop and batch sizes. After two warm-up steps each, the timed
steps go round-robin over the candidates, so that a slower or busier moment of the machine hits all of
them alike; the step of median time is reported with its parts, and the median floor. For each
candidate:

- the step split into phases: forward passes of its networks (timed by hooks), the harness's strong
  augmentation and CutMix boxes, the method's own work (the rest of its step: losses, pseudo labels,
  mixing it builds itself, relation matrices, and its before/after hooks such as EMA updates), backward,
  the optimizer, and what is left (logging);
- the floor: the same network calls (same networks, input shapes, train/eval mode, gradient or not,
  memory format, autocast) replayed bare on random inputs, with one backward through every output that
  had a gradient; the overhead ratio is step / floor;
- step memory: what the step needs beyond what the process held before it (CUDA max allocated, or on
  Linux the peak resident set).

With ``--split`` the data bench (``bench_data``) adds the loader and the evaluation. ``--vary
data.crop_size=...`` measures growth in pixels per batch.
It always measures no-grad forwards of the preset's network in float32 and in bf16 autocast side by
side, so that every machine shows which evaluation numerics suit it and what ``auto`` chose. The CPU
(model, cores, torch's capability, native bf16) is printed first; everything is printed and written as
JSON (device, CPU, versions, commit, numerics).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmark import config as config_module
from benchmark import hardware
from benchmark import method as registry
from benchmark.atomic import write_json
from benchmark.config import crop_hw, dtype_name
from benchmark.data.batch import Batch, Labeled, Unlabeled
from benchmark.errors import UserError
from benchmark.records import environment
from benchmark.runtime import Runtime
from benchmark.step import Numerics, Stepper, images_per_step
from benchmark.step_clock import PHASES, Call, PeakMemory, StepClock, replay, sync

EVAL_NUMERICS = ("off", "bf16")
"""The evaluation numerics bench measures side by side on every machine (float32 and bf16 autocast)."""


@dataclass
class Candidate:
    """One configuration under test and its measurements."""

    label: str
    method: str
    numerics: Numerics
    stepper: Stepper
    clock: StepClock
    batch: Batch
    images: int
    """Images one step consumes (labeled + unlabeled + mix sources)."""
    pixels: int
    """Pixels per batch of those images."""
    calls: list[Call] = field(default_factory=list)
    """The network calls of its last timed step."""
    times: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    floors: list[float] = field(default_factory=list)
    step_mb: float | None = None
    """Memory the step needs beyond what the process held before it (the largest over timed steps)."""

    def median_step(self) -> int:
        """Index of the timed step of median time (the lower one for an even count): its parts add up to
        it, which medians taken part by part would not."""
        return self.times.index(statistics.median_low(self.times))

    def summary(self) -> dict[str, Any]:
        index = self.median_step()
        step, parts = self.times[index], self.parts[index]
        floor = statistics.median(self.floors) if self.floors else None
        return {"label": self.label, "method": self.method, "step_ms": 1000 * step, "images_per_step": self.images,
                "images_per_second": self.images / step, "pixels_per_batch": self.pixels,
                "ms_per_megapixel": 1000 * step / (self.pixels / 1e6),
                "floor_ms": 1000 * floor if floor else None, "overhead": step / floor if floor else None,
                "parts_ms": {k: 1000 * v for k, v in parts.items()}, "step_memory_mb": self.step_mb,
                "network_calls": len(self.calls), "times_ms": [1000 * t for t in self.times]}


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


def _candidate(name: str, preset: str, overrides: list[str], label: str) -> Candidate:
    cls = registry.get(name)
    runtime = Runtime.of(config_module.resolve(preset, cls.Params, overrides=overrides))
    cfg, device, numerics = runtime.cfg, runtime.device, runtime.numerics
    method, _, _ = runtime.method(cls)
    stepper = Stepper(method, runtime.optimizers(method), method.trainable(), numerics, device, cfg.seed,
                      cfg.schedule.iters)
    clock = StepClock(method, device)
    stepper.phase = clock.phase
    crop = crop_hw(cfg.data)
    batch = synthetic_batch(crop, cfg.data.batch_size, cfg.data.unlabeled_batch_size, cfg.data.num_classes, device,
                            numerics.channels_last)
    images = images_per_step(cls, cfg.data)
    return Candidate(label, name, numerics, stepper, clock, batch, images, images * crop[0] * crop[1])


def _timed_step(candidate: Candidate, iteration: int, memory: PeakMemory | None = None) -> None:
    device = candidate.stepper.device
    candidate.clock.reset()
    if memory:
        memory.reset()
    sync(device)
    start = time.perf_counter()
    candidate.stepper(lambda device, channels_last: candidate.batch, iteration)
    sync(device)
    total = time.perf_counter() - start
    candidate.times.append(total)
    candidate.parts.append(candidate.clock.parts(total))
    candidate.calls = list(candidate.clock.calls)
    if memory:
        used = memory.step_mb()
        candidate.step_mb = max(candidate.step_mb or 0.0, used) if used is not None else None


def measure_steps(candidates: list[Candidate], steps: int) -> None:
    """Warm up, then time ``steps`` interleaved steps and floors of every candidate."""
    for candidate in candidates:
        for warm in range(2):
            _timed_step(candidate, warm)
        candidate.times.clear()
        candidate.parts.clear()
    for step in range(steps):
        for candidate in candidates:
            memory = PeakMemory(candidate.stepper.device)
            _timed_step(candidate, 2 + step, memory)
            candidate.floors.append(replay(candidate.calls, candidate.stepper.device))
            candidate.clock.reset()  # the replay's own calls are not the step's


def eval_forwards(preset: str, overrides: list[str], repeats: int) -> dict[str, Any]:
    """No-grad forwards of the preset's network on a synthetic evaluation batch (``eval.batch_size``
    images of the crop's size) in each of ``EVAL_NUMERICS``, interleaved ``repeats`` times after a
    warm-up; the median per numerics, and which one ``auto`` resolved to on this machine."""
    from benchmark.models import build_model

    runtime = Runtime.of(config_module.resolve(preset, overrides=overrides))
    cfg, device, numerics = runtime.cfg, runtime.device, runtime.numerics
    network = build_model(cfg.model, cfg.data.num_classes)[0].to(device).eval()
    crop = crop_hw(cfg.data)
    images = torch.rand(cfg.eval.batch_size, 3, *crop, generator=torch.Generator().manual_seed(0)).to(device)
    if numerics.channels_last:
        network = network.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    contexts = {amp: dataclasses.replace(numerics, eval=amp).autocast(device, "eval") for amp in EVAL_NUMERICS}
    times: dict[str, list[float]] = {amp: [] for amp in EVAL_NUMERICS}
    with torch.no_grad():
        for repeat in range(repeats + 1):
            for amp, context in contexts.items():
                with context():
                    sync(device)
                    start = time.perf_counter()
                    network(images)
                    sync(device)
                if repeat:  # the first round warms up
                    times[amp].append(time.perf_counter() - start)
    median = {amp: statistics.median(t) for amp, t in times.items()}
    return {"batch": cfg.eval.batch_size, "size": list(crop), "repeats": repeats, "resolved": numerics.eval,
            "channels_last": numerics.channels_last, "ms": {amp: 1000 * m for amp, m in median.items()},
            "times_ms": {amp: [1000 * t for t in ts] for amp, ts in times.items()},
            "bf16_over_float32": median["bf16"] / median["off"]}


def _print_eval_forwards(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"evaluation forwards: batch {result['batch']} at {result['size'][0]}x{result['size'][1]}, "
                        f"no grad, median of {result['repeats']} interleaved")
    for column in ("numerics", "ms/forward", "ratio to float32"):
        table.add_column(column, justify="left" if column == "numerics" else "right")
    for amp, ms in result["ms"].items():
        table.add_row(dtype_name(amp) + (" (auto)" if amp == result["resolved"] else ""), f"{ms:.0f}",
                      f"{ms / result['ms']['off']:.2f}")
    console.print(table)


def main(methods: list[str], preset: str, steps: int, overrides: list[str], console: Console,
         vary: str | None = None, save: Path | None = None,
         data: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Measure every method (x each value of ``vary``, 'key=v1,v2', or 'key=v1;v2' for values with commas
    such as crops of height and width: 'data.crop_size=[144,192];128'), print the tables, write the JSON to
    ``save`` (a folder) when given, and return what was written. ``data``, given the step summaries,
    measures the loader and the evaluation on a real data set (``DataBench``)."""
    variants = [[]]
    if vary:
        key, _, values = vary.partition("=")
        if not values:
            raise UserError(f"--vary expects key=v1,v2, got {vary!r}")
        variants = [[f"{key}={value}"] for value in values.split(";" if ";" in values else ",")]
    console.print(f"CPU: {hardware.cpu_info().line()}; {torch.get_num_threads()} torch threads", highlight=False)
    candidates = [_candidate(name, preset, [*overrides, *variant], name + (f" ({variant[0]})" if variant else ""))
                  for name in methods for variant in variants]
    measure_steps(candidates, steps)
    summaries = [c.summary() for c in candidates]
    _print_steps(summaries, preset, steps, console)
    forwards = eval_forwards(preset, overrides, steps)
    _print_eval_forwards(forwards, console)
    device = candidates[0].stepper.device
    result: dict[str, Any] = {
        "preset": preset, "overrides": overrides, "vary": vary, "steps": steps,
        "numerics": {c.label: dataclasses.asdict(c.numerics) for c in candidates},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **environment(device),
        "methods": summaries, "eval_forwards": forwards}
    if data is not None:
        result.update(data(summaries))
    if save is not None:
        path = save / f"bench-{preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        write_json(path, result)
        console.print(f"wrote {path}")
    return result


def _print_steps(summaries: list[dict[str, Any]], preset: str, steps: int, console: Console) -> None:
    base = next((s for s in summaries if s["method"] == "supervised"), summaries[0])
    table = Table(title=f"one training step, preset {preset}, median of {steps} interleaved steps; ratio to "
                        f"{base['label']}")
    for column in ("method", "ms/step", "ratio", "images/s", "floor ms", "overhead", "step MB", "ms/Mpx"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for s in summaries:
        table.add_row(s["label"], f"{s['step_ms']:.0f}", f"{s['step_ms'] / base['step_ms']:.2f}", f"{s['images_per_second']:.1f}",
                      f"{s['floor_ms']:.0f}" if s["floor_ms"] else "-", f"{s['overhead']:.2f}" if s["overhead"] else "-",
                      f"{s['step_memory_mb']:.0f}" if s["step_memory_mb"] is not None else "n/a",
                      f"{s['ms_per_megapixel']:.0f}")
    console.print(table)
    table = Table(title="where the step's time goes (ms)")
    table.add_column("method")
    for phase in PHASES:
        table.add_column(phase, justify="right")
    for s in summaries:
        table.add_row(s["label"], *(f"{s['parts_ms'][p]:.0f}" for p in PHASES))
    console.print(table)
