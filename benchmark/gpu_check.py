"""``python -m benchmark gpu-check``: does the trainer work on this machine's GPU? One call, one table.

For each registered method: 200 steps on the demo data at the VOC preset's model (ResNet-101 DeepLabV3+,
crop 321, 8 + 8 images, from scratch: nothing can be downloaded) and at the CPU presets' model
(EfficientNet-Lite0), each its own ``run`` process, read back from its record: step time, images/s, peak
memory, whether every logged loss was finite, mIoU after. Then ``pytest -m cuda``, ``bench`` on CUDA and
a one-GPU ``torchrun`` run. Everything goes to ``results/bench/gpu-check-<time>.json``. Without CUDA it
says so in one line and exits 0, so that the command is safe to try anywhere.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmark import PROJECT_ROOT
from benchmark import method as registry
from benchmark.atomic import write_text
from benchmark.records import environment
from benchmark.run_record import read_run_record

STEPS = 200
MODELS = {
    "resnet101-321": ["--set", "model.backbone=resnet101", "--set", "model.pretrained=none",
                      "--set", "model.head_channels=256", "--set", "model.low_level_channels=48",
                      "--set", "data.crop_size=321", "--set", "data.scale_range=[0.5,2.0]"],
    "efficientnet_lite0": [],
}
"""The two models of the check, as overrides of the demo preset (8 + 8 images in both)."""
RUN_TIMEOUT_S = 150
"""Seconds one method's 200 steps may take before the check moves on (about 8 minutes in all)."""


def _run(command: list[str], timeout: int) -> dict[str, Any]:
    """A subprocess's exit status, duration and the tail of its output; a timeout is a result too."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status, output = "timeout", f"{expired.stdout or ''}{expired.stderr or ''}"
    return {"command": command[1:], "status": status, "seconds": round(time.perf_counter() - started, 1),
            "output_tail": str(output)[-2000:]}


def _train(method: str, model: str, out: Path) -> dict[str, Any]:
    """One method's 200 steps at one model, read back from its record."""
    command = [sys.executable, "-m", "benchmark", "run", "--quiet", "--method", method, "--split", "demo_1_16",
               "--out", str(out), "--tag", model.replace("_", "-"), "--set", f"schedule.iters={STEPS}",
               "--set", f"schedule.eval_every={STEPS}", *MODELS[model]]
    result = _run(command, RUN_TIMEOUT_S)
    folder = out / "runs" / "demo" / "demo_1_16" / f"{method}+{model.replace('_', '-')}" / "seed0"
    record = read_run_record(folder / "record.json")
    losses = [line.get("losses", {}) for line in _lines(folder / "metrics.jsonl")]
    finite = bool(losses) and all(math.isfinite(v) for part in losses for v in part.values())
    seconds = record.train_seconds if record else None
    return {"method": method, "model": model, "status": result["status"], "seconds": result["seconds"],
            "step_ms": round(1000 * seconds / STEPS, 1) if seconds else None,
            "images_per_second": record.images_per_second if record else None,
            "peak_memory_mb": record.peak_memory_mb if record else None,
            "loss_finite": finite and record is not None and record.skipped_steps == 0,
            "miou": round(100 * record.last_miou, 2) if record and record.last_miou is not None else None,
            "output_tail": result["output_tail"] if result["status"] != 0 else ""}


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"gpu-check: {STEPS} steps per method on demo_1_16, 8 + 8 images")
    for column in ("method", "model", "status", "step ms", "images/s", "peak MB", "loss finite", "mIoU"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["method"], row["model"], str(row["status"]), str(row["step_ms"]),
                      str(row["images_per_second"]), str(row["peak_memory_mb"]), str(row["loss_finite"]),
                      str(row["miou"]))
    return table


def main(console: Console, out: Path | None = None) -> int:
    """Run the check (see the module's docstring); 0 when every part passed or there is no CUDA, else 1."""
    if not torch.cuda.is_available():
        console.print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is false); "
                      "nothing to check", highlight=False, soft_wrap=True)
        return 0
    target = out or PROJECT_ROOT / "results" / "bench"
    report: dict[str, Any] = {"created": datetime.now().isoformat(timespec="seconds"),
                              **environment(torch.device("cuda")), "steps": STEPS, "trainings": []}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        for model in MODELS:
            for method in registry.available():
                row = _train(method, model, Path(scratch))
                report["trainings"].append(row)
                console.print(f"{method} at {model}: {row['status']}, {row['step_ms']} ms a step", highlight=False)
        console.print(_table(report["trainings"]))
        report["pytest_cuda"] = _run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"],
                                     300)
        report["bench"] = _run([sys.executable, "-m", "benchmark", "bench", "--split", "demo_1_16", "--steps", "5",
                                "--out", str(target.parent)], 300)  # its JSON beside this one
        report["torchrun"] = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m",
                                   "benchmark", "run", "--quiet", "--method", "fixmatch", "--split", "demo_1_16",
                                   "--out", scratch, "--tag", "torchrun", "--set", "schedule.iters=20",
                                   "--set", "schedule.eval_every=20"], 180)
    for part in ("pytest_cuda", "bench", "torchrun"):
        console.print(f"{part}: {report[part]['status']} in {report[part]['seconds']} s", highlight=False)
    path = target / f"gpu-check-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    write_text(path, json.dumps(report, indent=2) + "\n")
    console.print(f"written: {path}", highlight=False, soft_wrap=True)
    passed = all(row["status"] == 0 and row["loss_finite"] for row in report["trainings"]) and all(
        report[part]["status"] == 0 for part in ("pytest_cuda", "bench", "torchrun"))
    return 0 if passed else 1
