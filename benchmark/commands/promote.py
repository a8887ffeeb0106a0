"""``promote``: copy finished runs of yours into the suite's reference records (results/reference/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.options import console


def add(commands: argparse._SubParsersAction) -> None:
    promote = commands.add_parser("promote", help="copy finished runs into the suite's reference records")
    promote.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a finished run's folder (…/seed<k>)")
    promote.add_argument("--replace", action="store_true", help="replace a reference run of the same name")
    promote.add_argument("--as-tag", metavar="TAG", help="file the run as the tagged variant TAG, or as the method "
                         "itself with none (when a preset changes; then git rm the old folder)")
    promote.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark import reference

    for line in reference.promote([Path(folder) for folder in args.run_dirs], args.replace, as_tag=args.as_tag):
        console.print(line, highlight=False, soft_wrap=True)
    return 0
