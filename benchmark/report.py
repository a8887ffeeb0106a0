"""Tables and plots of finished runs, beside the published numbers.

Reads ``runs/**/record.json`` of two results folders: yours (``local``) and the suite's committed
``reference`` records (only records whose status is ``finished``: a sweep writing meanwhile never shows
half a run). Runs are grouped by data set, split, method and source (a local run is never averaged with
a reference run), with mean and standard deviation over seeds of the last and the best evaluation, the
number of seeds and the labeled count of every split. Outputs: a terminal table per data set,
``summary.csv``, ``summary.md``, and ``miou_vs_labels.{png,svg}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from rich.console import Console
from rich.table import Table

from benchmark.atomic import write_atomic, write_text
from benchmark.records import PUBLISHED, REFERENCE_ROOT, method_label, results_root

NOT_AVAILABLE = "not published / not available"
SOURCES = ("reference", "local")
"""Where runs come from: the suite's committed records, or the user's results folder."""


REQUIRED = ("dataset", "split", "method", "seed", "labeled", "labeled_fraction", "last_miou", "best_miou")
"""Fields a finished record needs to be reported."""


def load_runs(root: Path, source: str = "local") -> tuple[pd.DataFrame, list[str]]:
    """One row per finished run under ``root/runs``, marked with ``source``, and the record files that
    were skipped as unreadable or incomplete (each with the reason). Unfinished runs are left out."""
    rows, skipped = [], []
    for path in sorted((root / "runs").glob("**/record.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            skipped.append(f"{path} (not readable JSON: {type(error).__name__})")
            continue
        if not isinstance(record, dict):
            skipped.append(f"{path} (not a JSON object)")
            continue
        if record.get("status") != "finished":
            continue
        missing = [key for key in REQUIRED if record.get(key) is None]
        if missing:
            skipped.append(f"{path} (lacks {', '.join(missing)})")
            continue
        try:
            scores = 100 * float(record["last_miou"]), 100 * float(record["best_miou"])
        except (TypeError, ValueError):
            skipped.append(f"{path} (last_miou or best_miou is not a number)")
            continue
        rows.append({"source": source, "dataset": record["dataset"], "split": record["split"],
                     "method": method_label(record["method"], record.get("tag")), "seed": record["seed"],
                     "labeled": record["labeled"], "fraction": record["labeled_fraction"],
                     "last": scores[0], "best": scores[1], "seconds": record.get("train_seconds"),
                     "memory_mb": record.get("peak_memory_mb"),
                     "backbone": (record.get("weights") or {}).get("source", ""), "preset": record.get("preset")})
    return pd.DataFrame(rows), skipped


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (over seeds, ddof 1) and count per data set, split, method and source."""
    if runs.empty:
        return pd.DataFrame()
    grouped = runs.groupby(["dataset", "split", "method", "source"], sort=False)
    table = grouped.agg(labeled=("labeled", "first"), fraction=("fraction", "first"), seeds=("seed", "nunique"),
                        last_mean=("last", "mean"), last_std=("last", "std"), best_mean=("best", "mean"),
                        best_std=("best", "std"), seconds=("seconds", "mean"), memory_mb=("memory_mb", "max"))
    return table.reset_index().sort_values(["dataset", "fraction", "method", "source"], ignore_index=True)


