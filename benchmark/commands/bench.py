"""``bench``: what a training step of each method costs on this machine and where its time goes, side by
side; with ``--split``, the loader and the evaluation on that split's data too."""

from __future__ import annotations

import argparse

from benchmark import config as config_module
from benchmark import method as method_registry
from benchmark.commands.options import console, dataset_file_option
from benchmark.data import roots, splits
from benchmark.errors import UserError
from benchmark.records import results_root


def add(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="what a training step of each method costs and where its time goes")
    bench.add_argument("--methods", default="all", help="comma-separated method names (default: all registered)")
    bench.add_argument("--preset", default="demo")
    bench.add_argument("--steps", type=int, default=10, help="timed steps per method (after 2 warm-up steps)")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--vary", metavar="KEY=V1,V2", help="also compare values of one setting, "
                       "e.g. trainer.channels_last=on,off or data.crop_size=64,96,128; values with commas "
                       "are separated by ';': data.crop_size='[144,192];128'")
    bench.add_argument("--split", help="also measure the loader and the evaluation on this split's data")
    bench.add_argument("--data-root", help="data root of --split (else BENCHMARK_<DATASET>_ROOT)")
    bench.add_argument("--out", metavar="DIR", help="results folder; the JSON goes to DIR/bench/ (default: "
                       "$BENCHMARK_RESULTS, else results/local/)")
    dataset_file_option(bench)
    bench.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark import bench_data, bench_steps

    methods = list(method_registry.available()) if args.methods == "all" else args.methods.split(",")
    data = None
    if args.split:
        split = splits.load(args.split)
        resolved = config_module.resolve(args.preset, overrides=args.set)
        if resolved.run.data.dataset != split.dataset:
            raise UserError(f"--split {split.name} belongs to {split.dataset!r} but preset {args.preset!r} is for "
                            f"{resolved.run.data.dataset!r}")
        root = roots.resolve(split.dataset, args.data_root, resolved.run.data.root)
        data = bench_data.DataBench(split, root, resolved, console)
    bench_steps.main(methods, args.preset, args.steps, args.set, console, args.vary,
                     save=results_root(args.out) / "bench", data=data)
    return 0
