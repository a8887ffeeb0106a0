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
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmark import config as config_module
from benchmark import distributed, method as method_registry
from benchmark.data import layouts, roots, splits, validate
from benchmark.errors import UserError
from benchmark.records import RunLock, RunPaths, read_record, results_root, writable_root
from benchmark.settings import describe

console = Console()


def default_preset(split: splits.Split) -> str:
    """The preset whose name is the longest prefix of the split's name (``voc_u2pl`` for
    ``voc_u2pl_1_16``), else the data set's."""
    names = [p for p in config_module.presets() if split.name.startswith(p + "_")]
    return max(names, key=len) if names else split.dataset


def _resolve(args: argparse.Namespace, method_cls: type, split: splits.Split) -> config_module.Resolved:
    preset = args.preset or default_preset(split)
    extra: dict = {"seed": args.seed}
    if args.pretrained:
        extra["model"] = {"pretrained": args.pretrained}
    resolved = config_module.resolve(preset, method_cls.Params, [Path(p) for p in args.config],
                                     args.set, extra)
    if resolved.run.data.dataset != split.dataset:
        raise UserError(f"preset {preset!r} is for data set {resolved.run.data.dataset!r} but split "
                        f"{split.name} belongs to {split.dataset!r}; pick a preset of {split.dataset}")
    return resolved


def _check_split(split: splits.Split, root: Path) -> None:
    problems = validate.quick_problems(split, root)
    if problems:
        raise UserError(f"split {split.name} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
                        + f"\nFix the split files or --data-root; 'python -m benchmark splits check "
                        f"{split.name}' reports every problem")


TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A variant's name: it becomes part of a folder name (``<method>+<tag>``)."""


def _checked_tag(tag: str | None) -> str | None:
    if tag is not None and not TAG.fullmatch(tag):
        raise UserError(f"--tag {tag!r} is not a name: use letters, digits, '.', '_' and '-' (up to 64, starting "
                        "with a letter or digit), e.g. --tag lr001")
    return tag


