"""The CUDA paths, on a machine with a GPU (``pytest -m cuda``; every test here is skipped without one):
each method's bf16 step against its float32 step, resume, evaluation, and two-process DDP on two GPUs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from benchmark import method as registry
from benchmark.evaluate import Evaluator, Protocol
from benchmark.records import RunPaths
from benchmark.step import Numerics, Stepper, build_method, build_optimizers
from helpers import resolve_tiny
from helpers import fixed_batch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
METHODS = list(registry.available())
TINY_RUN = ["--set", "schedule.iters=4", "--set", "schedule.eval_every=2", "--set", "data.crop_size=48",
            "--set", "data.batch_size=4", "--set", "data.unlabeled_batch_size=4", "--set", "model.head_channels=16",
            "--set", "model.low_level_channels=8"]


def on(device: torch.device, batch):
    """``batch`` with every tensor on ``device``."""
    def move(part):
        return None if part is None else dataclasses.replace(
            part, **{f.name: getattr(part, f.name).to(device) for f in dataclasses.fields(part)})
    return dataclasses.replace(batch, labeled=move(batch.labeled), unlabeled=move(batch.unlabeled), mix=move(batch.mix))


def first_step(name: str, numerics: Numerics) -> dict[str, float]:
    cls, cuda = registry.get(name), torch.device("cuda")
    resolved = resolve_tiny(cls)
    method, _, _ = build_method(resolved, cls, cuda, numerics)
    stepper = Stepper(method, build_optimizers(method, resolved.run), method.trainable(), numerics, cuda, seed=0,
                      total=10)
    batch = on(cuda, fixed_batch())
    parts, finite = stepper(lambda device, channels_last: batch, 0)
    assert finite and all(math.isfinite(v) for v in parts.values())
    return parts


@pytest.mark.parametrize("name", METHODS)
def test_cuda_bf16_step_agrees_with_the_float32_step(name: str) -> None:
    full = first_step(name, Numerics("off", False))
    half = first_step(name, Numerics("bf16", True, teacher="bf16", eval="bf16"))
    assert half["loss"] == pytest.approx(full["loss"], rel=0.05)


@pytest.mark.parametrize("name", METHODS)
def test_cuda_sigkill_and_resume_reproduce_the_uninterrupted_run(env, name: str) -> None:
    from test_reliability import kill_and_resume

    kill_and_resume(name, "--set", "trainer.device=cuda", "--set", "trainer.deterministic=true")


def test_cuda_evaluation_agrees_with_the_cpu_evaluation(env, tiny_root) -> None:
    from benchmark.data import splits
    from benchmark.data.pipeline import eval_dataset
    from methods.supervised import Supervised

    resolved = resolve_tiny(Supervised)
    cfg = resolved.run
    images = eval_dataset(splits.load("demo_1_4").val, tiny_root, cfg.data)
    results = {}
    for device in (torch.device("cpu"), torch.device("cuda")):
        method, _, _ = build_method(resolved, Supervised, device, Numerics("off", False))
        evaluator = Evaluator(images, Protocol.from_config(cfg.eval, (48, 48)), cfg.data.num_classes,
                              cfg.data.ignore_index, device, 8, 0, Numerics("off", False).autocast(device, "eval"),
                              False)
        results[device.type] = evaluator.run(method.eval_model()).miou
    assert results["cuda"] == pytest.approx(results["cpu"], abs=0.005)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_cuda_two_process_ddp_with_nccl(env) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "benchmark", "run",
                "--quiet", "--method", "fixmatch", "--split", "demo_1_4", *TINY_RUN]
    done = subprocess.run(launcher, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(RunPaths.of("demo", "demo_1_4", "fixmatch", 0).record.read_text())
    assert record["world_size"] == 2 and record["batchnorm"] == "torch SyncBatchNorm"
