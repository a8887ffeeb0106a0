"""``methods``: the registered methods, or one method's parameters with their defaults and meaning."""

from __future__ import annotations

import argparse

from rich.table import Table

from benchmark import method as method_registry
from benchmark.commands.options import console
from benchmark.settings import describe


def add(commands: argparse._SubParsersAction) -> None:
    methods = commands.add_parser("methods", help="list methods, or one method's parameters")
    methods.add_argument("name", nargs="?", help="show this method's parameters")
    methods.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.name:
        cls = method_registry.get(args.name)
        table = Table(title=f"{cls.name}: parameters ({cls.fidelity})")
        for column in ("key", "default", "meaning"):
            table.add_column(column)
        for key, default, doc in describe(cls.Params):
            table.add_row(f"method.{key}", repr(default), doc)
        console.print(table)
        return 0
    table = Table(title="registered methods")
    for column in ("name", "what it does", "paper", "implementation"):
        table.add_column(column)
    for name, cls in method_registry.available().items():
        table.add_row(name, cls.summary, cls.paper, cls.fidelity)
    console.print(table)
    return 0
