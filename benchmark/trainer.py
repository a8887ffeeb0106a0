"""The one training loop every method runs under, and the run record it writes.

The loop sets the learning rate, runs a ``Stepper`` (``benchmark.step``) every iteration, evaluates and
checkpoints (``benchmark.checkpoint``) on schedule, and writes ``metrics.jsonl`` and ``record.json``.
Methods only compute named losses (see ``benchmark.method``).

Determinism: every random draw of step ``t`` is a function of (seed, t), and the data position after
``t`` steps is ``t`` batches into each seeded stream. A checkpoint therefore needs only the networks,
optimizers, method buffers and the ``RunState``; a resumed CPU run reproduces the uninterrupted one
exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from benchmark import checkpoint, distributed
from benchmark.config import Resolved
from benchmark.data import demo
from benchmark.data.pipeline import TrainStreams, eval_dataset, train_streams
from benchmark.data.splits import Split
from benchmark.errors import Diverged, UserError
from benchmark.evaluate import EvalResult, Evaluator
from benchmark.method import Method, unwrap
from benchmark.models import WeightsInfo
from benchmark.progress import Progress
from benchmark.records import RunPaths, environment, peak_memory_mb, write_config, write_metrics, write_per_image
from benchmark.scalars import Scalars
from benchmark.run_record import RunRecord, write_run_record
from benchmark.runtime import Runtime
from benchmark.step import Stepper, images_per_step, lr_scale


MAX_SKIPPED_IN_A_ROW = 3
"""Non-finite steps in a row that ``trainer.on_nonfinite=skip`` skips; one more stops the run."""
MAX_SKIPPED_SHARE = 0.05
"""Share of the schedule's steps that ``skip`` skips in all (at least ``MAX_SKIPPED_IN_A_ROW``)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunState:
    """Where a run is: everything besides networks and optimizers that a checkpoint keeps."""

    iteration: int = 0
    """Optimizer steps completed."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per evaluation (the lines of metrics.jsonl)."""
    best: dict[str, Any] | None = None
    """The best evaluation so far: mIoU, iteration, per-class IoU."""
    train_seconds: float = 0.0
    data_seconds: float = 0.0
    """Part of ``train_seconds`` spent waiting for the loaders (the next batch on the device)."""
    wall_seconds: float = 0.0
    skipped_steps: int = 0
    """Non-finite steps skipped (``trainer.on_nonfinite=skip``)."""
    skipped_in_a_row: int = 0
    """Non-finite steps skipped since the last finite one."""
    sums: dict[str, float] = field(default_factory=dict)
    """Logged values summed over the finite steps since the last evaluation."""
    count: int = 0
    """Finite steps since the last evaluation."""
    started: str = field(default_factory=_now)
    per_image: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-image intersection and union counts (images x classes) of the last and the best evaluation,
    with their iteration: the statistics of ``report`` (bootstrap intervals, paired comparisons)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any]) -> RunState:
        """The state stored at the top level of a checkpoint payload."""
        return cls(**{f.name: payload[f.name] for f in dataclasses.fields(cls) if f.name in payload})


def _counts(iteration: int, result: EvalResult) -> dict[str, Any]:
    """An evaluation's per-image counts as ``write_per_image`` takes them, with the iteration they are of."""
    return {"iteration": iteration, "intersection": torch.from_numpy(result.intersection),
            "union": torch.from_numpy(result.union)}


@contextlib.contextmanager
def _data_wait(state: RunState, phase: str) -> Iterator[None]:
    """The Stepper's phase clock in training: only the wait for the next batch is timed."""
    if phase != "data":
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        state.data_seconds += time.perf_counter() - start


