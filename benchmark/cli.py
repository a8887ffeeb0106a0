"""Command line: ``python -m benchmark <command>``.

run      train one method on one split with one seed (resumes an interrupted run)
sweep    run methods x splits x seeds, each in its own process, skipping finished runs
report   tables (terminal, CSV, Markdown) and plots of your finished runs beside the reference runs
promote  copy finished runs of yours into the suite's reference records (results/reference/)
eval     evaluate a finished run's network again, on its val list or another
methods  the registered methods
datasets the built-in data sets and your own (datasets add FILE, datasets example DIR)
splits   list, make, import and check split files
weights  ImageNet weights: what is here, and fetching torchvision's
bench    what a training step of each method costs, where its time goes, against its network calls
gpu-check  does the trainer work on this machine's GPU: every method trained briefly, one table
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from benchmark import commands
from benchmark.errors import Diverged, UserError


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (each module of ``benchmark.commands`` adds its own)."""
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in commands.ALL:
        command.add(subparsers)
    return parser


def user_message(error: BaseException) -> str:
    """The user's message of a UserError, also when it was raised inside a DataLoader worker (torch
    re-raises it with the worker's traceback as its message; the message proper follows the last
    ``<ClassName>: `` of that traceback)."""
    text = str(error)
    marker = f"{type(error).__name__}: "
    if "Original Traceback" in text and marker in text:
        text = text.rsplit(marker, 1)[1].strip()
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "dataset_file", None):
            from benchmark.data import custom

            custom.use(Path(args.dataset_file))
        return int(args.func(args) or 0)
    except UserError as error:
        if args.debug:
            raise
        Console(stderr=True).print("[bold red]error:[/]", escape(user_message(error)), highlight=False,
                                   soft_wrap=True)
        return Diverged.EXIT_CODE if isinstance(error, Diverged) else 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; run the same command again to resume from the last checkpoint")
        return 130


if __name__ == "__main__":
    sys.exit(main())
