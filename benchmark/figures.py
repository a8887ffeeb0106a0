"""The report's figures: mIoU against the labeled share (main methods, and tagged variants apart), and
learning curves (mIoU and loss parts against the step) from the runs' metrics.jsonl."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from benchmark.atomic import write_atomic
from benchmark.records import is_main

STYLES = {"supervised": ("#4d4d4d", "o"), "fixmatch": ("#1f77b4", "s"), "unimatch": ("#ff7f0e", "^"),
          "speed": ("#2ca02c", "D"), "mkd": ("#d62728", "v"), "st_asmnet": ("#9467bd", "P")}
"""Colour and marker of each built-in method, the same in every figure."""
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]


def style(label: str, index: int, fixed: bool = True) -> tuple[str, str]:
    """(colour, marker) of a line: a built-in method's own when ``fixed``, else the ``index``-th of a
    cycle in which no (colour, marker) pair repeats within 110 lines."""
    base = label.partition("+")[0].partition(" [")[0]
    if fixed and base in STYLES:
        return STYLES[base]
    return _COLOURS[index % len(_COLOURS)], _MARKERS[(index // len(_COLOURS)) % len(_MARKERS)]


_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
"""Metadata left out of the files so that the same records give the same bytes (no date, no version)."""


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """``name``.png and .svg under ``out``, written atomically and reproducibly: same records, same bytes,
    so a regenerated report's diff shows only figures whose data changed."""
    written = []
    with rc_context({"svg.hashsalt": "semiseg-bench"}):
        for suffix in ("png", "svg"):
            path = out / f"{name}.{suffix}"
            write_atomic(path, lambda handle, s=suffix: fig.savefig(handle, format=s, dpi=120,
                                                                    metadata=_METADATA[s]))
            written.append(path)
    return written


def miou_vs_labels(summary: pd.DataFrame, published: pd.DataFrame, out: Path, variants: bool = False) -> list[Path]:
    """mIoU against labeled share, one panel per data set (error bars: std over seeds): the main methods
    with the published numbers (``miou_vs_labels``), or the tagged variants alone
    (``miou_vs_labels_variants``; nothing is written when there are none)."""
    fig = miou_vs_labels_figure(summary, published, variants)
    return [] if fig is None else save(fig, out, "miou_vs_labels_variants" if variants else "miou_vs_labels")


def on_test(summary: pd.DataFrame) -> pd.DataFrame:
    """The tagged variants' cells evaluated on a test list: the configurations tried on a data set with a
    test split, which the README shows apart from its headline."""
    if "evaluated_on" not in summary:
        return summary.iloc[0:0]
    return summary[(summary["evaluated_on"] == "test") & ~summary["method"].map(is_main)]


def miou_vs_labels_on_test(summary: pd.DataFrame, out: Path) -> list[Path]:
    """``miou_vs_labels_test``: the tagged variants evaluated on test alone, one panel per data set with a
    test list (nothing is written when no variant was evaluated on test)."""
    fig = miou_vs_labels_figure(on_test(summary), pd.DataFrame(columns=["dataset", "split", "method", "miou"]),
                                variants=True, title="tagged variants on test")
    return [] if fig is None else save(fig, out, "miou_vs_labels_test")