def load_published(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Published numbers (with backbone and source) and the methods whose numbers are unavailable."""
    if not path.exists():
        return pd.DataFrame(columns=["dataset", "split", "method", "backbone", "miou", "source"]), {}
    data = yaml.safe_load(path.read_text()) or {}
    sources = data.get("sources", {})
    rows = [{**entry, "source": sources.get(entry["source"], entry["source"])} for entry in data.get("entries", [])]
    return pd.DataFrame(rows), data.get("not_available", {})


def published_cell(published: pd.DataFrame, missing: dict[str, str], split: str, method: str) -> str:
    """The published number(s) for (split, method) as text; '' when there is none to expect (a split no
    paper reports, such as the demo's, or a method without published numbers anywhere)."""
    base = method.partition("+")[0]
    on_split = published[published["split"] == split] if len(published) else published
    match = on_split[on_split["method"] == base] if len(on_split) else on_split
    if len(match):
        return ", ".join(f"{row.miou:.2f} ({row.backbone})" for row in match.itertuples())
    return NOT_AVAILABLE if base in missing and len(on_split) else ""


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def with_published(summary: pd.DataFrame, published: pd.DataFrame, missing: dict[str, str]) -> pd.DataFrame:
    """The summary with a ``published`` column."""
    if summary.empty:
        return summary
    out = summary.copy()
    out["published"] = [published_cell(published, missing, row.split, row.method) for row in out.itertuples()]
    return out


def grid(summary: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, list[tuple[str, str, list[Any]]]]]:
    """Per data set: its splits (ordered by labeled fraction) and, per method and source, the summary row
    of each split (None where the method has no run on it)."""
    for dataset, block in summary.groupby("dataset", sort=False):
        splits = block.drop_duplicates("split").sort_values("fraction")
        rows = []
        for (method, source), runs in block.groupby(["method", "source"], sort=True):
            by_split = {r.split: r for r in runs.itertuples()}
            rows.append((method, source, [by_split.get(s) for s in splits["split"]]))
        yield dataset, splits, rows


def _cell(row: Any, newline: str, published: str) -> str:
    if row is None:
        return ""
    text = f"{_fmt(row.last_mean, row.last_std)} (n={row.seeds}){newline}best {_fmt(row.best_mean, row.best_std)}"
    return text + (f"{newline}{published.format(row.published)}" if row.published else "")


def markdown(summary: pd.DataFrame) -> str:
    """One Markdown table per data set: rows methods, columns splits."""
    parts = ["# Results\n", "mIoU (%) on the val set: last evaluation mean ± std over seeds (n seeds); "
             "best evaluation below. Published numbers are the papers' own, with their backbone. Runs: "
             "'reference' = the suite's committed records (results/reference/), 'local' = your own runs.\n"]
    for dataset, splits, rows in grid(summary):
        header = [f"{s.split} ({s.labeled} labeled)" for s in splits.itertuples()]
        parts.append(f"\n## {dataset}\n\n| method | runs | " + " | ".join(header) + " |\n|---|---|"
                     + "---|" * len(header) + "\n")
        for method, source, cells in rows:
            parts.append(f"| {method} | {source} | " + " | ".join(_cell(c, "<br>", "published: {}") for c in cells)
                         + " |\n")
    return "".join(parts)


def terminal(summary: pd.DataFrame, console: Console) -> None:
    """Rich tables, one per data set."""
    for dataset, splits, rows in grid(summary):
        table = Table(title=f"{dataset}: mIoU % (last: mean ± std over seeds; best)", show_lines=True)
        table.add_column("method", style="bold")
        table.add_column("runs")
        for s in splits.itertuples():
            table.add_column(f"{s.split}\n{s.labeled} labeled ({100 * s.fraction:.3g} %)", justify="right")
        for method, source, cells in rows:
            table.add_row(method, source, *(_cell(c, "\n", "[dim]published {}[/]") for c in cells))
        console.print(table)


def plot(summary: pd.DataFrame, published: pd.DataFrame, out: Path) -> list[Path]:
    """mIoU against labeled fraction, one panel per data set (error bars: std over seeds)."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig = Figure(figsize=(5.5 * len(datasets), 4.2))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        block = summary[summary["dataset"] == dataset]
        for (method, source), rows in block.groupby(["method", "source"], sort=True):
            rows = rows.sort_values("fraction")
            local = source == "local"
            ax.errorbar(rows["fraction"], rows["last_mean"], yerr=rows["last_std"].fillna(0), marker="o",
                        capsize=3, linestyle="--" if local else "-", label=f"{method} (local)" if local else method)
        fractions = dict(zip(block["split"], block["fraction"]))
        shown = published[(published["dataset"] == dataset) & published["split"].isin(fractions)] \
            if len(published) else published
        for row in shown.itertuples():
            ax.scatter(fractions[row.split], row.miou, marker="*", s=90, facecolors="none", edgecolors="k")
        if len(shown):
            ax.scatter([], [], marker="*", facecolors="none", edgecolors="k", label="published")
        ax.set_xscale("log")
        ticks = sorted(set(block["fraction"]))
        ax.set_xticks(ticks, [f"{100 * t:.3g}%" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("labeled share of the training pool")
        ax.set_ylabel("val mIoU (%)")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    written = []
    for suffix in ("png", "svg"):
        path = out / f"miou_vs_labels.{suffix}"
        write_atomic(path, lambda handle, s=suffix: fig.savefig(handle, format=s, dpi=120))
        written.append(path)
    return written


def main(console: Console, out: str | Path | None = None, which: str = "both", reference: Path = REFERENCE_ROOT,
         published_path: Path = PUBLISHED) -> Path | None:
    """Build and write the report of the finished runs of ``which`` ('local', 'reference' or 'both');
    returns the folder written to (the reference folder for 'reference' alone, else yours)."""
    local = results_root(out)
    folders = {"reference": reference, "local": local}
    chosen = SOURCES if which == "both" else (which,)
    loaded = []
    for source in chosen:
        runs, skipped = load_runs(folders[source], source)
        loaded.append(runs)
        console.print(f"{source} runs: {len(runs)} finished under {folders[source] / 'runs'}"
                      + (" (the suite's committed records)" if source == "reference" else " (yours)"),
                      highlight=False, soft_wrap=True)
        for line in skipped:
            console.print(f"  skipped {line}", highlight=False, soft_wrap=True)
    runs = pd.concat([r for r in loaded if not r.empty], ignore_index=True) if any(not r.empty for r in loaded) \
        else pd.DataFrame()
    if runs.empty:
        console.print("no finished runs to report; train one with python -m benchmark run")
        return None
    target = reference if which == "reference" else local
    published, missing = load_published(published_path)
    summary = with_published(summarise(runs), published, missing)
    terminal(summary, console)
    write_text(target / "summary.csv", summary.to_csv(index=False, float_format="%.3f"))
    write_text(target / "summary.md", markdown(summary))
    images = plot(summary, published, target)
    console.print(f"{len(runs)} runs; wrote {target / 'summary.csv'}, {target / 'summary.md'}, "
                  + ", ".join(str(p) for p in images))
    return target
