"""``datasets``: the built-in data sets and your own (``add FILE``), a small example data set (``example``)
and the demo generator (``demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from benchmark.commands.options import console
from benchmark.data import custom, layouts, roots
from benchmark.yaml_files import shipped_preset


def add(commands: argparse._SubParsersAction) -> None:
    datasets = commands.add_parser("datasets", help="the data sets: built-in ones and your own (one YAML file each)")
    datasets.set_defaults(func=handle_list)
    sub = datasets.add_subparsers(dest="datasets_command")
    register = sub.add_parser("add", help="register your data set's YAML file (see docs/datasets.md)")
    register.add_argument("file")
    register.set_defaults(func=handle_add)
    example = sub.add_parser("example", help="write a small example data set and its file into a folder")
    example.add_argument("folder")
    example.set_defaults(func=handle_example)
    demo_data = sub.add_parser("demo", help="generate the demo data set, or a variant of it, into a folder")
    demo_data.add_argument("folder")
    demo_data.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="a generator option other than its default (benchmark/data/demo.py DemoSpec), "
                                "e.g. max_distractors=2 or size=128")
    demo_data.set_defaults(func=handle_demo)


def handle_list(args: argparse.Namespace) -> int:
    table = Table(title="data sets")
    for column in ("data set", "classes", "preset", "layout under the root", "test set"):
        table.add_column(column)
    for name, layout in layouts.LAYOUTS.items():
        data = (shipped_preset(name) or {}).get("data", {})
        table.add_row(name, str(data.get("num_classes", "")), name if data else "", layout, layouts.test_set(name))
    for name in custom.registered():
        dataset = custom.find(name)
        table.add_row(name, f"{len(dataset.spec.classes)} ({dataset.spec.mask_format} masks)",
                      f"derived from {dataset.spec.base_preset}", f"{dataset.layout()}; root {dataset.root}",
                      layouts.test_set(name))
    console.print(table)
    return 0


def handle_add(args: argparse.Namespace) -> int:
    dataset, target = custom.add(Path(args.file))
    name = dataset.spec.name
    line = f"registered {name} ({len(dataset.spec.classes)} classes) as {target}"
    if dataset.root is not None:
        root = roots.resolve(name, None, None)
        found = layouts.pools(name, root)
        line += (f"; {len(found.pool)} training, {len(found.val)} val and {len(found.test)} test images "
                 f"under {root}")
    console.print(line + f". Next: python -m benchmark splits make --dataset {name} --ratios 1/8,1/4",
                  highlight=False, soft_wrap=True)
    return 0


def handle_example(args: argparse.Namespace) -> int:
    path = custom.write_example(Path(args.folder))
    console.print(f"wrote a small data set under {path.parent} and its file {path}. Next: python -m benchmark "
                  f"datasets add {path}", highlight=False, soft_wrap=True)
    return 0


def handle_demo(args: argparse.Namespace) -> int:
    from benchmark.data import demo

    spec = demo.spec_with(args.set)
    root = demo.ensure(Path(args.folder), spec)
    console.print(f"demo data ({', '.join(args.set) or 'the defaults'}) in {root}. Train on it: python -m "
                  f"benchmark run --method M --split demo_1_8 --data-root {root}", highlight=False, soft_wrap=True)
    return 0