class Trainer:
    """Trains one method on one split with one seed, and writes the run's folder."""

    def __init__(self, resolved: Resolved, method_cls: type[Method], split: Split, data_root: Path,
                 paths: RunPaths, show_progress: bool = True, log: Callable[[str], None] = print) -> None:
        self.resolved, self.cfg = resolved, resolved.run
        self.method_cls, self.split, self.root, self.paths = method_cls, split, data_root, paths
        self.dist = distributed.info()
        self.runtime = Runtime.of(resolved, self.dist.local_rank)
        self.generated_data = demo.read_manifest(data_root) if split.dataset == "demo" else None
        self.val_sizes: dict[str, int] | None = None
        self.test: dict[str, Any] | None = {"list": split.test_path.name, "sha256": split.test_sha256()} \
            if split.test else None
        """The split's test list (a split with one) and, once training ends, the test evaluations of the last
        and the best-on-val networks: a record names its test list from the start, so that a run that
        diverged is of the same protocol as the finished ones."""
        self.test_counts: dict[str, dict[str, Any]] = {}
        self.identity = checkpoint.Identity(method_cls.name, f"{method_cls.__module__}:{method_cls.__qualname__}",
                                            resolved.digest(), split.sha256())
        self.show_progress = show_progress
        self.log = log if self.dist.is_main else (lambda message: None)
        self.weights: WeightsInfo | None = None
        self.batchnorm = "per process"
        self.wrapped_names: list[str] = []
        self.scalars = Scalars(paths.folder, enabled=False)
        self.clock = time.perf_counter()

    def _set_lr(self, optimizers: dict[str, torch.optim.Optimizer], iteration: int) -> float:
        factor = (1 - iteration / self.cfg.schedule.iters) ** self.cfg.optim.poly_power
        for optimizer in optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
        return next(iter(optimizers.values())).param_groups[0]["lr"]

    def run(self) -> dict[str, Any]:
        """Train to the end (resuming from the run's checkpoint if there is one) and return the record."""
        cfg = self.cfg
        if self.runtime.device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.trainer.deterministic
            torch.backends.cudnn.deterministic = cfg.trainer.deterministic
            if cfg.trainer.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
        method, self.weights, self.batchnorm = self.runtime.method(self.method_cls,
                                                                   self.dist.world > 1 and cfg.trainer.sync_bn)
        optimizers = self.runtime.optimizers(method)
        resumed = checkpoint.load(self.paths.checkpoint, self.identity, method, optimizers, self.runtime.device)
        state = RunState.from_checkpoint(resumed) if resumed else RunState()
        if resumed:
            self.log(f"resuming {self.paths.folder} at iteration {state.iteration}")
        if self.dist.is_main:
            write_config(self.paths, {**self.resolved.as_dict(), "preset": self.resolved.preset,
                                      "sources": self.resolved.sources})
        wrapped = self._wrap(method)
        accumulate = cfg.schedule.accumulate
        streams = train_streams(self.split, self.root, cfg.data, cfg.seed, self.dist, state.iteration * accumulate,
                                self.runtime.device, method.uses_unlabeled, method.uses_mix)
        val = eval_dataset(self.split.val, self.root, cfg.data)
        self.val_sizes = val.reader.sizes()
        runtime = self.runtime
        evaluator = runtime.evaluator(val)
        stepper = Stepper(method, optimizers, wrapped, runtime.numerics, runtime.device, cfg.seed, cfg.schedule.iters,
                          accumulate, self.dist.rank, rollback=cfg.trainer.on_nonfinite == "skip")
        stepper.phase = partial(_data_wait, state)
        total = cfg.schedule.iters
        progress = Progress(total, state.iteration, f"{self.method_cls.name} {self.split.name} seed {cfg.seed}",
                            bar=self.show_progress, notes=self.dist.is_main)
        self.clock = time.perf_counter()
        self.scalars = Scalars(self.paths.folder, self.dist.is_main, state.iteration if resumed else None)
        with progress, contextlib.closing(self.scalars):
            try:
                self._train(method, optimizers, stepper, streams, evaluator, state, progress)
            except Diverged as stop:
                self._write_outputs(state, "diverged", {"iteration": stop.iteration, "what": stop.what})
                raise
            if self.split.test:
                self._test(method, state, progress)
        self._write_outputs(state, "finished")
        return self._record(state, "finished")

    def _train(self, method: Method, optimizers: dict[str, torch.optim.Optimizer], stepper: Stepper,
               streams: TrainStreams, evaluator: Evaluator, state: RunState, progress: Progress) -> None:
        """The steps from ``state.iteration`` to the schedule's end, evaluating and checkpointing as set."""
        cfg, total = self.cfg, self.cfg.schedule.iters
        while state.iteration < total:
            iteration = state.iteration
            started = time.perf_counter()
            lr = self._set_lr(optimizers, iteration)
            parts, finite = stepper(streams.next, iteration)
            state.train_seconds += time.perf_counter() - started
            if finite:
                state.skipped_in_a_row = 0
                for key, value in parts.items():
                    state.sums[key] = state.sums.get(key, 0.0) + value
                state.count += 1
                self.scalars.step(iteration + 1, parts, lr)
            else:
                self._nonfinite(iteration, parts, stepper.nonfinite, state)
            state.iteration = iteration + 1
            progress.update(state.iteration, parts)
            if state.iteration % cfg.schedule.eval_every == 0 or state.iteration == total:
                self._evaluate(method, evaluator, state, lr, progress)
                self._save_if_main(method, optimizers, state)
                self._write_outputs(state, "running")
            elif cfg.schedule.checkpoint_every and state.iteration % cfg.schedule.checkpoint_every == 0:
                self._save_if_main(method, optimizers, state)

    def _test(self, method: Method, state: RunState, progress: Progress) -> None:
        """Evaluate the last and the best-on-val networks on the split's test list, once: val selected the
        best network and saw every evaluation, test reports both. The best network is read from best.pt
        into a second copy of the method (the last one may be wrapped in DDP)."""
        started = time.perf_counter()
        images = eval_dataset(self.split.test, self.root, self.cfg.data)
        evaluator = self.runtime.evaluator(images)
        results = {"last": (state.iteration, evaluator.run(unwrap(method.eval_model())))}
        best_iteration = state.best["iteration"] if state.best else state.iteration
        if best_iteration == state.iteration:
            results["best"] = results["last"]
        else:
            distributed.barrier()
            best, _, _ = self.runtime.method(self.method_cls)
            best.load_state_dict(checkpoint.read_networks(self.paths.best, self.runtime.device)["networks"])
            results["best"] = (best_iteration, evaluator.run(unwrap(best.eval_model())))
        self.test_counts = {which: _counts(iteration, result) for which, (iteration, result) in results.items()}
        self.test = {**self.test, "images": len(images), "sizes": images.reader.sizes(),
                     **{f"{which}_{key}": value for which, (iteration, result) in results.items()
                        for key, value in (("miou", result.miou), ("iou", result.iou), ("iteration", iteration))},
                     "per_image": self.paths.test_per_image.name,
                     "seconds": round(time.perf_counter() - started, 2)}
        progress.note(f"test ({len(images)} images): mIoU {100 * self.test['last_miou']:.2f} last, "
                      f"{100 * self.test['best_miou']:.2f} best on val (iteration {best_iteration})")

    def _wrap(self, method: Method) -> dict[str, nn.Module]:
        """Wrap the trained networks in DDP when there are several processes."""
        if self.dist.world == 1:
            return method.trainable()
        wrapped, device = {}, self.runtime.device
        for name, model in method.trainable().items():
            ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          broadcast_buffers=False,
                                          find_unused_parameters=self.cfg.trainer.find_unused_parameters)
            setattr(method, name, ddp)
            wrapped[name] = ddp
            self.wrapped_names.append(name)
        return wrapped

    def _nonfinite(self, iteration: int, parts: dict[str, float], tensors: list[str], state: RunState) -> None:
        """Skip a non-finite step (``on_nonfinite=skip``) while few are skipped, else stop the run, naming
        the step, what was not finite and what to lower; the last checkpoint (all finite) stays."""
        listing = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
        named = ", ".join(tensors[:8]) + (f" and {len(tensors) - 8} more" if len(tensors) > 8 else "")
        what = f"non-finite loss ({listing})" if not math.isfinite(parts.get("loss", 0.0)) else (
            f"finite loss ({listing}) but non-finite tensors after the step: {named}")
        kept = (f"the last good checkpoint ({self.paths.checkpoint}) is kept" if self.paths.checkpoint.exists()
                else "no checkpoint had been written yet")
        amp = self.runtime.numerics.amp
        lower = f"Lower optim.lr (now {self.cfg.optim.lr:g})" + (
            f" or run the step in float32 (trainer.amp=off, now {amp})" if amp != "off" else "")
        if self.cfg.trainer.on_nonfinite == "skip":
            in_a_row, in_all = state.skipped_in_a_row + 1, state.skipped_steps + 1
            allowed = max(MAX_SKIPPED_IN_A_ROW, int(MAX_SKIPPED_SHARE * self.cfg.schedule.iters))
            if in_a_row <= MAX_SKIPPED_IN_A_ROW and in_all <= allowed:
                state.skipped_in_a_row, state.skipped_steps = in_a_row, in_all
                self.log(f"iteration {iteration}: {what}; step skipped")
                return
            raise Diverged(f"iteration {iteration}: {what}. {in_a_row} steps in a row and "
                           f"{in_all} in all were non-finite, more than trainer.on_nonfinite=skip allows "
                           f"({MAX_SKIPPED_IN_A_ROW} in a row, {allowed} in all: {MAX_SKIPPED_SHARE:.0%} of the "
                           f"schedule's {self.cfg.schedule.iters} steps, at least {MAX_SKIPPED_IN_A_ROW}); the "
                           f"training diverged. The run stopped and its record says so; {kept}. {lower}.",
                           iteration, what)
        raise Diverged(f"non-finite loss at iteration {iteration}: {listing}. The run stopped and its record "
                       f"says so; {kept}. {lower}, or set trainer.on_nonfinite=skip to skip such steps",
                       iteration, what)

    def _evaluate(self, method: Method, evaluator: Evaluator, state: RunState, lr: float,
                  progress: Progress) -> None:
        result = evaluator.run(unwrap(method.eval_model()))
        count = max(state.count, 1)
        state.history.append({"iteration": state.iteration, "miou": result.miou, "iou": result.iou,
                              "pixels": int(result.confusion.sum()),
                              "losses": {k: v / count for k, v in state.sums.items()}, "lr": lr,
                              "train_seconds": round(state.train_seconds, 3)})
        state.sums, state.count = {}, 0
        counts = _counts(state.iteration, result)
        state.per_image["last"] = counts
        if state.best is None or result.miou > state.best["miou"]:
            state.best = {"miou": result.miou, "iteration": state.iteration, "iou": result.iou}
            state.per_image["best"] = counts
            if self.dist.is_main:
                checkpoint.save_networks(self.paths.best, self.identity, state.iteration, method, self.wrapped_names)
        self.scalars.evaluation(state.iteration, result.miou, self._images_per_second(state))
        progress.note(f"iteration {state.iteration}: mIoU {100 * result.miou:.2f} "
                      f"(best {100 * state.best['miou']:.2f})")

    def _save_if_main(self, method: Method, optimizers: dict[str, torch.optim.Optimizer], state: RunState) -> None:
        now = time.perf_counter()
        state.wall_seconds += now - self.clock
        self.clock = now
        if self.dist.is_main:
            checkpoint.save(self.paths.checkpoint, self.identity, state.as_dict(), method, optimizers,
                            self.wrapped_names)
        distributed.barrier()

    def _write_outputs(self, state: RunState, status: str, diverged: dict[str, Any] | None = None) -> None:
        if self.dist.is_main:
            write_metrics(self.paths, state.history)
            if state.per_image:
                write_per_image(self.paths.per_image, [image for image, _ in self.split.val], state.per_image)
            if self.test_counts:
                write_per_image(self.paths.test_per_image, [image for image, _ in self.split.test], self.test_counts)
            write_run_record(self.paths.record, self._record(state, status, diverged))

    def _record(self, state: RunState, status: str, diverged: dict[str, Any] | None = None) -> RunRecord:
        """The run record: results, protocol, data identity, cost, and environment."""
        cfg, split, last, best = self.cfg, self.split, state.history[-1] if state.history else None, state.best
        steps = state.iteration
        seconds = state.train_seconds
        numerics = self.runtime.numerics
        return RunRecord(
            status=status, diverged=diverged,
            method=self.method_cls.name, tag=self.paths.folder.parent.name.partition("+")[2] or None,
            method_params=self.resolved.as_dict()["method"], fidelity=self.method_cls.fidelity,
            dataset=split.dataset, split=split.name, preset=self.resolved.preset,
            labeled=len(split.labeled), unlabeled=len(split.unlabeled), val=len(split.val),
            val_sizes=self.val_sizes,
            labeled_fraction=split.fraction, split_sha256=self.identity.split_sha256,
            split_files=split.checksums(), split_provenance=split.provenance,
            data_root=str(self.root),
            generated_data=self.generated_data,
            seed=cfg.seed,
            iterations=cfg.schedule.iters, completed_iterations=steps,
            last_miou=last["miou"] if last else None, last_iou=last["iou"] if last else None,
            best_miou=best["miou"] if best else None, best_iteration=best["iteration"] if best else None,
            best_iou=best["iou"] if best else None, class_names=cfg.data.class_names,
            eval=self.runtime.protocol().as_dict(),
            per_image=self.paths.per_image.name if state.per_image else None,
            test=self.test,
            train_seconds=round(seconds, 2), wall_seconds=round(state.wall_seconds, 2),
            data_wait_share=round(state.data_seconds / seconds, 4) if seconds else None,
            images_per_second=self._images_per_second(state),
            tensorboard=self.scalars.folder,
            peak_memory_mb=round(peak_memory_mb(self.runtime.device), 1),
            world_size=self.dist.world, global_batch={"labeled": cfg.data.batch_size,
                                                      "unlabeled": cfg.data.unlabeled_batch_size},
            per_process_batch={"labeled": cfg.data.batch_size // self.dist.world,
                               "unlabeled": cfg.data.unlabeled_batch_size // self.dist.world},
            batchnorm=self.batchnorm,
            accumulate=cfg.schedule.accumulate, lr=cfg.optim.lr * lr_scale(cfg),
            lr_batch_rule=cfg.optim.lr_batch_rule, amp=numerics.amp, teacher_amp=numerics.teacher, eval_amp=numerics.eval,
            channels_last=numerics.channels_last, skipped_steps=state.skipped_steps,
            determinism=self._determinism(), weights=self.weights.as_dict() if self.weights else None,
            config_digest=self.identity.config_digest, started=state.started, updated=_now(),
            **environment(self.runtime.device),
        )

    def _images_per_second(self, state: RunState) -> float | None:
        """Training images (labeled, unlabeled and mix sources) consumed per second of training."""
        cfg = self.cfg
        per_step = images_per_step(self.method_cls, cfg.data)
        seconds = state.train_seconds
        return round(state.iteration * per_step * cfg.schedule.accumulate / seconds, 2) if seconds else None

    def _determinism(self) -> str:
        if self.runtime.device.type == "cpu":
            return "deterministic: CPU kernels, every random draw seeded per step"
        if self.cfg.trainer.deterministic:
            return "deterministic algorithms requested (cudnn.deterministic, use_deterministic_algorithms)"
        return ("not bit-reproducible on CUDA: cudnn.benchmark and atomic-add kernels; set "
                "trainer.deterministic=true for deterministic kernels")
