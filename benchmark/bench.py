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

With a data set at hand it also measures the loader alone (images/s with the preset's workers, against
what each method's step consumes) and evaluation throughput per mode, with the sliding window against
the bare forwards of its windows. ``--vary data.crop_size=...`` measures growth in pixels per batch.
It always measures no-grad forwards of the preset's network in float32 and in bf16 autocast side by
side, so that every machine shows which evaluation numerics suit it and what ``auto`` chose. The CPU
(model, cores, torch's capability, native bf16) is printed first; everything is printed and written as
JSON (device, CPU, versions, commit, numerics).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from benchmark import config as config_module
from benchmark import hardware
from benchmark import method as registry
from benchmark.atomic import write_json
from benchmark.config import crop_hw, dtype_name
from benchmark.data.batch import Batch, Labeled, Unlabeled
from benchmark.errors import UserError
from benchmark.records import environment
from benchmark.step import Numerics, Stepper, build_method, build_optimizers, images_per_step, pick_device

EVAL_NUMERICS = ("off", "bf16")
"""The evaluation numerics bench measures side by side on every machine (float32 and bf16 autocast)."""
PHASES = ("forward", "augment", "method", "backward", "optimizer", "other")
"""The parts a step is split into (they add up to the step)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Call:
    """One network call of a step, as the floor replays it."""

    network: nn.Module
    shape: tuple[int, ...]
    channels_last: bool
    grad: bool
    training: bool
    kwargs: dict[str, Any]
    autocast: torch.dtype | None
    """The autocast dtype the call was made in (None: none)."""


class StepClock:
    """Wall-clock time per phase of one step: the Stepper's phases, network forwards (hooks on every
    network of the method) and the harness's augmentations (wrappers around the context's)."""

    def __init__(self, method: registry.Method, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.calls: list[Call] = []
        self.depth = 0
        self.started = 0.0
        self.networks = {name: child for name, child in method.named_children()
                         if not isinstance(child, (nn.ModuleDict, nn.ModuleList)) and any(True for _ in child.parameters())}
        for network in self.networks.values():
            network.register_forward_pre_hook(self._enter, with_kwargs=True)
            network.register_forward_hook(self._leave)
        method.ctx.strong = _Timed(method.ctx.strong, self, "augment")
        method.ctx.cutmix_boxes = _Timed(method.ctx.cutmix_boxes, self, "augment")

    def reset(self) -> None:
        self.seconds, self.calls = {}, []

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        _sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            self.add(name, time.perf_counter() - start)

    def _enter(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.depth == 0:
            x = args[0]
            kind = self.device.type
            dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
            self.calls.append(Call(module, tuple(x.shape), _channels_last(x), torch.is_grad_enabled(), module.training,
                                   dict(kwargs), dtype))
            _sync(self.device)
            self.started = time.perf_counter()
        self.depth += 1

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.depth -= 1
        if self.depth == 0:
            _sync(self.device)
            self.add("forward", time.perf_counter() - self.started)

    def parts(self, total: float) -> dict[str, float]:
        """The step's ``total`` seconds split into PHASES."""
        s = self.seconds
        inside = s.get("forward", 0.0) + s.get("augment", 0.0)
        parts = {"forward": s.get("forward", 0.0), "augment": s.get("augment", 0.0),
                 "method": max(s.get("step", 0.0) - inside, 0.0) + s.get("hooks", 0.0),
                 "backward": s.get("backward", 0.0), "optimizer": s.get("optimizer", 0.0)}
        parts["other"] = max(total - sum(parts.values()), 0.0)
        return parts


