"""Timing one training step for ``bench``: the clock of its phases and network calls (``StepClock``), the
floor that replays those calls bare (``replay``), and the step's peak memory (``PeakMemory``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.method import Method

PHASES = ("forward", "augment", "method", "backward", "optimizer", "other")
"""The parts a step is split into (they add up to the step)."""


def sync(device: torch.device) -> None:
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

    def __init__(self, method: Method, device: torch.device) -> None:
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
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.add(name, time.perf_counter() - start)

    def _enter(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.depth == 0:
            x = args[0]
            kind = self.device.type
            dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
            self.calls.append(Call(module, tuple(x.shape), _channels_last(x), torch.is_grad_enabled(), module.training,
                                   dict(kwargs), dtype))
            sync(self.device)
            self.started = time.perf_counter()
        self.depth += 1

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.depth -= 1
        if self.depth == 0:
            sync(self.device)
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
        sync(self.clock.device)
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            sync(self.clock.device)
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
    sync(device)
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
    sync(device)
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
