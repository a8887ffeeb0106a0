"""``report``: tables (terminal, CSV, Markdown, LaTeX) and plots of finished runs, yours beside the suite's."""

from __future__ import annotations

import argparse

from benchmark.commands.options import console, out_option
from benchmark.errors import UserError


def add(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="tables and plots of finished runs: yours and the reference")
    out_option(report)
    report.add_argument("--runs", choices=["both", "local", "reference"], default="both",
                        help="whose runs: yours (local), the suite's committed ones (reference), or both side by "
                             "side (default). Tables go to your results folder; with 'reference' alone to "
                             "results/reference/")
    report.add_argument("--latex", action="store_true",
                        help="also write the headline table as LaTeX (booktabs) to summary.tex")
    report.add_argument("--readme", action="store_true",
                        help="with --runs reference: rewrite the README's results block (protocol, headline table, "
                             "plot) from the committed records")
    report.add_argument("--compare", metavar="A,B",
                        help="difference in mIoU of method A minus B on every split where both ran, with its paired "
                             "bootstrap interval over the evaluation images (test where the runs have it) and the "
                             "difference on each seed both ran (labels as in the table, e.g. speed+nodistill)")
    report.add_argument("--groups", metavar="DATASET=REGEX",
                        help="also break the last mIoU of every cell of DATASET down by groups of evaluation images, "
                             "a group being the part of the file name REGEX matches (its first group if any), e.g. "
                             "camvid='^[^_]+' for CamVid's drives; written to per_group.{csv,md}")
    report.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark import PROJECT_ROOT, report

    pair = None
    if args.compare:
        pair = tuple(name.strip() for name in args.compare.split(","))
        if len(pair) != 2 or not all(pair):
            raise UserError(f"--compare takes two method labels, e.g. --compare unimatch,supervised; got {args.compare!r}")
    groups = None
    if args.groups:
        dataset, _, pattern = args.groups.partition("=")
        if not dataset.strip() or not pattern:
            raise UserError(f"--groups takes DATASET=REGEX, e.g. --groups camvid='^[^_]+'; got {args.groups!r}")
        groups = (dataset.strip(), pattern)
    report.main(console, args.out, args.runs, latex=args.latex, compare_methods=pair,
                readme=PROJECT_ROOT / "README.md" if args.readme else None, groups=groups)
    return 0
