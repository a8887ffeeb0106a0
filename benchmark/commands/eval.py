"""``eval``: evaluate a finished run's network again, on its val list or another (a test list)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.options import console, dataset_file_option
from benchmark.config import dtype_name


def add(commands: argparse._SubParsersAction) -> None:
    evaluation = commands.add_parser("eval", help="evaluate a finished run's network again, on its val list or another")
    evaluation.add_argument("run_dir", help="the run's folder (…/<method>/seed<k>)")
    evaluation.add_argument("--checkpoint", choices=["last", "best"], default="last",
                            help="the last checkpoint, or the networks of the best evaluation (best.pt)")
    evaluation.add_argument("--list", metavar="FILE", help="'image mask' lines relative to the data root "
                                                           "(default: the split's val list)")
    evaluation.add_argument("--data-root", help="data root of the list (default: as for the run)")
    evaluation.add_argument("--mode", choices=["original", "center_crop", "sliding_window"],
                            help="evaluation mode (default: the run's)")
    evaluation.add_argument("--set", action="append", default=[], metavar="trainer.KEY=VALUE",
                            help="override a device or numerics setting, e.g. --set trainer.eval_amp=off (repeatable)")
    dataset_file_option(evaluation)
    evaluation.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark import run_eval

    result, path = run_eval.evaluate_run(Path(args.run_dir), args.checkpoint, Path(args.list) if args.list else None,
                                         args.data_root, args.mode, args.set)
    console.print(f"{result['method']} {result['split']} seed {result['seed']}, {args.checkpoint} checkpoint "
                  f"(iteration {result['iteration']}), {result['images']} images of {result['list']}: "
                  f"mIoU {100 * result['miou']:.2f} (evaluation {dtype_name(result['eval_amp'])})", highlight=False)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0
