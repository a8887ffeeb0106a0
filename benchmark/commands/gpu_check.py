"""``gpu-check``: does the trainer work on this machine's GPU; every method trained briefly, one table and
a JSON (without CUDA one line and exit 0)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.options import console


def add(commands: argparse._SubParsersAction) -> None:
    gpu = commands.add_parser("gpu-check", help="every method trained briefly on this machine's GPU, one table "
                              "and a JSON (one line and exit 0 without CUDA)")
    gpu.add_argument("--out", metavar="DIR", help="folder of the JSON (default: results/bench/ of the checkout)")
    gpu.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark import gpu_check

    return gpu_check.main(console, Path(args.out) if args.out else None)
