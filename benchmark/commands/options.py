"""Options several commands share, and the console they print to."""

from __future__ import annotations

import argparse

from rich.console import Console

console = Console()


def run_options(parser: argparse.ArgumentParser) -> None:
    """--preset, --config and --set: how a run's configuration is resolved."""
    parser.add_argument("--preset", help="dataset preset (default: the split's data set)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="YAML file of config overrides (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set optim.lr=0.01 (repeatable)")


def dataset_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-file", metavar="FILE",
                        help="your own data set's YAML file, for this command (or register it: datasets add FILE)")


def out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="your results folder (default: $BENCHMARK_RESULTS, else "
                        "results/local/ of the checkout, which git ignores)")
