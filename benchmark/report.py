"""Tables and plots of finished runs, beside the published numbers.

Reads ``runs/**/record.json`` of two results folders: yours (``local``) and the suite's committed
``reference`` records (only records whose status is ``finished``: a sweep writing meanwhile never shows
half a run). Runs are grouped by data set, split, method and source (a local run is never averaged with
a reference run), with mean and standard deviation over seeds of the last and the best evaluation, the
number of seeds and the labeled count of every split. Runs of one cell made under different protocols are
never averaged (``protocol_checks``). A run of a data set with a test list is reported on test (its last and its
best-on-val networks, evaluated once at its end), with its val figures beside; other runs on val. Where
the records carry per-image counts, every cell has a 95 % bootstrap interval over the evaluation images
and per split the best main method and those not distinguishable from it are marked (``stats``);
``--compare A,B`` prints paired differences. Outputs: the terminal tables with the
protocol checks above them, ``summary.{csv,md}`` (``summary.tex`` with ``--latex``), the per-class tables
``per_class.{csv,md}``, every run's figures ``per_seed.{csv,md}``, and the figures ``miou_vs_labels``,
``miou_vs_labels_variants``, ``curves_<dataset>`` and ``losses_<dataset>`` (``.png`` and ``.svg``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console

from benchmark import figures, stats, tables
from benchmark.atomic import write_text
from benchmark.protocol_checks import protocol_checks
from benchmark.config import dtype_name
from benchmark.data import demo
from benchmark.errors import UserError
from benchmark.records import PUBLISHED, REFERENCE_ROOT, is_main, method_label, read_per_image, results_root

NOT_AVAILABLE = "not published / not available"
SOURCES = ("reference", "local")
"""Where runs come from: the suite's committed records, or the user's results folder."""


REQUIRED = ("dataset", "split", "method", "seed", "labeled", "labeled_fraction", "last_miou", "best_miou")
"""Fields a finished record needs to be reported."""


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_history(path: Path) -> list[dict[str, Any]]:
    """The lines of metrics.jsonl that parse (a line being written is skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    history = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "iteration" in entry:
            history.append(entry)
    return history


def protocol_of(record: dict[str, Any], config: dict[str, Any],
                val_sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """What must be equal for two runs to be averaged: crop, schedule, evaluation, backbone, weights,
    split files, the val images' sizes (``val_sizes``: a data set and its half-size copy are two
    protocols), the resolved numerics, the test list (a run reported on test is never averaged with one
    reported on val) and, for demo data generated with other options, those options (the method and its
    parameters are the cell's own)."""
    data, model = config.get("data") or {}, config.get("model") or {}
    protocol = {"crop": data.get("crop_size"), "iterations": record.get("iterations"), "eval": record.get("eval"),
                "backbone": model.get("backbone"), "weights": (record.get("weights") or {}).get("sha256"),
                "split_sha256": record.get("split_sha256"), "val_sizes": val_sizes, "numerics": numerics_of(record),
                "test": (test_of(record) or {}).get("sha256")}
    variant = demo.variant(record.get("generated_data")) if record.get("dataset") == "demo" else None
    if variant:
        protocol["data"] = variant
    return protocol


def test_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's test evaluations (last and best-on-val networks), None for a run without a test list."""
    test = record.get("test")
    return test if isinstance(test, dict) and test.get("last_miou") is not None else None


def evaluation_set(record: dict[str, Any], val_sizes: dict[str, int] | None = None) -> str:
    """What a run is reported on, in words: test (selected on val) or val (of ``val_sizes``)."""
    test = test_of(record)
    if test:
        return f"{test['images']} test images{_resolution(test.get('sizes'))} (selected on {record.get('val')} val images)"
    return f"{record.get('val')} val images{_resolution(val_sizes)}"


def numerics_of(record: dict[str, Any]) -> dict[str, Any]:
    """The autocast dtypes and memory format a run resolved to. A record made before ``teacher_amp`` and
    ``eval_amp`` existed ran its teachers as its step and evaluated in float32."""
    amp = record.get("amp") or "off"
    return {"amp": amp, "teacher_amp": record.get("teacher_amp") or amp, "eval_amp": record.get("eval_amp") or "off",
            "channels_last": record.get("channels_last")}


def machine_of(record: dict[str, Any]) -> str:
    """The device and CPU a run was made on, in words (records older than the CPU fields do not name it)."""
    if record.get("cpu_model"):
        cpu = (f"{record['cpu_model']} ({record.get('cpu_cores', '?')} cores, {record.get('cpu_capability', '?')}, "
               f"bf16 {'native' if record.get('bf16_native') else 'not native'})")
    else:
        cpu = "CPU not recorded"
    device = record.get("device", "?")
    where = cpu if device == "cpu" else f"{record.get('device_name', device)} on {cpu}"
    return f"{where} x {record.get('cpu_threads', '?')} threads"


def setup_of(record: dict[str, Any], config: dict[str, Any], protocol: dict[str, Any]) -> str:
    """The run's protocol in words, for the statement beside a table: ``protocol`` (protocol_of's, read
    once) and what else a reader needs (preset, weights' source, batch, val images and their sizes,
    device and CPU)."""
    numerics = protocol["numerics"]
    data = config.get("data") or {}
    crop = protocol["crop"]
    crop = "x".join(map(str, crop)) if isinstance(crop, list) else crop
    weights = (record.get("weights") or {}).get("source", "?")
    return (f"preset {record.get('preset')}: {protocol['backbone']} DeepLabV3+ ({'ImageNet weights' if weights == 'file' else weights}), "
            f"crop {crop}, batch {data.get('batch_size')} labeled + {data.get('unlabeled_batch_size')} unlabeled, "
            f"{protocol['iterations']} steps, evaluation {(protocol['eval'] or {}).get('mode')} on "
            f"{evaluation_set(record, protocol.get('val_sizes'))}, "
            f"{machine_of(record)}, step {dtype_name(numerics['amp'])}, teachers {dtype_name(numerics['teacher_amp'])}, "
            f"evaluation {dtype_name(numerics['eval_amp'])}"
            + (f", demo data made with {protocol['data']}" if "data" in protocol else ""))


def _resolution(sizes: dict[str, int] | None) -> str:
    """" of 480x360" when every val image has one size, " of mixed sizes (most 500x375)" otherwise; nothing
    when no record of these val images holds their sizes."""
    if not sizes:
        return ""
    common = next(iter(sizes))
    return f" of {common}" if len(sizes) == 1 else f" of mixed sizes (most {common})"


def _val_images(record: dict[str, Any]) -> tuple[Any, ...]:
    """What fixes the val images a run was evaluated on, hence their sizes: data set, data root, count."""
    return record.get("dataset"), record.get("data_root"), record.get("val")


def _val_sizes(records: list[dict[str, Any]]) -> list[dict[str, int] | None]:
    """Each record's val image sizes: its own, else those another record of the same images holds (a
    record older than the data root's field: the one set of sizes known for its data set and count)."""
    known = {_val_images(record): record["val_sizes"] for record in records if record.get("val_sizes")}
    by_count: dict[tuple[Any, Any], list[dict[str, int]]] = {}
    for (dataset, _, count), sizes in known.items():
        distinct = by_count.setdefault((dataset, count), [])
        if sizes not in distinct:
            distinct.append(sizes)

    def resolve(record: dict[str, Any]) -> dict[str, int] | None:
        if record.get("val_sizes"):
            return record["val_sizes"]
        if record.get("data_root") is not None:
            return known.get(_val_images(record))
        candidates = by_count.get((record.get("dataset"), record.get("val")), [])
        return candidates[0] if len(candidates) == 1 else None

    return [resolve(record) for record in records]


def load_runs(root: Path, source: str = "local") -> tuple[pd.DataFrame, list[str]]:
    """One row per finished run under ``root/runs``, marked with ``source``, and the record files that
    were skipped as unreadable or incomplete (each with the reason). Unfinished runs are left out. A run
    recorded before records held the val images' sizes is stated with the sizes another record of the
    same images holds, so that one protocol reads as one setup."""
    rows, skipped, described = [], [], []
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
        test = test_of(record)
        try:
            val_scores = 100 * float(record["last_miou"]), 100 * float(record["best_miou"])
            scores = (100 * float(test["last_miou"]), 100 * float(test["best_miou"])) if test else val_scores
        except (TypeError, ValueError):
            skipped.append(f"{path} (a last or best mIoU is not a number)")
            continue
        history = _read_history(path.parent / "metrics.jsonl")
        config = _read_config(path.parent / "config.yaml")
        rows.append({"source": source, "dataset": record["dataset"], "split": record["split"],
                     "method": method_label(record["method"], record.get("tag")), "seed": record["seed"],
                     "labeled": record["labeled"], "fraction": record["labeled_fraction"],
                     "evaluated_on": "test" if test else "val",
                     "eval_images": test["images"] if test else record.get("val"),
                     "last": scores[0], "best": scores[1], "val_last": val_scores[0], "val_best": val_scores[1],
                     "per_image_file": test.get("per_image") if test else "per_image.npz",
                     "seconds": record.get("train_seconds"),
                     "memory_mb": record.get("peak_memory_mb"),
                     "backbone": (record.get("weights") or {}).get("source", ""), "preset": record.get("preset"),
                     "folder": str(path.parent),
                     "iterations": record.get("iterations"),
                     "last_iteration": history[-1]["iteration"] if history else None,
                     "last_iou": (test or record).get("last_iou"), "class_names": record.get("class_names"),
                     "history": history})
        described.append((record, config))
    sizes = _val_sizes([record for record, _ in described])
    for row, (record, config), val_sizes in zip(rows, described, sizes):
        protocol = protocol_of(record, config, val_sizes)
        row["protocol"] = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:6]
        row["protocol_fields"] = protocol
        row["setup"] = setup_of(record, config, protocol)
    return _separate_protocols(pd.DataFrame(rows)), skipped


def _separate_protocols(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs of one cell made under different protocols get their protocol's id in the method label, so
    that they are never averaged; ``protocols`` counts the protocols of the cell."""
    if runs.empty:
        return runs
    keys = ["dataset", "split", "method", "source"]
    runs["protocols"] = runs.groupby(keys)["protocol"].transform("nunique")
    mixed = runs["protocols"] > 1
    runs.loc[mixed, "method"] = runs.loc[mixed, "method"] + " [" + runs.loc[mixed, "protocol"] + "]"
    return runs


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (over seeds, ddof 1) and count per data set, split, method and source, on the runs'
    evaluation set (``evaluated_on``), with the mean val figures beside (the same numbers for runs on val)."""
    if runs.empty:
        return pd.DataFrame()
    grouped = runs.groupby(["dataset", "split", "method", "source"], sort=False)
    table = grouped.agg(labeled=("labeled", "first"), fraction=("fraction", "first"), seeds=("seed", "nunique"),
                        evaluated_on=("evaluated_on", "first"), eval_images=("eval_images", "first"),
                        last_mean=("last", "mean"), last_std=("last", "std"), best_mean=("best", "mean"),
                        best_std=("best", "std"), val_last_mean=("val_last", "mean"),
                        val_best_mean=("val_best", "mean"), seconds=("seconds", "mean"),
                        memory_mb=("memory_mb", "max"), protocols=("protocols", "max"))
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
        main = [i for i, row in block.iterrows() if is_main(row.method)]
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
    spread that the bootstrap over val images does not cover."""
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
    its paired bootstrap interval over the val images (seeds pooled by their mean), and the difference
    on each seed both ran, since the interval covers the choice of val images, not of seeds."""
    lines = []
    for (dataset, split, source), block in runs.groupby(["dataset", "split", "source"], sort=True):
        if not {a, b} <= set(block["method"]):
            continue
        mean = {m: block[block["method"] == m]["last"].mean() for m in (a, b)}
        seeds = {m: block[block["method"] == m]["seed"].nunique() for m in (a, b)}
        where = f"{dataset} {split} ({source}, n={seeds[a]} vs {seeds[b]})"
        cell_a, cell_b = per_image.cell(dataset, split, a, source), per_image.cell(dataset, split, b, source)
        if cell_a and cell_b and np.array_equal(cell_a[1], cell_b[1]):
            weights = stats.resample_weights(len(cell_a[1]), seed=seed)
            difference = stats.difference_interval(cell_a[0], cell_b[0], weights)
            verdict = "0 inside: not distinguishable" if difference.contains(0) else "0 outside"
            line = (f"{where}: {a} - {b} = {difference} mIoU, 95 % paired bootstrap interval over val images; "
                    f"{verdict}")
        else:
            line = (f"{where}: {a} - {b} = {mean[a] - mean[b]:+.2f} mIoU (no interval: a record lacks "
                    "per-image counts or the val lists differ)")
        lines.append(f"{line}; {seed_differences(block, a, b)}")
    return lines


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
    supervised = table[table["method"] == "supervised"].set_index(["dataset", "split", "source", "class"])["iou"]
    keys = list(zip(table["dataset"], table["split"], table["source"], table["class"]))
    table["vs_supervised"] = [table["iou"].iloc[i] - supervised[k] if k in supervised.index else np.nan
                              for i, k in enumerate(keys)]
    return table


def per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run, ordered by data set, labeled fraction, method, source and seed: the runs
    behind every mean of the summary."""
    ordered = runs.sort_values(["dataset", "fraction", "method", "source", "seed"], ignore_index=True)
    return ordered.assign(hours=ordered["seconds"] / 3600)[
        ["dataset", "split", "labeled", "method", "source", "seed", "evaluated_on", "last", "best", "val_last",
         "val_best", "last_iteration", "hours"]]


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


def with_published(summary: pd.DataFrame, published: pd.DataFrame, missing: dict[str, str]) -> pd.DataFrame:
    """The summary with a ``published`` column."""
    if summary.empty:
        return summary
    out = summary.copy()
    out["published"] = [published_cell(published, missing, row.split, row.method) for row in out.itertuples()]
    return out


def main(console: Console, out: str | Path | None = None, which: str = "both", reference: Path = REFERENCE_ROOT,
         published_path: Path = PUBLISHED, latex: bool = False, compare_methods: tuple[str, str] | None = None,
         readme: Path | None = None) -> Path | None:
    """Build and write the report of the finished runs of ``which`` ('local', 'reference' or 'both');
    returns the folder written to (the reference folder for 'reference' alone, else yours). With ``readme``
    (reference runs alone), that file's report block is rewritten too."""
    if readme is not None and which != "reference":
        raise UserError("--readme writes the suite's own results into the README: use it with --runs reference")
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
    per_image = PerImage(runs)
    summary = with_published(attach_intervals(summarise(runs), per_image), published, missing)
    checks = protocol_checks(runs, summary)
    tables.terminal(summary, console, checks)
    classes = per_class(runs)
    if not classes.empty:
        tables.per_class_terminal(classes, console)
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
    seeds = per_seed(runs)
    written += [target / "per_seed.csv", target / "per_seed.md"]
    write_text(written[-2], seeds.to_csv(index=False, float_format="%.2f"))
    write_text(written[-1], tables.per_seed_markdown(seeds))
    if latex:
        written.append(target / "summary.tex")
        write_text(written[-1], tables.latex(summary))
    written += figures.miou_vs_labels(summary, published, target)
    written += figures.miou_vs_labels(summary, published, target, variants=True)
    written += figures.curves(runs, target)
    if readme is not None:
        plot = os.path.relpath(target / "miou_vs_labels.svg", readme.parent)
        block = tables.readme_block(summary, runs, checks, plot)
        write_text(readme, tables.replace_readme_block(readme.read_text(), block, str(readme)))
        written.append(readme)
    console.print(f"{len(runs)} runs; wrote " + ", ".join(str(p) for p in written), highlight=False, soft_wrap=True)
    return target
