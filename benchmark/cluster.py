"""Sweeps on a SLURM cluster through submitit (the optional ``slurm`` extra): the grid becomes one job array,
each task the same ``run`` command a local sweep makes, so skipping finished runs and resuming interrupted
ones work unchanged. A task that SLURM preempts or times out is requeued by submitit and resumes from its
run's checkpoint. submitit's local executor runs the same array on this machine (to try a grid first).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from benchmark.errors import UserError


@dataclass
class ClusterOptions:
    """What each task of the array asks the scheduler for."""

    partition: str | None = None
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: int | None = None
    time_min: int = 24 * 60
    parallel: int | None = None
    local: bool = False
    wait: bool = False


class RunCommand:
    """One grid run as a submitit job: its ``run`` command in a subprocess with ``threads`` torch threads.
    Raises when the run fails, so that submitit reports the task as failed."""

    def __init__(self, command: list[str], threads: int) -> None:
        self.command = command
        self.threads = threads

    def __call__(self) -> str:
        environment = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        returncode = subprocess.run(self.command, env=environment, check=False).returncode
        if returncode != 0:
            raise RuntimeError(f"exit status {returncode}: {shlex.join(self.command)}")
        return shlex.join(self.command)

    def checkpoint(self, *args: object, **kwargs: object) -> object:
        """Called by submitit on preemption or timeout: requeue the same command, which resumes the run."""
        import submitit

        return submitit.helpers.DelayedSubmission(RunCommand(self.command, self.threads))


def task_command(command: list[str], gpus: int) -> list[str]:
    """The command a task runs: the ``run`` command itself, or under torchrun with one process per GPU."""
    if gpus <= 1:
        return command
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
            *command[1:]]


def submit(todo: list[list[str]], options: ClusterOptions, folder: Path, console: Console) -> int:
    """Submit ``todo`` as one array (logs and submitit's files under ``folder``); with ``options.wait`` (or the
    local executor) wait for every task and return 0 when all finished, else 1."""
    try:
        import submitit
    except ImportError:
        raise UserError("sweep --slurm needs submitit: pip install -e '.[slurm]' (or use --print for your "
                        "own scheduler)") from None
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="local" if options.local else "slurm")
    except RuntimeError as error:
        raise UserError(f"cannot submit to SLURM here ({error}): run on the cluster's login node, or use "
                        "--slurm-local to try the grid on this machine") from None
    parameters: dict[str, object] = {"timeout_min": options.time_min, "cpus_per_task": options.cpus_per_run,
                                     "gpus_per_node": options.gpus_per_run, "name": "semiseg-bench"}
    if options.mem_gb is not None:
        parameters["mem_gb"] = options.mem_gb
    if not options.local:
        parameters["slurm_array_parallelism"] = options.parallel or len(todo)
        if options.partition:
            parameters["slurm_partition"] = options.partition
    executor.update_parameters(**parameters)
    threads = max(1, options.cpus_per_run // max(1, options.gpus_per_run))
    try:
        with executor.batch():
            jobs = [executor.submit(RunCommand(task_command(command, options.gpus_per_run), threads))
                    for command in todo]
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        raise UserError(f"submitting the array failed ({error}); submitit's files are in {folder}") from None
    console.print(f"submitted {len(jobs)} runs as {'local jobs' if options.local else 'array ' + jobs[0].job_id.split('_')[0]}"
                  f"; logs and submitit files in {folder}", highlight=False, soft_wrap=True)
    if not (options.wait or options.local):
        console.print("the runs skip finished work and resume from their checkpoints, so submitting the same "
                      "sweep again is safe; `python -m benchmark report` shows what has landed", highlight=False)
        return 0
    failed = []
    for job, command in zip(jobs, todo):
        try:
            job.result()
        except Exception as error:  # noqa: BLE001 - a failed task is reported with its log, the others go on
            failed.append(f"{shlex.join(command[4:])} (log: {job.paths.stderr}): {str(error).strip().splitlines()[-1]}")
    if failed:
        console.print(f"{len(failed)} of {len(todo)} runs failed:\n  " + "\n  ".join(failed), highlight=False,
                      soft_wrap=True)
        return 1
    console.print(f"all {len(todo)} runs finished", highlight=False)
    return 0
