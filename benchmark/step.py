"""One optimizer step of a method, and what it is built from: the device, the numerics, the method's
networks and its optimizers. The trainer runs a ``Stepper`` every iteration; ``benchmark bench`` times
the same object.

Determinism: every random draw of micro-batch ``k`` of step ``t`` is a function of (seed, t, k, rank)
(``seed_step``), so a resumed run draws exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from benchmark import distributed, hardware
from benchmark.config import DataConfig, Resolved, RunConfig, TrainerConfig, crop_hw
from benchmark.data.augment import StrongAugment, cutmix_boxes
from benchmark.data.batch import Batch
from benchmark.errors import UserError
from benchmark.losses import CrossEntropy, OhemCrossEntropy
from benchmark.method import Context, Method, Step, check_step
from benchmark.models import WeightsInfo, build_model


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' = CUDA (this process's GPU) when present, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"trainer.device = {name} but this machine has no CUDA device; use auto or cpu")
    return device


def seed_step(seed: int, iteration: int, rank: int, device: torch.device) -> torch.Generator:
    """Seed Python, numpy and torch for micro-batch ``iteration`` and return its device generator."""
    state = np.random.SeedSequence([seed, iteration, rank]).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[0]))
    torch.manual_seed(int(state[0]))
    return torch.Generator(device).manual_seed(int(state[1]))


@dataclass(frozen=True)
class Numerics:
    """Autocast dtypes and memory format of a run, as resolved for its device: ``amp`` for the training
    step, ``teacher`` for its no-grad passes (teachers, pseudo labels), ``eval`` for evaluation.

    'auto' resolves by device: bf16 on CUDA; on a CPU the training step and teachers run float32 and
    evaluation runs bf16 only where the CPU computes bf16 natively (``hardware.bf16_native``), float32
    elsewhere. The run's configuration keeps 'auto' (its digest does not depend on the machine); the
    record keeps what it resolved to."""

    amp: str
    channels_last: bool
    teacher: str = "off"
    eval: str = "off"

    @classmethod
    def resolve(cls, trainer: TrainerConfig, device: torch.device) -> Numerics:
        cuda = device.type == "cuda"
        amp = ("bf16" if cuda else "off") if trainer.amp == "auto" else trainer.amp
        teacher = amp if trainer.teacher_amp == "auto" else trainer.teacher_amp
        if trainer.eval_amp != "auto":
            evaluation = trainer.eval_amp
        else:
            evaluation = amp if cuda else ("bf16" if hardware.bf16_native() else "off")
        for key, value in (("amp", amp), ("teacher_amp", teacher), ("eval_amp", evaluation)):
            if value == "fp16" and not cuda:
                raise UserError(f"trainer.{key} = fp16 needs CUDA; use bf16 (CPU autocast) or off")
        return cls(amp, trainer.channels_last != "off", teacher, evaluation)

    def autocast(self, device: torch.device, what: str = "amp") -> Callable[[], contextlib.AbstractContextManager]:
        """The autocast of the training step (``what`` 'amp'), its no-grad passes ('teacher') or
        evaluation ('eval')."""
        amp = getattr(self, what)
        if amp == "off":
            return contextlib.nullcontext
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return lambda: torch.autocast(device.type, dtype=dtype)


def build_context(cfg: RunConfig, device: torch.device, numerics: Numerics, weights: list[WeightsInfo]) -> Context:
    """The context a method builds itself from; ``weights`` collects what each built encoder loaded."""
    crop_h, crop_w = crop_hw(cfg.data)

    def build() -> nn.Module:
        model, info = build_model(cfg.model, cfg.data.num_classes)
        weights.append(info)
        return model

    if cfg.loss.name == "ohem":
        criterion: nn.Module = OhemCrossEntropy(cfg.data.ignore_index, cfg.loss.ohem_threshold, cfg.loss.ohem_min_kept)
    else:
        criterion = CrossEntropy(cfg.data.ignore_index)
    return Context(num_classes=cfg.data.num_classes, ignore_index=cfg.data.ignore_index, build_model=build,
                   supervised_loss=criterion, strong=StrongAugment(cfg.augment),
                   cutmix_boxes=lambda n, gen: cutmix_boxes(n, crop_h, crop_w, cfg.augment, gen, device),
                   inference=numerics.autocast(device, "teacher"), augment=cfg.augment)


def build_method(resolved: Resolved, method_cls: type[Method], device: torch.device, numerics: Numerics,
                 sync_bn: bool = False) -> tuple[Method, WeightsInfo | None, str]:
    """The method with its networks on ``device`` (initialised from the run seed), the encoder weights
    it started from, and how BatchNorm statistics are computed across processes."""
    torch.manual_seed(resolved.run.seed)
    weights: list[WeightsInfo] = []
    method = method_cls(build_context(resolved.run, device, numerics, weights), resolved.method_params)
    batchnorm = "per process"
    if sync_bn:
        method, batchnorm = distributed.convert_sync_batchnorm(method, device)
    method.to(device)
    if numerics.channels_last:
        method.to(memory_format=torch.channels_last)
    return method, weights[0] if weights else None, batchnorm


def lr_scale(cfg: RunConfig) -> float:
    """Learning-rate factor of the linear batch rule (1 unless ``optim.lr_batch_rule`` is 'linear')."""
    if cfg.optim.lr_batch_rule == "linear":
        return cfg.data.batch_size * cfg.schedule.accumulate / cfg.optim.reference_batch
    return 1.0


def _sgd(model: nn.Module, lr: float, head_mult: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with the encoder at ``lr`` and the rest at ``lr * head_mult`` (one group for models
    without an encoder/head split)."""
    if hasattr(model, "backbone_parameters"):
        groups = [{"params": model.backbone_parameters(), "lr": lr, "base_lr": lr},
                  {"params": model.head_parameters(), "lr": lr * head_mult, "base_lr": lr * head_mult}]
    else:
        groups = [{"params": list(model.parameters()), "lr": lr, "base_lr": lr}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def images_per_step(method_cls: type[Method], data: DataConfig) -> int:
    """Training images a micro-batch of ``method_cls`` reads: labeled, unlabeled and mix sources."""
    unlabeled = data.unlabeled_batch_size * (1 + method_cls.uses_mix) if method_cls.uses_unlabeled else 0
    return data.batch_size + unlabeled


def build_optimizers(method: Method, cfg: RunConfig) -> dict[str, torch.optim.Optimizer]:
    """One SGD per trained network."""
    lr = cfg.optim.lr * lr_scale(cfg)
    return {name: _sgd(model, lr, cfg.optim.head_lr_mult, cfg.optim.momentum, cfg.optim.weight_decay)
            for name, model in method.trainable().items()}


class Stepper:
    """One optimizer step of a method: ``before_step``, the micro-batches under autocast with their
    backward passes, the optimizer steps, and ``after_step``.

    A step whose loss is not finite takes no optimizer step and calls no ``after_step``. With
    ``rollback`` a step also counts as non-finite when it leaves any tensor of the method non-finite
    (a BatchNorm variance can overflow under a finite loss), and a non-finite step leaves the method's
    state exactly as before it (``before_step``'s teacher updates and BatchNorm statistics included), at
    the cost of a copy of that state every step; without it the caller must discard the method after a
    non-finite step (the trainer stops the run).
    """

    def __init__(self, method: Method, optimizers: dict[str, torch.optim.Optimizer], wrapped: dict[str, nn.Module],
                 numerics: Numerics, device: torch.device, seed: int, total: int, accumulate: int = 1,
                 rank: int = 0, rollback: bool = False) -> None:
        self.method, self.optimizers, self.wrapped = method, optimizers, wrapped
        self.device, self.seed, self.total, self.accumulate, self.rank = device, seed, total, accumulate, rank
        self.rollback = rollback
        self.channels_last = numerics.channels_last
        self.autocast = numerics.autocast(device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=numerics.amp == "fp16")
        self.phase: Callable[[str], contextlib.AbstractContextManager] = _untimed
        """Wraps each phase of a step ('hooks', 'data', 'step', 'backward', 'optimizer'): ``bench`` times them."""
        self.nonfinite: list[str] = []
        """What was not finite in the last step: its logged values, else (with ``rollback``) its tensors."""

    def __call__(self, next_batch: Callable[[torch.device, bool], Batch],
                 iteration: int) -> tuple[dict[str, float], bool]:
        """Run step ``iteration``; returns the logged values (averaged over micro-batches) and whether
        the step was finite (and so taken)."""
        saved = self._snapshot() if self.rollback else None
        totals: dict[str, float] = {}
        for micro in range(self.accumulate):
            generator = seed_step(self.seed, iteration * self.accumulate + micro, self.rank, self.device)
            step = Step(iteration, self.total, generator)
            if micro == 0:
                with self.phase("hooks"):
                    self.method.before_step(step)
            with self.phase("data"):
                batch = next_batch(self.device, self.channels_last)
            with contextlib.ExitStack() as stack:
                if micro < self.accumulate - 1:
                    for model in self.wrapped.values():
                        if isinstance(model, DistributedDataParallel):
                            stack.enter_context(model.no_sync())
                with self.phase("step"), self.autocast():
                    out = self.method.training_step(batch, step)
                check_step(self.method.name, out)
                with self.phase("backward"):
                    self.scaler.scale(out["loss"] / self.accumulate).backward()
            for key, value in _as_floats(out).items():
                totals[key] = totals.get(key, 0.0) + value / self.accumulate
        finite = math.isfinite(totals["loss"])
        with self.phase("optimizer"):
            if finite:
                for optimizer in self.optimizers.values():
                    self.scaler.step(optimizer)
                self.scaler.update()
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
        if finite:
            with self.phase("hooks"):
                self.method.after_step(step)
        self.nonfinite = [key for key, value in totals.items() if not math.isfinite(value)]
        if saved is not None and finite:
            self.nonfinite = nonfinite_tensors(self.method.state_dict())
            finite = not self.nonfinite
        if saved is not None and not finite:
            self._restore(saved)
        return totals, finite

    def _snapshot(self) -> dict[str, Any]:
        """A copy of every tensor of the method and of every optimizer's state."""
        return {"method": {k: v.clone() for k, v in self.method.state_dict().items()},
                "optimizers": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()}}

    def _restore(self, saved: dict[str, Any]) -> None:
        self.method.load_state_dict(saved["method"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(saved["optimizers"][name])


def nonfinite_tensors(tensors: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``tensors`` (nested dicts and lists searched) holding a NaN
    or an infinity."""
    found = []
    for name, value in tensors.items():
        if isinstance(value, dict):
            found += [f"{name}.{inner}" for inner in nonfinite_tensors(value)]
        elif isinstance(value, (list, tuple)):
            found += [f"{name}.{inner}" for inner in nonfinite_tensors(dict(enumerate(value)))]
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            found.append(str(name))
    return found


def _untimed(name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def _as_floats(out: dict[str, Any]) -> dict[str, float]:
    """Every logged value as a float, with a single device synchronisation for all tensors."""
    names = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
    values = torch.stack([out[k].detach().float().reshape(()) for k in names]).tolist() if names else []
    floats = dict(zip(names, values))
    return {k: floats[k] if k in floats else float(v) for k, v in out.items()}
