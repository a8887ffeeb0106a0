"""``weights``: the ImageNet encoder weights on this machine, and fetching torchvision's."""

from __future__ import annotations

import argparse

from rich.table import Table

from benchmark.commands.options import console


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("weights", help="ImageNet weights: what is here, and fetching torchvision's")
    sub = parser.add_subparsers(dest="weights_command", required=True)
    sub.add_parser("list", help="what pretrained: auto finds for every backbone").set_defaults(func=handle_list)
    fetch = sub.add_parser("get", help="fetch torchvision's ImageNet weights into torch's hub cache")
    fetch.add_argument("backbone", choices=["resnet18", "resnet50", "resnet101"])
    fetch.set_defaults(func=handle_get)


def handle_list(args: argparse.Namespace) -> int:
    from benchmark import weights

    table = Table(title="ImageNet weights on this machine (what pretrained: auto finds)")
    for column in ("backbone", "variant", "weights"):
        table.add_column(column)
    for row in weights.listing():
        table.add_row(*row)
    console.print(table)
    return 0


def handle_get(args: argparse.Namespace) -> int:
    from benchmark import weights

    path, sha = weights.get(args.backbone)
    console.print(f"{args.backbone}: {path} (sha256 {sha}); pretrained: auto finds it", highlight=False,
                  soft_wrap=True)
    return 0
