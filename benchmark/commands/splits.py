"""``splits``: list the split files with counts and provenance; ``make`` (draw labeled subsets with a seed),
``import`` and ``fetch`` (the published lists), ``check`` (every problem of a split)."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from benchmark import config as config_module
from benchmark.commands.options import console, dataset_file_option
from benchmark.data import layouts, roots, splits, validate
from benchmark.errors import UserError
from benchmark.yaml_files import default_preset


def add(commands: argparse._SubParsersAction) -> None:
    split_cmd = commands.add_parser("splits", help="list, make, import or check splits")
    split_cmd.set_defaults(func=handle_list)
    sub = split_cmd.add_subparsers(dest="splits_command")
    make = sub.add_parser("make", help="draw labeled subsets with a seed")
    make.add_argument("--dataset", required=True)
    make.add_argument("--root", help="dataset root")
    make.add_argument("--ratios", default="1/16,1/8,1/4", help="comma-separated labeled fractions")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--strata", metavar="REGEX", help="draw every ratio from each group of images in proportion "
                      "to its size; a group is the part of the file name REGEX matches (its first group if "
                      "any), e.g. '^[^_]+' for CamVid's video drives")
    make.add_argument("--force", action="store_true", help="replace splits of the same name with other content")
    dataset_file_option(make)
    make.set_defaults(func=handle_make)
    imp = sub.add_parser("import", help="import published split lists (UniMatch, U2PL, CPS)")
    imp.add_argument("--from", dest="source_folder", required=True, help="folder of the published lists")
    imp.add_argument("--dataset", required=True, choices=["voc", "cityscapes", "coco"])
    imp.add_argument("--source", choices=["unimatch", "u2pl", "cps"], help="format (default: detected)")
    imp.add_argument("--root", help="data root, to derive missing unlabeled lists (COCO)")
    imp.add_argument("--force", action="store_true", help="replace splits of the same name with other content")
    imp.set_defaults(func=handle_import)
    fetch = sub.add_parser("fetch", help="download the published lists of VOC, Cityscapes or COCO "
                           "(UniMatch's and U2PL's, sha256-pinned) and import them")
    fetch.add_argument("dataset", choices=["voc", "cityscapes", "coco"])
    fetch.add_argument("--source", choices=["unimatch", "u2pl"], help="one source only (default: both)")
    fetch.add_argument("--root", help="data root, to derive COCO's unlabeled lists from train2017/")
    fetch.add_argument("--mirror", metavar="URL", help="fetch <URL>/<source>/<folder>/<file> instead of "
                       "from GitHub (a copy of the lists; file:// works)")
    fetch.add_argument("--force", action="store_true", help="replace splits of the same name with other content")
    fetch.set_defaults(func=handle_fetch)
    check = sub.add_parser("check", help="report every problem of a split")
    check.add_argument("split")
    check.add_argument("--root", help="data root (else BENCHMARK_<DATASET>_ROOT)")
    check.add_argument("--preset", help="preset giving classes and label map (default: the data set's)")
    check.add_argument("--quick", action="store_true", help="only lists and file presence, no decoding")
    dataset_file_option(check)
    check.set_defaults(func=handle_check)


def handle_list(args: argparse.Namespace) -> int:
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
    """A labeled fraction written like 1/16, in (0, 1]."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"cannot read ratio {text!r}; write it like 1/16") from None
    if not 0 < value <= 1:
        raise UserError(f"ratio {text} must lie in (0, 1]")
    return value


def ratio_name(dataset: str, ratio: Fraction) -> str:
    """The split's name for a ratio: <dataset>_1_16, or <dataset>_full."""
    return f"{dataset}_full" if ratio == 1 else f"{dataset}_{ratio.numerator}_{ratio.denominator}"


def handle_make(args: argparse.Namespace) -> int:
    root = roots.resolve(args.dataset, args.root, None)
    found = layouts.pools(args.dataset, root, args.seed)
    pool, val, val_source = found.pool, found.val, found.val_source
    texts = [text.strip() for text in args.ratios.split(",")]
    names = {ratio_name(args.dataset, parse_ratio(text)): text for text in texts}
    counts = {name: max(1, round(len(pool) * parse_ratio(text))) for name, text in names.items()}
    strata = splits.strata_of([image for image, _ in pool], args.strata) if args.strata else None
    for name, (labeled, unlabeled) in splits.nested_draw(pool, counts, args.seed, strata).items():
        share = "all" if parse_ratio(names[name]) == 1 else names[name]
        provenance = {"summary": f"seed {args.seed}, {share} of {len(pool)} train images",
                      "tool": "benchmark splits make (nested: each smaller split inside the larger)",
                      "seed": args.seed, "ratio": names[name], "pool": len(pool), "val": val_source,
                      "made": datetime.now().strftime("%Y-%m-%d")}
        if strata:
            chosen = set(labeled)
            drawn = Counter(stratum for sample, stratum in zip(pool, strata) if sample in chosen)
            provenance["summary"] += (f", stratified by {args.strata!r} ("
                                      + ", ".join(f"{group} {drawn[group]}" for group in sorted(set(strata))) + ")")
            provenance["strata"] = {"pattern": args.strata, "labeled": dict(sorted(drawn.items())),
                                    "pool": dict(sorted(Counter(strata).items()))}
        status = splits.write_unless_present(args.dataset, name, labeled, unlabeled, provenance, val, args.force)
        console.print(f"{name}: {len(labeled)} labeled, {len(unlabeled)} unlabeled ({status}) -> "
                      f"{splits.splits_root() / args.dataset / name}")
    if found.test:
        status = splits.write_test(args.dataset, found.test, {
            "summary": f"{len(found.test)} images: {found.test_source}", "tool": "benchmark splits make",
            "made": datetime.now().strftime("%Y-%m-%d")})
        console.print(f"test: {len(found.test)} images ({status}) -> {splits.splits_root() / args.dataset / splits.TEST}")
    return 0


def handle_import(args: argparse.Namespace) -> int:
    from benchmark.data import importer

    root = Path(args.root) if args.root else None
    for line in importer.run(Path(args.source_folder), args.dataset, args.source, root, args.force):
        console.print(line, highlight=False)
    return 0


def handle_fetch(args: argparse.Namespace) -> int:
    from benchmark.data import importer, published

    root = Path(args.root) if args.root else None
    for pin in published.sources(args.dataset, args.source):
        folder = published.fetch(pin, args.mirror)
        console.print(f"{pin.source}: {len(pin.files)} files of github.com/{pin.repo}/{pin.folder} at {pin.ref}, "
                      f"sha256 as pinned, in {folder}", highlight=False, soft_wrap=True)
        for line in importer.run(folder, args.dataset, pin.source, root, args.force, commit=pin.ref):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    return 0


def handle_check(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    split = splits.load(args.split)
    preset = args.preset or default_preset(split.name, split.dataset)
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
