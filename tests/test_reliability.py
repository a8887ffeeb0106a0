"""Resume after SIGKILL reproduces the uninterrupted run for every method; runs are deterministic;
several processes (torchrun, gloo) train with DistributedDataParallel."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmark import method as registry
from benchmark.records import RunPaths, read_per_image

TINY = ["--set", "data.crop_size=48", "--set", "data.workers=0", "--set", "data.batch_size=4",
        "--set", "data.unlabeled_batch_size=4", "--set", "model.head_channels=16",
        "--set", "model.low_level_channels=8", "--set", "eval.batch_size=8"]


def command(method: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmark", "run", "--quiet", "--method", method, "--split", "demo_1_4",
            *TINY, *extra]


def history(paths: RunPaths) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    lines = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "train_seconds"} for line in lines]


def checkpoint_iteration(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["iteration"]
    except Exception:  # noqa: BLE001 - not written yet
        return -1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(registry.available()))
def test_sigkill_and_resume_reproduces_the_uninterrupted_run(env, name: str) -> None:
    kill_and_resume(name)


def kill_and_resume(name: str, *extra: str) -> None:
    """Train ``name`` whole and, under another tag, killed after a checkpoint and resumed: the two runs'
    histories, records and per-image counts are identical."""
    schedule = ["--set", "schedule.iters=6", "--set", "schedule.eval_every=3", "--set", "schedule.checkpoint_every=2",
                *extra]
    subprocess.run(command(name, *schedule, "--tag", "whole"), check=True, capture_output=True)
    whole = RunPaths.of("demo", "demo_1_4", name, 0, "whole")
    cut = RunPaths.of("demo", "demo_1_4", name, 0, "cut")
    process = subprocess.Popen(command(name, *schedule, "--tag", "cut"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while checkpoint_iteration(cut.checkpoint) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_iteration(cut.checkpoint)
    assert 2 <= killed_at < 6, f"killed after iteration {killed_at}"
    assert cut.lock.exists()  # the killed process could not clean up; the next one takes the lock over
    resumed = subprocess.run(command(name, *schedule, "--tag", "cut"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {cut.folder} at iteration {killed_at}" in " ".join(resumed.stdout.split())
    assert history(cut) == history(whole)
    a, b = json.loads(whole.record.read_text()), json.loads(cut.record.read_text())
    for key in ("last_miou", "best_miou", "last_iou", "best_iteration", "completed_iterations", "status"):
        assert a[key] == b[key], key
    per_whole, per_cut = read_per_image(whole.per_image), read_per_image(cut.per_image)
    assert per_whole.keys() == per_cut.keys() and all((per_whole[k] == per_cut[k]).all() for k in per_whole)


@pytest.mark.slow
def test_two_runs_with_one_seed_give_identical_records(env) -> None:
    for tag in ("first", "second"):
        subprocess.run(command("fixmatch", "--set", "schedule.iters=4", "--set", "schedule.eval_every=2",
                               "--tag", tag), check=True, capture_output=True)
    first, second = (RunPaths.of("demo", "demo_1_4", "fixmatch", 0, tag) for tag in ("first", "second"))
    assert history(first) == history(second)
    record = json.loads(first.record.read_text())
    assert record["determinism"].startswith("deterministic: CPU")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("method", list(registry.available()))
def test_torchrun_with_two_cpu_processes(env, tiny_root, method: str) -> None:
    """Every method trains under torchrun (two gloo processes, DDP-wrapped trainable networks) to a complete
    record written once, with every val image evaluated exactly once."""
    from benchmark.data import demo, splits

    pool = [(demo.image_path("train", i), demo.mask_path("train", i)) for i in range(32)]
    val = [(demo.image_path("val", i), demo.mask_path("val", i)) for i in range(7)]  # odd: no padded sampler
    splits.write("demo", "demo_1_2", pool[:16], pool[16:], {"summary": "ddp test"}, val)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    run = [*launcher, "-m", "benchmark", "run", "--quiet", "--method", method, "--split", "demo_1_2", *TINY,
           "--set", "schedule.iters=2", "--set", "schedule.eval_every=2"]
    done = subprocess.run(run, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = RunPaths.of("demo", "demo_1_2", method, 0)
    record = json.loads(paths.record.read_text())
    assert record["world_size"] == 2 and record["status"] == "finished"
    assert all(math.isfinite(value) for value in history(paths)[-1]["losses"].values())
    per_image = read_per_image(paths.per_image)  # each image counted once, by one of the two processes
    counted = (per_image["last_union"] + per_image["last_intersection"]).sum(1)  # 2 x pixels (64 px images)
    assert per_image["last_union"].shape == (7, 7) and (counted == 2 * 64 * 64).all()
    assert record["global_batch"] == {"labeled": 4, "unlabeled": 4}
    assert record["per_process_batch"] == {"labeled": 2, "unlabeled": 2}
    assert record["batchnorm"] == "cross-process BatchNorm (gloo all_reduce)"
    assert [line["pixels"] for line in history(paths)] == [7 * 64 * 64]  # every val image exactly once
    assert done.stdout.count(f"{method} on demo_1_2 seed 0: val mIoU last") == 1  # only rank 0 reports and writes
    assert sorted(p.name for p in paths.folder.iterdir() if p.name != "tensorboard") == ["best.pt", "checkpoint.pt", "config.yaml",
                                                              "metrics.jsonl", "per_image.npz", "record.json"]
