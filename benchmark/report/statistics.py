"""The report's statistics over runs: mean and std over seeds per cell, bootstrap intervals over the
evaluation images and the marks of the best main method (``stats``), paired comparisons, per-class,
per-group and per-seed tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import stats
from benchmark.data import splits
from benchmark.records import is_main, read_per_image


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (over seeds, ddof 1) and count per data set, split, method and source, on the runs'
    evaluation set (``evaluated_on``), with the mean val figures beside (the same numbers for runs on val).
    Diverged seeds are counted (``diverged``, and the steps they stopped at, ``diverged_at``), never averaged:
    a cell whose every seed diverged has no mean."""
    if runs.empty:
        return pd.DataFrame()
    keys = ["dataset", "split", "method", "source"]
    stopped = runs["diverged_at"].notna()
    finished = runs[~stopped]
    table = finished.groupby(keys, sort=False).agg(
        labeled=("labeled", "first"), fraction=("fraction", "first"), seeds=("seed", "nunique"),
        evaluated_on=("evaluated_on", "first"), eval_images=("eval_images", "first"),
        last_mean=("last", "mean"), last_std=("last", "std"), best_mean=("best", "mean"), best_std=("best", "std"),
        val_last_mean=("val_last", "mean"), val_best_mean=("val_best", "mean"), seconds=("seconds", "mean"),
        memory_mb=("memory_mb", "max"), protocols=("protocols", "max"))
    diverged = runs[stopped].groupby(keys, sort=False).agg(
        labeled=("labeled", "first"), fraction=("fraction", "first"), evaluated_on=("evaluated_on", "first"),
        diverged=("seed", "nunique"),
        diverged_at=("diverged_at", lambda at: ", ".join(str(int(i)) for i in sorted(at))))
    table = table.combine_first(diverged) if len(diverged) else table.assign(diverged=0, diverged_at="")
    table["seeds"] = table["seeds"].fillna(0).astype(int)
    table["diverged"] = table["diverged"].fillna(0).astype(int)
    table["diverged_at"] = table["diverged_at"].fillna("")
    return table.reset_index().sort_values(["dataset", "fraction", "method", "source"], ignore_index=True)


class PerImage:
    """The per-image counts of the runs' last networks on their evaluation set (``per_image.npz`` for val,
    the record's test file for test), read once each."""

    def __init__(self, runs: pd.DataFrame) -> None:
        self.runs = runs
        self.cache: dict[Path, dict[str, np.ndarray] | None] = {}

    def read(self, path: Path) -> dict[str, np.ndarray] | None:
        if path not in self.cache:
            data = read_per_image(path)
            self.cache[path] = data if data and "last_intersection" in data else None
        return self.cache[path]

    def cell(self, dataset: str, split: str, method: str, source: str) -> tuple[list, np.ndarray] | None:
        """(per seed (intersection, union), the evaluation image list) of a cell, or None when a seed lacks
        the file or the seeds were evaluated on different image lists."""
        r = self.runs
        chosen = r[(r["dataset"] == dataset) & (r["split"] == split) & (r["method"] == method) & (r["source"] == source)]
        data = [self.read(Path(folder) / str(name)) for folder, name in zip(chosen["folder"], chosen["per_image_file"])]
        if not data or any(d is None for d in data):
            return None
        images = data[0]["images"]
        if any(not np.array_equal(d["images"], images) for d in data):
            return None
        return [(d["last_intersection"], d["last_union"]) for d in data], images


def attach_intervals(summary: pd.DataFrame, per_image: PerImage, seed: int = 0) -> pd.DataFrame:
    """The summary with the 95 % bootstrap interval of each cell's last mIoU (``ci_low``, ``ci_high``;
    empty for cells whose records lack per-image counts) and, per split and source among two or more main
    methods, ``mark``: 'best' for the highest mean, 'tied' for a method whose paired difference to it
    (``vs_best``) has an interval containing 0: not distinguishable from the best on these val images."""
    if summary.empty:
        return summary
    out = summary.copy()
    out["ci_low"], out["ci_high"], out["mark"], out["vs_best"] = np.nan, np.nan, "", ""
    for _, block in out.groupby(["dataset", "split", "source"], sort=False):
        main = [i for i, row in block.iterrows() if is_main(row.method) and not row.get("diverged", 0)]
        if len(main) < 2:
            main = []
        best = max(main, key=lambda i: out.loc[i, "last_mean"]) if main else None
        if best is not None:
            out.loc[best, "mark"] = "best"
        cells = {i: per_image.cell(row.dataset, row.split, row.method, row.source) for i, row in block.iterrows()}
        cells = {i: c for i, c in cells.items() if c}
        for i, (runs, images) in cells.items():
            interval = stats.cell_interval(runs, stats.resample_weights(len(images), seed=seed))
            out.loc[i, ["ci_low", "ci_high"]] = interval.low, interval.high
        if best not in cells:
            continue
        images = cells[best][1]
        weights = stats.resample_weights(len(images), seed=seed)
        for i in main:
            if i != best and i in cells and np.array_equal(cells[i][1], images):
                difference = stats.difference_interval(cells[i][0], cells[best][0], weights)
                out.loc[i, "vs_best"] = str(difference)
                out.loc[i, "mark"] = "tied" if difference.contains(0) else ""
    return out


