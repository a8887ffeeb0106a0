"""``run``: train one method on one split with one seed (resumes an interrupted run)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from benchmark import config as config_module
from benchmark import distributed, method as method_registry
from benchmark.commands.options import console, dataset_file_option, out_option, run_options
from benchmark.data import roots, splits, validate
from benchmark.errors import UserError
from benchmark.records import RunLock, RunPaths, writable_root
from benchmark.run_folder import RunFolder, checked_tag, scores
from benchmark.yaml_files import default_preset


def add(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="train one method on one split")
    run.add_argument("--method", required=True, help="registered name or package.module:Class")
    run.add_argument("--split", required=True, help="split name, e.g. demo_1_8 or voc_1_16")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--data-root", help="dataset root (else BENCHMARK_<DATASET>_ROOT)")
    run.add_argument("--pretrained", help="ImageNet weights file for the encoder, or 'none'")
    run.add_argument("--tag", help="name a variant: results go to <method>+<tag>/")
    run.add_argument("--fresh", action="store_true", help="set the existing run folder aside and start over")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    dataset_file_option(run)
    out_option(run)
    run_options(run)
    run.set_defaults(func=handle)


def resolve(args: argparse.Namespace, method_cls: type, split: splits.Split) -> config_module.Resolved:
    """The run's configuration: the preset (the split's by default), the method's defaults, config files,
    the seed and encoder weights given, and --set overrides."""
    preset = args.preset or default_preset(split.name, split.dataset)
    extra: dict = {"seed": args.seed}
    if args.pretrained:
        extra["model"] = {"pretrained": args.pretrained}
    resolved = config_module.resolve(preset, method_cls.Params, [Path(p) for p in args.config], args.set, extra)
    if resolved.run.data.dataset != split.dataset:
        raise UserError(f"preset {preset!r} is for data set {resolved.run.data.dataset!r} but split "
                        f"{split.name} belongs to {split.dataset!r}; pick a preset of {split.dataset}")
    return resolved


def check_split(split: splits.Split, root: Path) -> None:
    """Refuse a split whose lists point at missing files, naming each problem."""
    problems = validate.quick_problems(split, root)
    if problems:
        raise UserError(f"split {split.name} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
                        + f"\nFix the split files or --data-root; 'python -m benchmark splits check "
                        f"{split.name}' reports every problem")


def handle(args: argparse.Namespace) -> int:
    from benchmark.trainer import Trainer

    tag = checked_tag(args.tag)
    dist = distributed.setup()
    try:
        method_cls = method_registry.get(args.method)
        split = splits.load(args.split)
        resolved = resolve(args, method_cls, split)
        paths = RunPaths.of(split.dataset, split.name, method_cls.name, resolved.run.seed, tag,
                            writable_root(args.out))
        folder = RunFolder(paths)
        record = None if args.fresh else folder.finished(resolved)
        if record is not None:
            if dist.is_main:
                console.print(f"already finished: {paths.folder} ({scores(record)}); --fresh to train again",
                              highlight=False, soft_wrap=True)
            return 0
        with RunLock(paths.lock) if dist.is_main else contextlib.nullcontext():
            if dist.is_main:
                moved = folder.set_aside() if args.fresh else None
                if moved:
                    console.print(f"previous run moved to {moved}")
                folder.remove_partial_writes()
            distributed.barrier()
            root = roots.resolve(split.dataset, args.data_root, resolved.run.data.root)
            check_split(split, root)
            record = Trainer(resolved, method_cls, split, root, paths, show_progress=not args.quiet).run()
    finally:
        distributed.teardown()
    if dist.is_main:
        console.print(f"[bold]{method_cls.name}[/] on {split.name} seed {resolved.run.seed}: {scores(record)}, "
                      f"{record.train_seconds:.0f} s", highlight=False, soft_wrap=True)
        console.print(f"record: {paths.record}")
    return 0