class _Timed:
    """A callable that adds its time to a StepClock phase; other attributes pass through."""

    def __init__(self, inner: Callable, clock: StepClock, name: str) -> None:
        self.inner, self.clock, self.name = inner, clock, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _sync(self.clock.device)
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            _sync(self.clock.device)
            self.clock.add(self.name, time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def replay(calls: list[Call], device: torch.device) -> float:
    """Seconds to make ``calls`` bare: each network on a random input of the recorded shape, mode and
    autocast, then one backward through every output that had a gradient."""
    modes = {id(c.network): c.network.training for c in calls}
    inputs = [torch.rand(c.shape, device=device) for c in calls]
    inputs = [x.contiguous(memory_format=torch.channels_last) if c.channels_last else x for x, c in zip(inputs, calls)]
    _sync(device)
    start = time.perf_counter()
    outputs = []
    for call, x in zip(calls, inputs):
        call.network.train(call.training)
        autocast = torch.autocast(device.type, dtype=call.autocast, enabled=call.autocast is not None)
        with torch.set_grad_enabled(call.grad), autocast:
            out = call.network(x, **call.kwargs)
        if call.grad:
            outputs += [t.float().mean() for t in _tensors(out) if t.requires_grad]
    if outputs:
        torch.stack(outputs).sum().backward()
    _sync(device)
    seconds = time.perf_counter() - start
    for call in calls:
        call.network.train(modes[id(call.network)])
        call.network.zero_grad(set_to_none=True)
    return seconds


class PeakMemory:
    """Memory a step needs on top of what was allocated before it: CUDA max allocated minus allocated, or
    on Linux the process's peak resident set (VmHWM, reset through /proc/self/clear_refs) minus its
    resident set before the step; None where neither can be read."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.before: float | None = None

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device) / 2 ** 20
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.before = None
            return
        self.before = _status_mb("VmRSS")

    def step_mb(self) -> float | None:
        """Peak memory of the span minus the memory before it."""
        if self.before is None:
            return None
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20 - self.before
        peak = _status_mb("VmHWM")
        return None if peak is None else peak - self.before


def _status_mb(field_name: str) -> float | None:
    """A field of /proc/self/status in MiB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


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
    resolved = config_module.resolve(preset, cls.Params, overrides=overrides)
    cfg = resolved.run
    device = pick_device(cfg.trainer.device)
    numerics = Numerics.resolve(cfg.trainer, device)
    method, _, _ = build_method(resolved, cls, device, numerics)
    stepper = Stepper(method, build_optimizers(method, cfg), method.trainable(), numerics, device, cfg.seed,
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
    _sync(device)
    start = time.perf_counter()
    candidate.stepper(lambda device, channels_last: candidate.batch, iteration)
    _sync(device)
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

    cfg = config_module.resolve(preset, overrides=overrides).run
    device = pick_device(cfg.trainer.device)
    numerics = Numerics.resolve(cfg.trainer, device)
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
                    _sync(device)
                    start = time.perf_counter()
                    network(images)
                    _sync(device)
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


class DataBench:
    """The loader and the evaluation of one split, measured alone (``bench --split``)."""

    def __init__(self, split: Any, root: Path, preset: str, overrides: list[str], console: Console,
                 batches: int = 20, images: int = 32) -> None:
        self.split, self.root, self.console = split, root, console
        self.cfg = config_module.resolve(preset, overrides=overrides).run
        self.batches, self.images = batches, images

    def __call__(self, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        loader = self.loader()
        table = Table(title=f"the loader alone, {self.split.name}, {self.cfg.data.workers} worker(s): "
                            f"{loader['images_per_second']:.0f} images/s")
        for column in ("method", "step consumes (img/s)", "loader / step"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for s in summaries:
            s["loader_ratio"] = loader["images_per_second"] / s["images_per_second"]
            table.add_row(s["label"], f"{s['images_per_second']:.1f}", f"{s['loader_ratio']:.1f}")
        self.console.print(table)
        evaluation = self.evaluation()
        table = Table(title=f"evaluation of {evaluation['images']} val images of {self.split.name}")
        for column in ("mode", "numerics", "images/s", "forward share"):
            table.add_column(column, justify="left" if column == "mode" else "right")
        for row in evaluation["modes"].values():
            table.add_row(row["mode"], dtype_name(row["eval_amp"]) + (" (auto)" if row["resolved"] else ""),
                          f"{row['images_per_second']:.1f}", f"{row['forward_share']:.2f}")
        self.console.print(table)
        self.console.print(f"sliding window: {evaluation['sliding_window_over_forwards']:.2f}x the time of its window "
                           "forwards")
        return {"loader": loader, "evaluation": evaluation}

    def loader(self) -> dict[str, Any]:
        """Images per second the preset's loaders deliver (labeled, unlabeled and mix streams together)."""
        from benchmark import distributed
        from benchmark.data.pipeline import train_streams

        cpu, data = torch.device("cpu"), self.cfg.data
        streams = train_streams(self.split, self.root, data, self.cfg.seed, distributed.info(), 0, cpu,
                                bool(self.split.unlabeled), bool(self.split.unlabeled))
        for _ in range(3):  # the workers start
            streams.next(cpu, False)
        start = time.perf_counter()
        for _ in range(self.batches):
            streams.next(cpu, False)
        seconds = time.perf_counter() - start
        per_batch = data.batch_size + (2 * data.unlabeled_batch_size if self.split.unlabeled else 0)
        return {"workers": data.workers, "batches": self.batches, "images_per_batch": per_batch,
                "images_per_second": self.batches * per_batch / seconds}

    def evaluation(self) -> dict[str, Any]:
        """Images per second of each evaluation mode (a freshly built network: the cost does not depend
        on the weights), the share of that time spent in the network's forwards, and the sliding window
        against the bare forwards of its windows."""
        from torch.utils.data import Subset

        from benchmark.data.pipeline import eval_dataset
        from benchmark.evaluate import Evaluator, Protocol, sliding_window
        from benchmark.models import build_model

        cfg = self.cfg
        device = pick_device(cfg.trainer.device)
        numerics = Numerics.resolve(cfg.trainer, device)
        network = build_model(cfg.model, cfg.data.num_classes)[0].to(device).eval()
        if numerics.channels_last:
            network = network.to(memory_format=torch.channels_last)
        timed = _TimedNetwork(network, device)
        val = eval_dataset(self.split.val, self.root, cfg.data)
        subset = Subset(val, range(min(self.images, len(val))))
        protocols = {mode: Protocol.from_config(dataclasses.replace(cfg.eval, mode=mode), crop_hw(cfg.data))
                     for mode in ("original", "center_crop", "sliding_window")}
        modes: dict[str, dict[str, Any]] = {}
        for mode, protocol in protocols.items():
            for amp in EVAL_NUMERICS:
                variant = dataclasses.replace(numerics, eval=amp)
                evaluator = Evaluator(subset, protocol, cfg.data.num_classes, cfg.data.ignore_index, device,
                                      cfg.eval.batch_size, min(cfg.data.workers, 2),
                                      variant.autocast(device, "eval"), variant.channels_last)
                evaluator.run(timed)  # warm-up
                timed.seconds = 0.0
                start = time.perf_counter()
                evaluator.run(timed)
                seconds = time.perf_counter() - start
                modes[f"{mode} {dtype_name(amp)}"] = {
                    "mode": mode, "eval_amp": amp, "resolved": amp == numerics.eval,
                    "images_per_second": len(subset) / seconds, "forward_share": timed.seconds / seconds}
        protocol = protocols["sliding_window"]
        image = torch.stack([val[i]["image"] for i in range(min(4, len(val)))
                             if val[i]["image"].shape == val[0]["image"].shape]).to(device).float().div_(255)
        if numerics.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        timed.seconds = 0.0
        with torch.no_grad(), numerics.autocast(device, "eval")():
            _sync(device)
            start = time.perf_counter()
            sliding_window(timed, image, protocol.window, protocol.stride, cfg.data.num_classes)
            _sync(device)
            whole = time.perf_counter() - start
        return {"images": len(subset), "modes": modes, "window": protocol.window, "stride": protocol.stride,
                "sliding_window_over_forwards": whole / timed.seconds}


class _TimedNetwork(nn.Module):
    """A network that adds the time of its forwards to ``seconds``."""

    def __init__(self, network: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.network, self.device, self.seconds = network, device, 0.0

    def forward(self, x: Tensor) -> Tensor:
        _sync(self.device)
        start = time.perf_counter()
        out = self.network(x)
        _sync(self.device)
        self.seconds += time.perf_counter() - start
        return out