def seed_differences(block: pd.DataFrame, a: str, b: str) -> str:
    """Last mIoU of ``a`` minus ``b`` on each seed both ran, and how often ``a`` leads: the seed-to-seed
    spread that the bootstrap over the evaluation images does not cover."""
    last = {m: block[block["method"] == m].groupby("seed")["last"].mean() for m in (a, b)}
    shared = sorted(set(last[a].index) & set(last[b].index))
    if not shared:
        return "no seed ran for both, so the seed-to-seed spread is not covered"
    differences = [last[a][s] - last[b][s] for s in shared]
    listed = ", ".join(f"seed {s} {d:+.2f}" for s, d in zip(shared, differences))
    ahead = sum(d > 0 for d in differences)
    return f"per seed both ran: {listed} ({a} ahead on {ahead} of {len(shared)})"


def compare(runs: pd.DataFrame, per_image: PerImage, a: str, b: str, seed: int = 0) -> list[str]:
    """For every split (and source) with runs of both methods: mean last mIoU of ``a`` minus ``b``, with
    its paired bootstrap interval over the evaluation images (test where the runs have it, else val; seeds
    pooled by their mean), and the difference on each seed both ran, since the interval covers the choice
    of images, not of seeds."""
    lines = []
    for (dataset, split, source), block in runs.groupby(["dataset", "split", "source"], sort=True):
        if not {a, b} <= set(block["method"]):
            continue
        mean = {m: block[block["method"] == m]["last"].mean() for m in (a, b)}
        seeds = {m: block[block["method"] == m]["seed"].nunique() for m in (a, b)}
        where = f"{dataset} {split} ({source}, n={seeds[a]} vs {seeds[b]})"
        evaluated_on = "/".join(sorted(set(block[block["method"].isin([a, b])]["evaluated_on"])))
        cell_a, cell_b = per_image.cell(dataset, split, a, source), per_image.cell(dataset, split, b, source)
        if cell_a and cell_b and np.array_equal(cell_a[1], cell_b[1]):
            weights = stats.resample_weights(len(cell_a[1]), seed=seed)
            difference = stats.difference_interval(cell_a[0], cell_b[0], weights)
            verdict = "0 inside: not distinguishable" if difference.contains(0) else "0 outside"
            line = (f"{where}: {a} - {b} = {difference} mIoU, 95 % paired bootstrap interval over {evaluated_on} "
                    f"images; {verdict}")
        else:
            line = (f"{where}: {a} - {b} = {mean[a] - mean[b]:+.2f} mIoU (no interval: a record lacks "
                    "per-image counts or the evaluation lists differ)")
        lines.append(f"{line}; {seed_differences(block, a, b)}")
    return lines


def with_vs_supervised(table: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """``table`` with ``vs_supervised``: each row's ``value`` minus supervised's on the same data set, split,
    source and ``column`` (NaN where supervised has no row)."""
    keys = ["dataset", "split", "source", column]
    supervised = table[table["method"] == "supervised"].set_index(keys)[value]
    table["vs_supervised"] = [table[value].iloc[i] - supervised[k] if k in supervised.index else np.nan
                              for i, k in enumerate(zip(*(table[key] for key in keys)))]
    return table


def per_class(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell and class: IoU (%, mean over seeds of the last evaluation) and its difference to
    supervised on the same split and source."""
    rows = []
    for (dataset, split, method, source), block in runs.groupby(["dataset", "split", "method", "source"], sort=True):
        ious = [r for r in block["last_iou"] if isinstance(r, list)]
        names = next((n for n in block["class_names"] if isinstance(n, list)), None)
        if not ious or len({len(r) for r in ious}) > 1:
            continue
        mean = np.nanmean(np.array(ious, dtype=float), axis=0) * 100
        for k, value in enumerate(mean):
            rows.append({"dataset": dataset, "split": split, "method": method, "source": source,
                         "class": names[k] if names and k < len(names) else str(k), "iou": value})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return with_vs_supervised(table, "class", "iou")


def per_group(runs: pd.DataFrame, per_image: PerImage, dataset: str, pattern: str) -> pd.DataFrame:
    """Per cell of ``dataset`` and group of evaluation images (the part of each file name ``pattern``
    matches, as in ``splits make --strata``; CamVid's drives with ``^[^_]+``): the last network's mIoU (%)
    on the group's images, mean and std over seeds, and the difference to supervised on the same split and
    source. Cells without per-image counts are left out."""
    rows = []
    chosen_runs = runs[runs["dataset"] == dataset]
    for (split, method, source), _ in chosen_runs.groupby(["split", "method", "source"], sort=True):
        cell = per_image.cell(dataset, split, method, source)
        if cell is None:
            continue
        counts, images = cell
        groups = np.array(splits.strata_of([str(name) for name in images], pattern, "--groups"))
        for group in sorted(set(groups)):
            chosen = groups == group
            scores = [float(stats.miou(i[chosen].sum(0), u[chosen].sum(0))) for i, u in counts]
            rows.append({"dataset": dataset, "split": split, "method": method, "source": source, "group": group,
                         "images": int(chosen.sum()), "seeds": len(scores), "mean": float(np.mean(scores)),
                         "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else np.nan})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return with_vs_supervised(table, "group", "mean")


def per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished or diverged run, ordered by data set, labeled fraction, method, source and seed:
    the runs behind every mean of the summary, and the seeds that diverged (``diverged_at``)."""
    ordered = runs.sort_values(["dataset", "fraction", "method", "source", "seed"], ignore_index=True)
    return ordered.assign(hours=ordered["seconds"] / 3600)[
        ["dataset", "split", "labeled", "method", "source", "seed", "evaluated_on", "last", "best", "val_last",
         "val_best", "last_iteration", "diverged_at", "hours"]]


