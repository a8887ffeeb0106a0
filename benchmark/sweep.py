"""Sweeps: every (split, method, seed) as its own ``run`` process, one after another or ``--jobs`` at a time.

A finished run is skipped by ``run`` itself, so a sweep that was interrupted continues where it stopped,
and a failing run does not stop the others. ``--print`` lists the commands instead, one per line, ready
for a scheduler's job array (e.g. SLURM's ``sbatch --array`` with ``sed -n "${SLURM_ARRAY_TASK_ID}p"``).
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from benchmark.errors import Diverged


def commands(methods: list[str], splits: list[str], seeds: list[int], extra: list[str]) -> list[list[str]]:
    """The ``run`` command of every combination (``extra`` appended to each), splits outermost and seeds
    innermost."""
    return [[sys.executable, "-m", "benchmark", "run", "--method", method, "--split", split, "--seed", str(seed),
             *extra] for split in splits for method in methods for seed in seeds]


def run(methods: list[str], splits: list[str], seeds: list[int], extra: list[str], console: Console,
        print_only: bool = False, jobs: int = 1, logs: Path | None = None) -> int:
    """Run (or print) the sweep; returns 0 when every run finished, else 1. With ``jobs`` > 1, that many
    runs go at once, each with ``cores // jobs`` torch threads (OMP_NUM_THREADS: an execution detail, not
    part of the run's configuration) and its output in ``logs/<run>.log``."""
    todo = commands(methods, splits, seeds, extra)
    if print_only:
        for command in todo:
            console.print(shlex.join(command), highlight=False, soft_wrap=True)
        return 0
    if jobs > 1:
        return _parallel(todo, jobs, console, logs or Path("sweep_logs"))
    failed = []
    for index, command in enumerate(todo, 1):
        console.rule(f"[{index}/{len(todo)}] {' '.join(command[4:])}")
        code = subprocess.run(command, check=False).returncode
        if code != 0:
            failed.append((shlex.join(command[4:]), code))
    return _summary(failed, len(todo), console)


def _summary(failed: list[tuple[str, int]], total: int, console: Console) -> int:
    """Say which runs diverged (their records are kept and counted) and which failed; 0 when none did."""
    diverged = [command for command, code in failed if code == Diverged.EXIT_CODE]
    broken = [command for command, code in failed if code != Diverged.EXIT_CODE]
    if diverged:
        console.print(f"{len(diverged)} of {total} runs diverged (their records say so and report counts "
                      "them):\n  " + "\n  ".join(diverged))
    if broken:
        console.print(f"{len(broken)} of {total} runs failed:\n  " + "\n  ".join(broken))
    if failed:
        return 1
    console.print(f"all {total} runs finished")
    return 0


def _parallel(todo: list[list[str]], jobs: int, console: Console, logs: Path) -> int:
    """Run ``jobs`` commands at a time with the cores divided among them; one status line per change:
    runs done, running and left, and an ETA from the finished runs' own durations."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    logs.mkdir(parents=True, exist_ok=True)
    pending, running, failed, durations = list(todo), [], [], []
    while pending or running:
        while pending and len(running) < jobs:
            command = pending.pop(0)
            name = "_".join(command[5:10:2]).replace("/", "-")
            handle = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed when the process ends
            running.append((subprocess.Popen([*command, "--quiet"], stdout=handle, stderr=subprocess.STDOUT,
                                             env=environment), command, handle, time.monotonic()))
            _status(console, len(todo), len(durations) + len(failed), running, pending, durations, jobs)
        time.sleep(0.5)
        for entry in list(running):
            process, command, handle, started = entry
            if process.poll() is None:
                continue
            handle.close()
            running.remove(entry)
            durations.append(time.monotonic() - started)
            if process.returncode != 0:
                failed.append((f"{shlex.join(command[4:])} (log: {handle.name})", process.returncode))
            _status(console, len(todo), len(durations), running, pending, durations, jobs)
    return _summary(failed, len(todo), console)


def _status(console: Console, total: int, done: int, running: list, pending: list, durations: list[float],
            jobs: int) -> None:
    if durations:
        left = (len(pending) + len(running)) * statistics.mean(durations) / jobs
        eta = f"ETA {left / 60:.0f} min"
    else:
        eta = "ETA after the first run"
    console.print(f"{done} done, {len(running)} running, {len(pending)} left of {total} ({jobs} at a time); {eta}",
                  highlight=False)
