"""Sweeps: every (split, method, seed) as its own ``run`` process, one after another.

A finished run is skipped by ``run`` itself, so a sweep that was interrupted continues where it stopped,
and a failing run does not stop the others. ``--print`` lists the commands instead, one per line, ready
for a scheduler's job array (e.g. SLURM's ``sbatch --array`` with ``sed -n "${SLURM_ARRAY_TASK_ID}p"``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from rich.console import Console


def commands(methods: list[str], splits: list[str], seeds: list[int], extra: list[str]) -> list[list[str]]:
    """The ``run`` command of every combination (``extra`` appended to each), splits outermost and seeds
    innermost."""
    return [[sys.executable, "-m", "benchmark", "run", "--method", method, "--split", split, "--seed", str(seed),
             *extra] for split in splits for method in methods for seed in seeds]


def run(methods: list[str], splits: list[str], seeds: list[int], extra: list[str], console: Console,
        print_only: bool = False) -> int:
    """Run (or print) the sweep; returns 0 when every run finished, else 1."""
    todo = commands(methods, splits, seeds, extra)
    if print_only:
        for command in todo:
            console.print(shlex.join(command), highlight=False, soft_wrap=True)
        return 0
    failed = []
    for index, command in enumerate(todo, 1):
        console.rule(f"[{index}/{len(todo)}] {' '.join(command[4:])}")
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(shlex.join(command[4:]))
    if failed:
        console.print(f"{len(failed)} of {len(todo)} runs failed:\n  " + "\n  ".join(failed))
        return 1
    console.print(f"all {len(todo)} runs finished")
    return 0
