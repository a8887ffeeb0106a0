"""``sweep``: run methods x splits x seeds, each in its own process, skipping finished runs; locally one or
more at a time, or as a SLURM job array."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from benchmark.commands.options import console, dataset_file_option, out_option
from benchmark.errors import UserError
from benchmark.records import results_root


def add(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser("sweep", help="run methods x splits x seeds, skipping finished runs")
    sweep.add_argument("--methods", required=True, help="comma-separated method names")
    sweep.add_argument("--splits", required=True, help="comma-separated split names")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    sweep.add_argument("--print", action="store_true", help="print the commands (for a job array) instead")
    sweep.add_argument("--jobs", type=int, default=1,
                       help="runs at once on this machine, the cores divided among them (logs in <results>/sweep_logs)")
    slurm = sweep.add_argument_group("SLURM, through submitit (pip install -e '.[slurm]'); logs in <results>/slurm")
    slurm.add_argument("--slurm", action="store_true", help="submit the grid as one job array")
    slurm.add_argument("--slurm-local", action="store_true",
                       help="run the same array through submitit's local executor on this machine")
    slurm.add_argument("--partition", help="SLURM partition")
    slurm.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per run, torchrun when more than 1 (default 1)")
    slurm.add_argument("--cpus-per-run", type=int, default=8, help="CPU cores per run (default 8)")
    slurm.add_argument("--mem-gb", type=int, help="memory per run in GB")
    slurm.add_argument("--time", type=int, default=24 * 60,
                       help="minutes per job (default 1440); a run cut off is requeued and resumes")
    slurm.add_argument("--parallel", type=int, help="at most this many runs of the array at once")
    slurm.add_argument("--wait", action="store_true", help="wait for every run and say which failed")
    dataset_file_option(sweep)
    out_option(sweep)
    sweep.add_argument("passthrough", nargs=argparse.REMAINDER,
                       help="options after -- go to every run (e.g. -- --set schedule.iters=500)")
    sweep.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark import sweep

    seeds = [int(s) for s in re.split(r"[,\s]+", args.seeds.strip()) if s]
    passthrough = args.passthrough[1:] if args.passthrough[:1] == ["--"] else args.passthrough
    if args.passthrough and not args.passthrough[0].startswith("-"):
        raise UserError(f"{args.passthrough[0]!r} is not an option of sweep: lists are comma-separated "
                        f"(--seeds 1,2), and options for every run go after -- (-- --set schedule.iters=500)")
    extra = [*passthrough, *(["--out", args.out] if args.out else []),
             *(["--dataset-file", str(Path(args.dataset_file).resolve())] if args.dataset_file else [])]
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    if args.slurm or args.slurm_local:
        from benchmark import cluster

        if args.print or args.jobs > 1:
            raise UserError("--slurm goes alone: --print and --jobs are the other ways to run a sweep")
        options = cluster.ClusterOptions(partition=args.partition, gpus_per_run=args.gpus_per_run,
                                         cpus_per_run=args.cpus_per_run, mem_gb=args.mem_gb, time_min=args.time,
                                         parallel=args.parallel, local=args.slurm_local, wait=args.wait)
        return cluster.submit(sweep.commands(args.methods.split(","), args.splits.split(","), seeds, extra), options,
                              results_root(args.out) / "slurm", console)
    return sweep.run(args.methods.split(","), args.splits.split(","), seeds, extra, console, print_only=args.print,
                     jobs=args.jobs, logs=results_root(args.out) / "sweep_logs")
