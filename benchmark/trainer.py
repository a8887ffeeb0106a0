"""The one trainer every method runs under.

It owns the device, autocast, memory format, optimizers and the poly schedule, backward and the
optimizer step, gradient accumulation, DistributedDataParallel, periodic evaluation, checkpoints and
resume, progress, and the run record. Methods only compute named losses (see ``benchmark.method``).

Determinism: every random draw of step ``t`` (augmentation, dropout, samplers) is a function of
(seed, t), and the data position after ``t`` steps is ``t`` batches into each seeded stream. A
checkpoint therefore needs only the networks, optimizers, method buffers and the history; a resumed
CPU run reproduces the uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from benchmark import distributed
from benchmark.atomic import write_atomic, write_json
from benchmark.config import Resolved, RunConfig, crop_hw
from benchmark.data.augment import StrongAugment, cutmix_boxes
from benchmark.data.pipeline import train_streams, val_dataset
from benchmark.data.splits import Split
from benchmark.errors import UserError
from benchmark.evaluate import Evaluator, Protocol
from benchmark.method import Batch, Context, Method, Step
from benchmark.models import WeightsInfo, build_model
from benchmark.progress import Progress
from benchmark.records import RunPaths, environment, peak_memory_mb, write_config, write_metrics
from methods.common.losses import CrossEntropy, OhemCrossEntropy

CHECKPOINT_FORMAT = 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' = CUDA (this process's GPU) when present, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"trainer.device = {name} but this machine has no CUDA device; use auto or cpu")
    return device


def seed_step(seed: int, iteration: int, rank: int, device: torch.device) -> torch.Generator:
    """Seed Python, numpy and torch for step ``iteration`` and return the step's device generator."""
    state = np.random.SeedSequence([seed, iteration, rank]).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[0]))
    torch.manual_seed(int(state[0]))
    return torch.Generator(device).manual_seed(int(state[1]))


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def _sgd(model: nn.Module, lr: float, head_mult: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with the encoder at ``lr`` and the rest at ``lr * head_mult`` (one group for models
    without an encoder/head split)."""
    if hasattr(model, "backbone_parameters"):
        groups = [{"params": model.backbone_parameters(), "lr": lr, "base_lr": lr},
                  {"params": model.head_parameters(), "lr": lr * head_mult, "base_lr": lr * head_mult}]
    else:
        groups = [{"params": list(model.parameters()), "lr": lr, "base_lr": lr}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


@dataclass
class Numerics:
    """Autocast and memory format of a run, as resolved for its device."""

    amp: str
    channels_last: bool

    @classmethod
    def resolve(cls, amp: str, channels_last: str, device: torch.device) -> Numerics:
        cuda = device.type == "cuda"
        resolved_amp = ("bf16" if cuda else "off") if amp == "auto" else amp
        if resolved_amp == "fp16" and not cuda:
            raise UserError("trainer.amp = fp16 needs CUDA; use bf16 (CPU autocast) or off")
        return cls(resolved_amp, channels_last != "off")

    def autocast(self, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
        if self.amp == "off":
            return contextlib.nullcontext
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return lambda: torch.autocast(device.type, dtype=dtype)


def build_context(cfg: RunConfig, device: torch.device, weights: list[WeightsInfo]) -> Context:
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
    return Context(num_classes=cfg.data.num_classes, ignore_index=cfg.data.ignore_index,
                   crop_size=(crop_h, crop_w), total_iters=cfg.schedule.iters, device=device, build_model=build,
                   supervised_loss=criterion, strong=StrongAugment(cfg.augment),
                   cutmix_boxes=lambda n, gen: cutmix_boxes(n, crop_h, crop_w, cfg.augment, gen, device))


def build_method(resolved: Resolved, method_cls: type[Method], device: torch.device, numerics: Numerics,
                 sync_bn: bool = False) -> tuple[Method, WeightsInfo | None, str]:
    """The method with its networks on ``device`` (initialised from the run seed), the encoder weights
    it started from, and how BatchNorm statistics are computed across processes."""
    torch.manual_seed(resolved.run.seed)
    weights: list[WeightsInfo] = []
    method = method_cls(build_context(resolved.run, device, weights), resolved.method_params)
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


def build_optimizers(method: Method, cfg: RunConfig) -> dict[str, torch.optim.Optimizer]:
    """One SGD per trained network."""
    lr = cfg.optim.lr * lr_scale(cfg)
    return {name: _sgd(model, lr, cfg.optim.head_lr_mult, cfg.optim.momentum, cfg.optim.weight_decay)
            for name, model in method.trainable().items()}


class Stepper:
    """One optimizer step of a method: micro-batches, autocast, backward, the optimizer steps and the
    method's ``after_step``. The trainer runs it every iteration; ``benchmark bench`` times it."""

    def __init__(self, method: Method, optimizers: dict[str, torch.optim.Optimizer], wrapped: dict[str, nn.Module],
                 numerics: Numerics, device: torch.device, seed: int, total: int, accumulate: int = 1,
                 rank: int = 0) -> None:
        self.method, self.optimizers, self.wrapped = method, optimizers, wrapped
        self.device, self.seed, self.total, self.accumulate, self.rank = device, seed, total, accumulate, rank
        self.channels_last = numerics.channels_last
        self.autocast = numerics.autocast(device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=numerics.amp == "fp16")

    def __call__(self, next_batch: Callable[[torch.device, bool], Batch],
                 iteration: int) -> tuple[dict[str, float], bool]:
        """Run step ``iteration``; returns the logged values (averaged over micro-batches) and whether
        the loss was finite. A non-finite step changes no weights."""
        totals: dict[str, float] = {}
        for micro in range(self.accumulate):
            generator = seed_step(self.seed, iteration * self.accumulate + micro, self.rank, self.device)
            step = Step(iteration, self.total, generator)
            batch = next_batch(self.device, self.channels_last)
            with contextlib.ExitStack() as stack:
                if micro < self.accumulate - 1:
                    for model in self.wrapped.values():
                        if isinstance(model, DistributedDataParallel):
                            stack.enter_context(model.no_sync())
                with self.autocast():
                    out = self.method.training_step(batch, step)
                self.scaler.scale(out["loss"] / self.accumulate).backward()
            for key, value in _as_floats(out).items():
                totals[key] = totals.get(key, 0.0) + value / self.accumulate
        finite = math.isfinite(totals["loss"])
        if finite:
            for optimizer in self.optimizers.values():
                self.scaler.step(optimizer)
            self.scaler.update()
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        if finite:
            self.method.after_step(step)
        return totals, finite


class Trainer:
    """Trains one method on one split with one seed, and writes the run's folder."""

    def __init__(self, resolved: Resolved, method_cls: type[Method], split: Split, data_root: Path,
                 paths: RunPaths, show_progress: bool = True, log: Callable[[str], None] = print) -> None:
        self.resolved, self.cfg = resolved, resolved.run
        self.method_cls, self.split, self.root, self.paths = method_cls, split, data_root, paths
        self.dist = distributed.info()
        self.device = pick_device(self.cfg.trainer.device, self.dist.local_rank)
        self.numerics = Numerics.resolve(self.cfg.trainer.amp, self.cfg.trainer.channels_last, self.device)
        self.show_progress = show_progress
        self.log = log if self.dist.is_main else (lambda message: None)
        self.weights: WeightsInfo | None = None
        self.batchnorm = "per process"
        self.wrapped_names: list[str] = []
        self.clock = time.perf_counter()

    def _set_lr(self, optimizers: dict[str, torch.optim.Optimizer], iteration: int) -> float:
        factor = (1 - iteration / self.cfg.schedule.iters) ** self.cfg.optim.poly_power
        for optimizer in optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
        return next(iter(optimizers.values())).param_groups[0]["lr"]

    # ------------------------------------------------------------------------------ checkpoints
    def _identity(self) -> dict[str, Any]:
        return {"method": self.method_cls.name, "method_class": f"{self.method_cls.__module__}:"
                f"{self.method_cls.__qualname__}", "config_digest": self.resolved.digest(),
                "split_sha256": self.split.sha256()}

    def _save(self, method: Method, optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any]) -> None:
        networks = method.state_dict()
        for name in self.wrapped_names:  # store DDP-wrapped networks under their plain names
            networks = {k.replace(f"{name}.module.", f"{name}.", 1) if k.startswith(f"{name}.module.") else k: v
                        for k, v in networks.items()}
        payload = {"format": CHECKPOINT_FORMAT, **self._identity(), **state, "networks": networks,
                   "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()}}
        write_atomic(self.paths.checkpoint, lambda handle: torch.save(payload, handle))

    def _load(self, method: Method, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any] | None:
        path = self.paths.checkpoint
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged file is the user's to remove
            raise UserError(f"checkpoint {path} is damaged or truncated ({type(error).__name__}); delete it "
                            "to restart the run, or pass --fresh") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path} is not a checkpoint of this suite; delete it or pass --fresh")
        ours = self._identity()
        if payload.get("method") != ours["method"]:
            raise UserError(f"{path} is a checkpoint of method {payload.get('method')!r}, not "
                            f"{ours['method']!r}; use another --tag or pass --fresh")
        for key, what in (("config_digest", "configuration"), ("split_sha256", "split files")):
            if payload.get(key) != ours[key]:
                raise UserError(f"{path} was made with a different {what}; resume with the original "
                                "settings, use --tag NAME for a variant, or pass --fresh to start over")
        try:
            method.load_state_dict(payload["networks"])
            for name, optimizer in optimizers.items():
                optimizer.load_state_dict(payload["optimizers"][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise UserError(f"{path} does not fit this method's networks ({str(error)[:200]}); pass "
                            "--fresh to start over") from None
        return payload

    # -------------------------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train to the end (resuming from the run's checkpoint if there is one) and return the record."""
        cfg = self.cfg
        if self.cfg.trainer.threads:
            torch.set_num_threads(self.cfg.trainer.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.trainer.deterministic
            torch.backends.cudnn.deterministic = cfg.trainer.deterministic
            if cfg.trainer.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
        method, self.weights, self.batchnorm = build_method(self.resolved, self.method_cls, self.device,
                                                            self.numerics, self.dist.world > 1 and cfg.trainer.sync_bn)
        optimizers = build_optimizers(method, self.cfg)
        resumed = self._load(method, optimizers)
        state = {"iteration": 0, "history": [], "best": None, "train_seconds": 0.0, "wall_seconds": 0.0,
                 "skipped_steps": 0, "sums": {}, "count": 0,
                 "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if resumed:
            state.update({k: resumed[k] for k in state if k in resumed})
            self.log(f"resuming {self.paths.folder} at iteration {state['iteration']}")
        if self.dist.is_main:
            write_config(self.paths, {**self.resolved.as_dict(), "preset": self.resolved.preset,
                                      "sources": self.resolved.sources})
        wrapped = self._wrap(method)
        accumulate = cfg.schedule.accumulate
        streams = train_streams(self.split, self.root, cfg.data, cfg.seed, self.dist,
                                state["iteration"] * accumulate, self.device, method.uses_unlabeled,
                                method.uses_mix)
        evaluator = Evaluator(val_dataset(self.split, self.root, cfg.data),
                              Protocol.from_config(cfg.eval, crop_hw(cfg.data)), cfg.data.num_classes,
                              cfg.data.ignore_index, self.device, cfg.eval.batch_size,
                              min(cfg.data.workers, 2), self.numerics.autocast(self.device),
                              self.numerics.channels_last)
        stepper = Stepper(method, optimizers, wrapped, self.numerics, self.device, cfg.seed, cfg.schedule.iters,
                          accumulate, self.dist.rank)
        total = cfg.schedule.iters
        progress = Progress(total, state["iteration"], f"{self.method_cls.name} {self.split.name} seed {cfg.seed}",
                            bar=self.show_progress, notes=self.dist.is_main)
        self.clock = time.perf_counter()
        with progress:
            while state["iteration"] < total:
                iteration = state["iteration"]
                started = time.perf_counter()
                lr = self._set_lr(optimizers, iteration)
                parts, finite = stepper(streams.next, iteration)
                state["train_seconds"] += time.perf_counter() - started
                if finite:
                    for key, value in parts.items():
                        state["sums"][key] = state["sums"].get(key, 0.0) + value
                    state["count"] += 1
                else:
                    self._nonfinite(iteration, parts, state)
                state["iteration"] = iteration + 1
                progress.update(state["iteration"], parts)
                done = state["iteration"]
                if done % cfg.schedule.eval_every == 0 or done == total:
                    self._evaluate(method, evaluator, state, lr, progress)
                    self._save_if_main(method, optimizers, state)
                    self._write_outputs(state, finished=done == total)
                elif cfg.schedule.checkpoint_every and done % cfg.schedule.checkpoint_every == 0:
                    self._save_if_main(method, optimizers, state)
        self._write_outputs(state, finished=True)
        return self._record(state, finished=True)

    def _wrap(self, method: Method) -> dict[str, nn.Module]:
        """Wrap the trained networks in DDP when there are several processes."""
        if self.dist.world == 1:
            return method.trainable()
        wrapped = {}
        for name, model in method.trainable().items():
            ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                          else None, broadcast_buffers=False,
                                          find_unused_parameters=self.cfg.trainer.find_unused_parameters)
            setattr(method, name, ddp)
            wrapped[name] = ddp
            self.wrapped_names.append(name)
        return wrapped

    def _nonfinite(self, iteration: int, parts: dict[str, float], state: dict[str, Any]) -> None:
        listing = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
        if self.cfg.trainer.on_nonfinite == "skip":
            state["skipped_steps"] += 1
            self.log(f"iteration {iteration}: non-finite loss ({listing}); step skipped")
            return
        kept = (f"the last good checkpoint ({self.paths.checkpoint}) is kept" if self.paths.checkpoint.exists()
                else "no checkpoint had been written yet")
        raise UserError(f"non-finite loss at iteration {iteration}: {listing}. The run stopped; {kept}. "
                        "Lower optim.lr, or set trainer.on_nonfinite=skip to skip such steps")

    def _evaluate(self, method: Method, evaluator: Evaluator, state: dict[str, Any], lr: float,
                  progress: Progress) -> None:
        result = evaluator.run(unwrap(method.eval_model()))
        count = max(state["count"], 1)
        line = {"iteration": state["iteration"], "miou": result.miou, "iou": result.iou,
                "pixels": int(result.confusion.sum()),
                "losses": {k: v / count for k, v in state["sums"].items()}, "lr": lr,
                "train_seconds": round(state["train_seconds"], 3)}
        state["history"].append(line)
        state["sums"], state["count"] = {}, 0
        if state["best"] is None or result.miou > state["best"]["miou"]:
            state["best"] = {"miou": result.miou, "iteration": state["iteration"], "iou": result.iou}
        progress.note(f"iteration {state['iteration']}: mIoU {100 * result.miou:.2f} "
                      f"(best {100 * state['best']['miou']:.2f})")

    def _save_if_main(self, method: Method, optimizers: dict[str, torch.optim.Optimizer],
                      state: dict[str, Any]) -> None:
        now = time.perf_counter()
        state["wall_seconds"] += now - self.clock
        self.clock = now
        if self.dist.is_main:
            self._save(method, optimizers, state)
        distributed.barrier()

    def _write_outputs(self, state: dict[str, Any], finished: bool) -> None:
        if self.dist.is_main:
            write_metrics(self.paths, state["history"])
            write_json(self.paths.record, self._record(state, finished))

    def _record(self, state: dict[str, Any], finished: bool) -> dict[str, Any]:
        """The run record: results, protocol, data identity, cost, and environment."""
        cfg, split, last = self.cfg, self.split, state["history"][-1] if state["history"] else None
        steps = state["iteration"]
        per_step = cfg.data.batch_size + (cfg.data.unlabeled_batch_size * (1 + self.method_cls.uses_mix)
                                          if self.method_cls.uses_unlabeled else 0)
        seconds = state["train_seconds"]
        return {
            "status": "finished" if finished else "running",
            "method": self.method_cls.name, "tag": self.paths.folder.parent.name.partition("+")[2] or None,
            "method_params": self.resolved.as_dict()["method"], "fidelity": self.method_cls.fidelity,
            "dataset": split.dataset, "split": split.name, "preset": self.resolved.preset,
            "labeled": len(split.labeled), "unlabeled": len(split.unlabeled), "val": len(split.val),
            "labeled_fraction": split.fraction, "split_sha256": split.sha256(), "split_files": split.checksums(),
            "split_provenance": split.provenance, "seed": cfg.seed,
            "iterations": cfg.schedule.iters, "completed_iterations": steps,
            "last_miou": last["miou"] if last else None, "last_iou": last["iou"] if last else None,
            "best_miou": state["best"]["miou"] if state["best"] else None,
            "best_iteration": state["best"]["iteration"] if state["best"] else None,
            "best_iou": state["best"]["iou"] if state["best"] else None,
            "class_names": cfg.data.class_names,
            "eval": Protocol.from_config(cfg.eval, crop_hw(cfg.data)).as_dict(),
            "train_seconds": round(seconds, 2), "wall_seconds": round(state["wall_seconds"], 2),
            "images_per_second": round(steps * per_step * cfg.schedule.accumulate / seconds, 2) if seconds else None,
            "peak_memory_mb": round(peak_memory_mb(self.device), 1),
            "world_size": self.dist.world, "global_batch": {"labeled": cfg.data.batch_size,
                                                            "unlabeled": cfg.data.unlabeled_batch_size},
            "per_process_batch": {"labeled": cfg.data.batch_size // self.dist.world,
                                  "unlabeled": cfg.data.unlabeled_batch_size // self.dist.world},
            "batchnorm": self.batchnorm,
            "accumulate": cfg.schedule.accumulate, "lr": cfg.optim.lr * lr_scale(cfg),
            "lr_batch_rule": cfg.optim.lr_batch_rule, "amp": self.numerics.amp,
            "channels_last": self.numerics.channels_last, "skipped_steps": state["skipped_steps"],
            "determinism": self._determinism(), "weights": self.weights.as_dict() if self.weights else None,
            "config_digest": self.resolved.digest(), "started": state["started"],
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **environment(self.device),
        }

    def _determinism(self) -> str:
        if self.device.type == "cpu":
            return "deterministic: CPU kernels, every random draw seeded per step"
        if self.cfg.trainer.deterministic:
            return "deterministic algorithms requested (cudnn.deterministic, use_deterministic_algorithms)"
        return ("not bit-reproducible on CUDA: cudnn.benchmark and atomic-add kernels; set "
                "trainer.deterministic=true for deterministic kernels")


def _as_floats(out: dict[str, Any]) -> dict[str, float]:
    """Every logged value as a float, with a single device synchronisation for all tensors."""
    names = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
    values = torch.stack([out[k].detach().float().reshape(()) for k in names]).tolist() if names else []
    floats = dict(zip(names, values))
    return {k: floats[k] if k in floats else float(v) for k, v in out.items()}