def _set_aside(folder: Path, keep: Path) -> Path:
    """Move a run's files out of the way (``--fresh``) instead of deleting them; ``keep`` (the lock held
    by this process) stays, so that no other process can start the run meanwhile."""
    target = folder.with_name(f"{folder.name}.replaced-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    target.mkdir()
    for entry in folder.iterdir():
        if entry != keep:
            shutil.move(str(entry), str(target / entry.name))
    return target


def _flat(data: dict, prefix: str = "") -> dict[str, object]:
    """A nested configuration as {'optim.lr': 0.05, ...}."""
    out: dict[str, object] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _refuse_other_configuration(paths: RunPaths, resolved: config_module.Resolved, record: dict) -> None:
    """A finished run answers 'already finished' only for its own configuration."""
    if record.get("config_digest") in (None, resolved.digest()):
        return
    try:
        before = _flat(yaml.safe_load(paths.config.read_text()) or {})
    except (OSError, yaml.YAMLError):
        before = {}
    now = _flat(resolved.as_dict())
    changed = [f"{k}: {before.get(k)!r} there, {now[k]!r} now" for k in now if k in before and before[k] != now[k]]
    detail = f" ({'; '.join(changed[:4])})" if changed else ""
    raise UserError(f"{paths.folder} finished with a different configuration{detail}; use --tag NAME to train this "
                    "variant beside it, or --fresh to set the finished run aside and train again")


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.trainer import Trainer

    tag = _checked_tag(args.tag)
    dist = distributed.setup()
    try:
        method_cls = method_registry.get(args.method)
        split = splits.load(args.split)
        resolved = _resolve(args, method_cls, split)
        paths = RunPaths.of(split.dataset, split.name, method_cls.name, resolved.run.seed, tag,
                            writable_root(args.out))
        record = None if args.fresh else read_record(paths.record)
        if record and record.get("status") == "finished":
            _refuse_other_configuration(paths, resolved, record)
            if dist.is_main:
                console.print(f"already finished: {paths.folder} ({_scores(record)}); --fresh to train again",
                              highlight=False, soft_wrap=True)
            return 0
        with RunLock(paths.lock) if dist.is_main else _NoLock():
            if dist.is_main:
                if args.fresh and any(entry != paths.lock for entry in paths.folder.iterdir()):
                    console.print(f"previous run moved to {_set_aside(paths.folder, paths.lock)}")
                for stale in paths.folder.glob(".*.tmp"):  # left by a process killed while writing
                    stale.unlink()
            distributed.barrier()
            root = roots.resolve(split.dataset, args.data_root, resolved.run.data.root)
            _check_split(split, root)
            trainer = Trainer(resolved, method_cls, split, root, paths, show_progress=not args.quiet)
            record = trainer.run()
    finally:
        distributed.teardown()
    if dist.is_main:
        console.print(f"[bold]{method_cls.name}[/] on {split.name} seed {resolved.run.seed}: {_scores(record)}, "
                      f"{record['train_seconds']:.0f} s", highlight=False, soft_wrap=True)
        console.print(f"record: {paths.record}")
    return 0


def _scores(record: dict[str, Any]) -> str:
    """A record's mIoU in words: on val (last, best and when), and on test where the split has one."""
    text = (f"val mIoU last {100 * record['last_miou']:.2f}, best {100 * record['best_miou']:.2f} "
            f"(iteration {record['best_iteration']})")
    test = record.get("test")
    if test:
        text += (f"; test ({test['images']} images) last {100 * test['last_miou']:.2f}, best-on-val "
                 f"{100 * test['best_miou']:.2f}")
    return text


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def cmd_methods(args: argparse.Namespace) -> int:
    found = method_registry.available()
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
    for name, cls in found.items():
        table.add_row(name, cls.summary, cls.paper, cls.fidelity)
    console.print(table)
    return 0


def cmd_splits_list(args: argparse.Namespace) -> int:
    table = Table(title="splits")
    for column in ("split", "dataset", "labeled", "unlabeled", "val", "fraction", "provenance"):
        table.add_column(column)
    manifests = {dataset: splits.read_manifest(dataset) for dataset in set(splits.available().values())}
    rows = []
    for name, dataset in splits.available().items():
        entry = manifests[dataset].get("splits", {}).get(name, {})
        labeled, unlabeled = entry.get("labeled", 0), entry.get("unlabeled", 0)
        fraction = labeled / (labeled + unlabeled) if labeled + unlabeled else 0.0
        rows.append((dataset, fraction, name, labeled, unlabeled, manifests[dataset].get("val", {}).get("count", "?"),
                     entry.get("provenance", {}).get("summary", "no manifest entry")))
    for dataset, fraction, name, labeled, unlabeled, val, provenance in sorted(rows):
        table.add_row(name, dataset, str(labeled), str(unlabeled), str(val), f"{fraction:.4f}", provenance)
    console.print(table)
    return 0


def parse_ratio(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"cannot read ratio {text!r}; write it like 1/16") from None
    if not 0 < value <= 1:
        raise UserError(f"ratio {text} must lie in (0, 1]")
    return value


def ratio_name(dataset: str, ratio: Fraction) -> str:
    return f"{dataset}_full" if ratio == 1 else f"{dataset}_{ratio.numerator}_{ratio.denominator}"


def cmd_datasets_list(args: argparse.Namespace) -> int:
    from benchmark.data import custom

    table = Table(title="data sets")
    for column in ("data set", "classes", "preset", "layout under the root", "test set"):
        table.add_column(column)
    for name, layout in layouts.LAYOUTS.items():
        data = config_module.load_preset(name).get("data", {}) if name in config_module.presets() else {}
        table.add_row(name, str(data.get("num_classes", "")), name if data else "", layout, layouts.test_set(name))
    for name in custom.registered():
        dataset = custom.find(name)
        table.add_row(name, f"{len(dataset.spec.classes)} ({dataset.spec.mask_format} masks)",
                      f"derived from {dataset.spec.base_preset}", f"{dataset.layout()}; root {dataset.root}",
                      layouts.test_set(name))
    console.print(table)
    return 0


def cmd_datasets_add(args: argparse.Namespace) -> int:
    from benchmark.data import custom

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


def cmd_datasets_example(args: argparse.Namespace) -> int:
    from benchmark.data import custom

    path = custom.write_example(Path(args.folder))
    console.print(f"wrote a small data set under {path.parent} and its file {path}. Next: python -m benchmark "
                  f"datasets add {path}", highlight=False, soft_wrap=True)
    return 0


def cmd_datasets_demo(args: argparse.Namespace) -> int:
    from benchmark.data import demo

    spec = demo.spec_with(args.set)
    root = demo.ensure(Path(args.folder), spec)
    console.print(f"demo data ({', '.join(args.set) or 'the defaults'}) in {root}. Train on it: python -m "
                  f"benchmark run --method M --split demo_1_8 --data-root {root}", highlight=False, soft_wrap=True)
    return 0


def cmd_splits_make(args: argparse.Namespace) -> int:
    root = roots.resolve(args.dataset, args.root, None)
    found = layouts.pools(args.dataset, root, args.seed)
    pool, val, val_source = found.pool, found.val, found.val_source
    texts = [text.strip() for text in args.ratios.split(",")]
    names = {ratio_name(args.dataset, parse_ratio(text)): text for text in texts}
    counts = {name: max(1, round(len(pool) * parse_ratio(text))) for name, text in names.items()}
    for name, (labeled, unlabeled) in splits.nested_draw(pool, counts, args.seed).items():
        share = "all" if parse_ratio(names[name]) == 1 else names[name]
        provenance = {"summary": f"seed {args.seed}, {share} of {len(pool)} train images",
                      "tool": "benchmark splits make (nested: each smaller split inside the larger)",
                      "seed": args.seed, "ratio": names[name], "pool": len(pool), "val": val_source,
                      "made": datetime.now().strftime("%Y-%m-%d")}
        status = splits.write_unless_present(args.dataset, name, labeled, unlabeled, provenance, val, args.force)
        console.print(f"{name}: {len(labeled)} labeled, {len(unlabeled)} unlabeled ({status}) -> "
                      f"{splits.splits_root() / args.dataset / name}")
    if found.test:
        status = splits.write_test(args.dataset, found.test, {
            "summary": f"{len(found.test)} images: {found.test_source}", "tool": "benchmark splits make",
            "made": datetime.now().strftime("%Y-%m-%d")})
        console.print(f"test: {len(found.test)} images ({status}) -> {splits.splits_root() / args.dataset / splits.TEST}")
    return 0


def cmd_splits_import(args: argparse.Namespace) -> int:
    from benchmark.data import importer

    root = Path(args.root) if args.root else None
    for line in importer.run(Path(args.source_folder), args.dataset, args.source, root, args.force):
        console.print(line, highlight=False)
    return 0


def cmd_splits_fetch(args: argparse.Namespace) -> int:
    from benchmark.data import importer, published

    root = Path(args.root) if args.root else None
    for pin in published.sources(args.dataset, args.source):
        folder = published.fetch(pin, args.mirror)
        console.print(f"{pin.source}: {len(pin.files)} files of github.com/{pin.repo}/{pin.folder} at {pin.ref}, "
                      f"sha256 as pinned, in {folder}", highlight=False, soft_wrap=True)
        for line in importer.run(folder, args.dataset, pin.source, root, args.force, commit=pin.ref):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    return 0


def cmd_splits_check(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    split = splits.load(args.split)
    preset = args.preset or default_preset(split)
    data = config_module.resolve(preset).run.data
    root = roots.resolve(split.dataset, args.root, data.root)
    if args.quick:
        problems = validate.quick_problems(split, root)
    else:
        total = sum(len(samples) for _, samples in split.lists())
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"checking {split.name}", total=total)
            problems = validate.full_problems(split, root, data, lambda: progress.advance(task))
    if problems:
        console.print(f"[bold red]{split.name}: {len(problems)} problem(s)[/]")
        for problem in problems:
            console.print(f"  - {escape(problem)}", highlight=False, soft_wrap=True)
        return 1
    listing = ", ".join(f"{len(samples)} {kind}" for kind, samples in split.lists())
    console.print(f"{split.name}: {listing} under {root}: no problems")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark import report

    pair = None
    if args.compare:
        pair = tuple(name.strip() for name in args.compare.split(","))
        if len(pair) != 2 or not all(pair):
            raise UserError(f"--compare takes two method labels, e.g. --compare unimatch,supervised; got {args.compare!r}")
    from benchmark import PROJECT_ROOT

    report.main(console, args.out, args.runs, latex=args.latex, compare_methods=pair,
                readme=PROJECT_ROOT / "README.md" if args.readme else None)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmark import run_eval

    result, path = run_eval.evaluate_run(Path(args.run_dir), args.checkpoint, Path(args.list) if args.list else None,
                                         args.data_root, args.mode, args.set)
    console.print(f"{result['method']} {result['split']} seed {result['seed']}, {args.checkpoint} checkpoint "
                  f"(iteration {result['iteration']}), {result['images']} images of {result['list']}: "
                  f"mIoU {100 * result['miou']:.2f} (evaluation {config_module.dtype_name(result['eval_amp'])})", highlight=False)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from benchmark import weights

    table = Table(title="ImageNet weights on this machine (what pretrained: auto finds)")
    for column in ("backbone", "variant", "weights"):
        table.add_column(column)
    for row in weights.listing():
        table.add_row(*row)
    console.print(table)
    return 0


def cmd_weights_get(args: argparse.Namespace) -> int:
    from benchmark import weights

    path, sha = weights.get(args.backbone)
    console.print(f"{args.backbone}: {path} (sha256 {sha}); pretrained: auto finds it", highlight=False,
                  soft_wrap=True)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from benchmark import reference

    for line in reference.promote([Path(folder) for folder in args.run_dirs], args.replace, as_tag=args.as_tag):
        console.print(line, highlight=False, soft_wrap=True)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from benchmark import sweep

    seeds = [int(s) for s in re.split(r"[,\s]+", args.seeds.strip()) if s]
    passthrough = args.passthrough[1:] if args.passthrough[:1] == ["--"] else args.passthrough
    if args.passthrough and not args.passthrough[0].startswith("-"):
        raise UserError(f"{args.passthrough[0]!r} is not an option of sweep: lists are comma-separated "
                        f"(--seeds 1,2), and options for every run go after -- (-- --set schedule.iters=500)")
    extra = [*passthrough, *(["--out", args.out] if args.out else []),
             *(["--dataset-file", str(Path(args.dataset_file).resolve())] if args.dataset_file else [])]
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    if args.slurm or args.slurm_local:
        from benchmark import cluster

        if args.print or args.jobs > 1:
            raise UserError("--slurm goes alone: --print and --jobs are the other ways to run a sweep")
        options = cluster.ClusterOptions(partition=args.partition, gpus_per_run=args.gpus_per_run,
                                         cpus_per_run=args.cpus_per_run, mem_gb=args.mem_gb, time_min=args.time,
                                         parallel=args.parallel, local=args.slurm_local, wait=args.wait)
        return cluster.submit(sweep.commands(args.methods.split(","), args.splits.split(","), seeds, extra), options,
                              results_root(args.out) / "slurm", console)
    return sweep.run(args.methods.split(","), args.splits.split(","), seeds, extra, console, print_only=args.print,
                     jobs=args.jobs, logs=results_root(args.out) / "sweep_logs")


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark import bench

    methods = list(method_registry.available()) if args.methods == "all" else args.methods.split(",")
    data = None
    if args.split:
        split = splits.load(args.split)
        run = config_module.resolve(args.preset, overrides=args.set).run
        if run.data.dataset != split.dataset:
            raise UserError(f"--split {split.name} belongs to {split.dataset!r} but preset {args.preset!r} is for "
                            f"{run.data.dataset!r}")
        root = roots.resolve(split.dataset, args.data_root, run.data.root)
        data = bench.DataBench(split, root, args.preset, args.set, console)
    bench.main(methods, args.preset, args.steps, args.set, console, args.vary,
               save=results_root(args.out) / "bench", data=data)
    return 0


def cmd_gpu_check(args: argparse.Namespace) -> int:
    from benchmark import gpu_check

    return gpu_check.main(console, Path(args.out) if args.out else None)


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="dataset preset (default: the split's data set)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="YAML file of config overrides (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set optim.lr=0.01 (repeatable)")


def _dataset_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-file", metavar="FILE",
                        help="your own data set's YAML file, for this command (or register it: datasets add FILE)")


def _out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="your results folder (default: $BENCHMARK_RESULTS, else "
                        "results/local/ of the checkout, which git ignores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train one method on one split")
    run.add_argument("--method", required=True, help="registered name or package.module:Class")
    run.add_argument("--split", required=True, help="split name, e.g. demo_1_8 or voc_1_16")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--data-root", help="dataset root (else BENCHMARK_<DATASET>_ROOT)")
    run.add_argument("--pretrained", help="ImageNet weights file for the encoder, or 'none'")
    run.add_argument("--tag", help="name a variant: results go to <method>+<tag>/")
    run.add_argument("--fresh", action="store_true", help="set the existing run folder aside and start over")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _dataset_file_option(run)
    _out_option(run)
    _run_options(run)
    run.set_defaults(func=cmd_run)

    sweep = commands.add_parser("sweep", help="run methods x splits x seeds, skipping finished runs")
    sweep.add_argument("--methods", required=True, help="comma-separated method names")
    sweep.add_argument("--splits", required=True, help="comma-separated split names")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    sweep.add_argument("--print", action="store_true", help="print the commands (for a job array) instead")
    sweep.add_argument("--jobs", type=int, default=1,
                       help="runs at once on this machine, the cores divided among them (logs in <results>/sweep_logs)")
    slurm = sweep.add_argument_group("SLURM, through submitit (pip install -e '.[slurm]'); logs in <results>/slurm")
    slurm.add_argument("--slurm", action="store_true", help="submit the grid as one job array")
    slurm.add_argument("--slurm-local", action="store_true",
                       help="run the same array through submitit's local executor on this machine")
    slurm.add_argument("--partition", help="SLURM partition")
    slurm.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per run, torchrun when more than 1 (default 1)")
    slurm.add_argument("--cpus-per-run", type=int, default=8, help="CPU cores per run (default 8)")
    slurm.add_argument("--mem-gb", type=int, help="memory per run in GB")
    slurm.add_argument("--time", type=int, default=24 * 60,
                       help="minutes per job (default 1440); a run cut off is requeued and resumes")
    slurm.add_argument("--parallel", type=int, help="at most this many runs of the array at once")
    slurm.add_argument("--wait", action="store_true", help="wait for every run and say which failed")
    _dataset_file_option(sweep)
    _out_option(sweep)
    sweep.add_argument("passthrough", nargs=argparse.REMAINDER,
                       help="options after -- go to every run (e.g. -- --set schedule.iters=500)")
    sweep.set_defaults(func=cmd_sweep)

    report = commands.add_parser("report", help="tables and plots of finished runs: yours and the reference")
    _out_option(report)
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
                             "bootstrap interval over val images and the difference on each seed both ran (labels "
                             "as in the table, e.g. speed+nodistill)")
    report.set_defaults(func=cmd_report)

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
    _dataset_file_option(evaluation)
    evaluation.set_defaults(func=cmd_eval)

    weights_parser = commands.add_parser("weights", help="ImageNet weights: what is here, and fetching torchvision's")
    weights_commands = weights_parser.add_subparsers(dest="weights_command", required=True)
    weights_commands.add_parser("list", help="what pretrained: auto finds for every backbone").set_defaults(
        func=cmd_weights_list)
    fetch = weights_commands.add_parser("get", help="fetch torchvision's ImageNet weights into torch's hub cache")
    fetch.add_argument("backbone", choices=["resnet18", "resnet50", "resnet101"])
    fetch.set_defaults(func=cmd_weights_get)

    promote = commands.add_parser("promote", help="copy finished runs into the suite's reference records")
    promote.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a finished run's folder (…/seed<k>)")
    promote.add_argument("--replace", action="store_true", help="replace a reference run of the same name")
    promote.add_argument("--as-tag", metavar="TAG", help="file the run as the tagged variant TAG, or as the method "
                         "itself with none (when a preset changes; then git rm the old folder)")
    promote.set_defaults(func=cmd_promote)

    methods = commands.add_parser("methods", help="list methods, or one method's parameters")
    methods.add_argument("name", nargs="?", help="show this method's parameters")
    methods.set_defaults(func=cmd_methods)

    datasets = commands.add_parser("datasets", help="the data sets: built-in ones and your own (one YAML file each)")
    datasets.set_defaults(func=cmd_datasets_list)
    datasets_sub = datasets.add_subparsers(dest="datasets_command")
    add = datasets_sub.add_parser("add", help="register your data set's YAML file (see docs/datasets.md)")
    add.add_argument("file")
    add.set_defaults(func=cmd_datasets_add)
    example = datasets_sub.add_parser("example", help="write a small example data set and its file into a folder")
    example.add_argument("folder")
    example.set_defaults(func=cmd_datasets_example)
    demo_data = datasets_sub.add_parser("demo", help="generate the demo data set, or a variant of it, into a folder")
    demo_data.add_argument("folder")
    demo_data.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="a generator option other than its default (benchmark/data/demo.py DemoSpec), "
                                "e.g. max_distractors=2 or size=128")
    demo_data.set_defaults(func=cmd_datasets_demo)

    split_cmd = commands.add_parser("splits", help="list, make, import or check splits")
    split_cmd.set_defaults(func=cmd_splits_list)
    split_sub = split_cmd.add_subparsers(dest="splits_command")
    make = split_sub.add_parser("make", help="draw labeled subsets with a seed")
    make.add_argument("--dataset", required=True)
    make.add_argument("--root", help="dataset root")
    make.add_argument("--ratios", default="1/16,1/8,1/4", help="comma-separated labeled fractions")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--force", action="store_true", help="replace splits of the same name with other content")
    _dataset_file_option(make)
    make.set_defaults(func=cmd_splits_make)

    imp = split_sub.add_parser("import", help="import published split lists (UniMatch, U2PL, CPS)")
    imp.add_argument("--from", dest="source_folder", required=True, help="folder of the published lists")
    imp.add_argument("--dataset", required=True, choices=["voc", "cityscapes", "coco"])
    imp.add_argument("--source", choices=["unimatch", "u2pl", "cps"], help="format (default: detected)")
    imp.add_argument("--root", help="data root, to derive missing unlabeled lists (COCO)")
    imp.add_argument("--force", action="store_true", help="replace splits of the same name with other content")
    imp.set_defaults(func=cmd_splits_import)
    fetch_lists = split_sub.add_parser("fetch", help="download the published lists of VOC, Cityscapes or COCO "
                                       "(UniMatch's and U2PL's, sha256-pinned) and import them")
    fetch_lists.add_argument("dataset", choices=["voc", "cityscapes", "coco"])
    fetch_lists.add_argument("--source", choices=["unimatch", "u2pl"], help="one source only (default: both)")
    fetch_lists.add_argument("--root", help="data root, to derive COCO's unlabeled lists from train2017/")
    fetch_lists.add_argument("--mirror", metavar="URL", help="fetch <URL>/<source>/<folder>/<file> instead of "
                             "from GitHub (a copy of the lists; file:// works)")
    fetch_lists.add_argument("--force", action="store_true", help="replace splits of the same name with other content")
    fetch_lists.set_defaults(func=cmd_splits_fetch)
    chk = split_sub.add_parser("check", help="report every problem of a split")
    chk.add_argument("split")
    chk.add_argument("--root", help="data root (else BENCHMARK_<DATASET>_ROOT)")
    chk.add_argument("--preset", help="preset giving classes and label map (default: the data set's)")
    chk.add_argument("--quick", action="store_true", help="only lists and file presence, no decoding")
    _dataset_file_option(chk)
    chk.set_defaults(func=cmd_splits_check)

    bench = commands.add_parser("bench", help="what a training step of each method costs and where its time goes")
    bench.add_argument("--methods", default="all", help="comma-separated method names (default: all registered)")
    bench.add_argument("--preset", default="demo")
    bench.add_argument("--steps", type=int, default=10, help="timed steps per method (after 2 warm-up steps)")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--vary", metavar="KEY=V1,V2", help="also compare values of one setting, "
                       "e.g. trainer.channels_last=on,off or data.crop_size=64,96,128; values with commas "
                       "are separated by ';': data.crop_size='[144,192];128'")
    bench.add_argument("--split", help="also measure the loader and the evaluation on this split's data")
    bench.add_argument("--data-root", help="data root of --split (else BENCHMARK_<DATASET>_ROOT)")
    bench.add_argument("--out", metavar="DIR", help="results folder; the JSON goes to DIR/bench/ (default: "
                       "$BENCHMARK_RESULTS, else results/local/)")
    _dataset_file_option(bench)
    bench.set_defaults(func=cmd_bench)

    gpu = commands.add_parser("gpu-check", help="every method trained briefly on this machine's GPU, one table "
                              "and a JSON (one line and exit 0 without CUDA)")
    gpu.add_argument("--out", metavar="DIR", help="folder of the JSON (default: results/bench/ of the checkout)")
    gpu.set_defaults(func=cmd_gpu_check)
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
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; run the same command again to resume from the last checkpoint")
        return 130


if __name__ == "__main__":
    sys.exit(main())
