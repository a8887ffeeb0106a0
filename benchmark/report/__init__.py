"""Tables and plots of finished runs (and of the seeds that diverged), beside the published numbers.

Reads ``runs/**/record.json`` of two results folders: yours (``local``) and the suite's committed
``reference`` records (only records whose status is ``finished`` or ``diverged``: a sweep writing meanwhile
never shows half a run; a diverged seed is counted in its cell, never averaged). Runs are grouped by data set,
split, method and source (a local run is never averaged with a reference run), with mean and standard
deviation over seeds of the last and the best evaluation, the number of seeds and the labeled count of every
split. Runs of one cell made under different protocols are never averaged (``protocol_checks``). A run of a
data set with a test list is reported on test (its last and its best-on-val networks, evaluated once at its
end), with its val figures beside; other runs on val. Where the records carry per-image counts, every cell has
a 95 % bootstrap interval over the evaluation images and per split the best main method and those not
distinguishable from it are marked (``stats``); ``--compare A,B`` prints paired differences. Outputs: the
terminal tables with the protocol checks above them, ``summary.{csv,md}`` (``summary.tex`` with ``--latex``),
the per-class tables ``per_class.{csv,md}``, with ``--groups DATASET=REGEX`` the per-group tables
``per_group.{csv,md}`` (mIoU on each group of evaluation images, e.g. CamVid's drives), every run's figures
``per_seed.{csv,md}``, and the figures ``miou_vs_labels``, ``miou_vs_labels_variants``, ``curves_<dataset>``
and ``losses_<dataset>`` (``.png`` and ``.svg``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from rich.console import Console

from benchmark import figures, tables
from benchmark.atomic import write_text
from benchmark.errors import UserError
from benchmark.protocol_checks import protocol_checks
from benchmark.records import PUBLISHED, REFERENCE_ROOT, results_root
from benchmark.report.load import load_published, load_runs, with_published
from benchmark.report.statistics import (PerImage, attach_intervals, compare, per_class, per_group, per_seed,
                                         summarise)

SOURCES = ("reference", "local")
"""Where runs come from: the suite's committed records, or the user's results folder."""


def main(console: Console, out: str | Path | None = None, which: str = "both", reference: Path = REFERENCE_ROOT,
         published_path: Path = PUBLISHED, latex: bool = False, compare_methods: tuple[str, str] | None = None,
         readme: Path | None = None, groups: tuple[str, str] | None = None) -> Path | None:
    """Build and write the report of the finished runs of ``which`` ('local', 'reference' or 'both');
    returns the folder written to (the reference folder for 'reference' alone, else yours). With ``readme``
    (reference runs alone), that file's report block is rewritten too; with ``groups`` (a data set and a regular
    expression over its evaluation image names) its per-group tables are written and shown."""
    if readme is not None and which != "reference":
        raise UserError("--readme writes the suite's own results into the README: use it with --runs reference")
    local = results_root(out)
    folders = {"reference": reference, "local": local}
    chosen = SOURCES if which == "both" else (which,)
    loaded = []
    for source in chosen:
        runs, skipped = load_runs(folders[source], source)
        loaded.append(runs)
        diverged = int(runs["diverged_at"].notna().sum()) if len(runs) else 0
        console.print(f"{source} runs: {len(runs) - diverged} finished"
                      + (f" and {diverged} diverged" if diverged else "") + f" under {folders[source] / 'runs'}"
                      + (" (the suite's committed records)" if source == "reference" else " (yours)"),
                      highlight=False, soft_wrap=True)
        for line in skipped:
            console.print(f"  skipped {line}", highlight=False, soft_wrap=True)
    every = pd.concat([r for r in loaded if not r.empty], ignore_index=True) if any(not r.empty for r in loaded) \
        else pd.DataFrame()
    if every.empty:
        console.print("no finished runs to report; train one with python -m benchmark run")
        return None
    runs = every[every["diverged_at"].isna()]
    target = reference if which == "reference" else local
    published, missing = load_published(published_path)
    per_image = PerImage(runs)
    summary = with_published(attach_intervals(summarise(every), per_image), published, missing)
    checks = protocol_checks(runs, summary)
    tables.terminal(summary, console, checks)
    classes = per_class(runs)
    if not classes.empty:
        tables.per_class_terminal(classes, console)
    if groups:
        by_group = per_group(runs, per_image, *groups)
        if by_group.empty:
            console.print(f"no {groups[0]} runs with per-image counts to break down by group", highlight=False)
        else:
            tables.per_group_terminal(by_group, console)
    if compare_methods:
        lines = compare(runs, per_image, *compare_methods)
        for line in lines or [f"no split has runs of both {compare_methods[0]} and {compare_methods[1]}"]:
            console.print(line, highlight=False, soft_wrap=True)
    written = [target / "summary.csv", target / "summary.md"]
    write_text(written[0], summary.to_csv(index=False, float_format="%.3f"))
    write_text(written[1], tables.markdown(summary, checks))
    if not classes.empty:
        written += [target / "per_class.csv", target / "per_class.md"]
        write_text(written[-2], classes.to_csv(index=False, float_format="%.2f"))
        write_text(written[-1], tables.per_class_markdown(classes))
    if groups and not by_group.empty:
        written += [target / "per_group.csv", target / "per_group.md"]
        write_text(written[-2], by_group.to_csv(index=False, float_format="%.2f"))
        write_text(written[-1], tables.per_group_markdown(by_group, groups[1]))
    seeds = per_seed(every)
    written += [target / "per_seed.csv", target / "per_seed.md"]
    write_text(written[-2], seeds.to_csv(index=False, float_format="%.2f"))
    write_text(written[-1], tables.per_seed_markdown(seeds))
    if latex:
        written.append(target / "summary.tex")
        write_text(written[-1], tables.latex(summary))
    written += figures.miou_vs_labels(summary, published, target)
    written += figures.miou_vs_labels(summary, published, target, variants=True)
    test_plot = figures.miou_vs_labels_on_test(summary, target)
    written += test_plot + figures.curves(runs, target)
    if readme is not None:
        plot = os.path.relpath(target / "miou_vs_labels.svg", readme.parent)
        test_svg = os.path.relpath(test_plot[-1], readme.parent) if test_plot else None
        block = tables.readme_block(summary, every, checks, plot, test_svg)
        write_text(readme, tables.replace_readme_block(readme.read_text(), block, str(readme)))
        written.append(readme)
    console.print(f"{len(every)} runs; wrote " + ", ".join(str(p) for p in written), highlight=False, soft_wrap=True)
    return target