def miou_vs_labels_figure(summary: pd.DataFrame, published: pd.DataFrame, variants: bool = False,
                          title: str = "tagged variants") -> Figure | None:
    """The figure of ``miou_vs_labels``, or None when it has no method to show. The variants' legend, which
    can hold dozens of tags, goes below each panel in two columns, the figure growing to make room; their
    panels are titled '``dataset`` (``title``)'."""
    chosen = summary[[is_main(m) != variants for m in summary["method"]]]
    if chosen.empty:
        return None
    datasets = list(dict.fromkeys(chosen["dataset"]))
    legend_rows = 0
    if variants:
        entries = max(chosen[chosen["dataset"] == d].groupby(["method", "source"]).ngroups for d in datasets)
        legend_rows = math.ceil(entries / 2)
    fig = Figure(figsize=(5.5 * len(datasets), 4.4 + 0.2 * legend_rows), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        block = chosen[chosen["dataset"] == dataset]
        for index, ((method, source), rows) in enumerate(block.groupby(["method", "source"], sort=True)):
            rows = rows.sort_values("fraction")
            local = source == "local"
            colour, marker = style(method, index, fixed=not variants)
            ax.errorbar(rows["fraction"], rows["last_mean"], yerr=rows["last_std"].fillna(0), marker=marker,
                        color=colour, capsize=3, linestyle="--" if local else "-",
                        label=f"{method} (local)" if local else method)
        fractions = dict(zip(block["split"], block["fraction"]))
        shown = published[(published["dataset"] == dataset) & published["split"].isin(fractions)] \
            if len(published) and not variants else published.iloc[0:0]
        for row in shown.itertuples():
            colour, _ = style(row.method, 0)
            ax.scatter(fractions[row.split], row.miou, marker="*", s=110, facecolors="none", edgecolors=colour)
        if len(shown):
            ax.scatter([], [], marker="*", facecolors="none", edgecolors="k", label="published (method's colour)")
        ax.set_xscale("log")
        ticks = sorted(set(block["fraction"]))
        ax.set_xticks(ticks, [f"{100 * t:.3g}%" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("labeled share of the training pool")
        on = " / ".join(sorted(set(block["evaluated_on"]), reverse=True)) if "evaluated_on" in block else "val"
        ax.set_ylabel(f"{on} mIoU (%), last network")
        ax.set_title(dataset + (f" ({title})" if variants else ""))
        ax.grid(alpha=0.3)
        if variants:
            ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        else:
            ax.legend(fontsize=7)
    return fig


def _mean_curve(histories: list[list[dict]], value) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over runs of ``value(entry)`` at the steps every run evaluated."""
    per_run = [{e["iteration"]: value(e) for e in h if value(e) is not None} for h in histories]
    steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    values = np.array([[p[s] for s in steps] for p in per_run], dtype=float).reshape(len(per_run), len(steps))
    return np.array(steps), values.mean(0), values.min(0), values.max(0)


def curves(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Per data set: ``curves_<dataset>`` (mIoU against step, one panel per split, main methods: mean over
    seeds with a min-max band) and ``losses_<dataset>`` (the logged loss parts against step, one panel per
    split and main method, mean over seeds)."""
    written: list[Path] = []
    main = runs[[is_main(m) for m in runs["method"]]]
    for dataset, block in main.groupby("dataset", sort=False):
        splits = list(block.sort_values("fraction").drop_duplicates("split")["split"])
        methods = sorted(set(block["method"]))
        fig = Figure(figsize=(4.6 * len(splits), 3.8))
        axes = fig.subplots(1, len(splits), squeeze=False)[0]
        for ax, split in zip(axes, splits):
            for index, ((method, source), cell) in enumerate(block[block["split"] == split].groupby(["method", "source"])):
                steps, mean, low, high = _mean_curve(list(cell["history"]), lambda e: 100 * e["miou"])
                if not len(steps):
                    continue
                colour, marker = style(method, index)
                label = f"{method} (n={len(cell)}" + (", local)" if source == "local" else ")")
                ax.plot(steps, mean, marker=marker, color=colour, linestyle="--" if source == "local" else "-",
                        label=label, markersize=4)
                ax.fill_between(steps, low, high, color=colour, alpha=0.15)
            ax.set_title(f"{dataset} {split}")
            ax.set_xlabel("step")
            ax.set_ylabel("val mIoU (%)")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
        fig.tight_layout()
        written += save(fig, out, f"curves_{dataset}")
        fig = Figure(figsize=(3.6 * len(methods), 2.8 * len(splits)))
        axes = fig.subplots(len(splits), len(methods), squeeze=False)
        for row, split in enumerate(splits):
            for col, method in enumerate(methods):
                ax = axes[row][col]
                cell = block[(block["split"] == split) & (block["method"] == method)]
                histories = list(cell["history"])
                keys = sorted({k for h in histories for e in h for k in (e.get("losses") or {})})
                for index, key in enumerate(keys):
                    steps, mean, _, _ = _mean_curve(histories, lambda e, k=key: (e.get("losses") or {}).get(k))
                    if len(steps):
                        ax.plot(steps, mean, color=_COLOURS[index % len(_COLOURS)], label=key)
                ax.set_title(f"{method}, {split}", fontsize=9)
                ax.set_xlabel("step", fontsize=8)
                ax.grid(alpha=0.3)
                if keys:
                    ax.legend(fontsize=6)
        fig.tight_layout()
        written += save(fig, out, f"losses_{dataset}")
    return written
