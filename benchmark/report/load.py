"""What the report reads: one row per finished or diverged run (its record, config.yaml and metrics.jsonl),
each with the protocol it was made under, and the published numbers."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.config import dtype_name
from benchmark.data import demo
from benchmark.errors import UserError
from benchmark.records import method_label
from benchmark.run_record import RunRecord, load_run_record
from benchmark.yaml_files import read_yaml

NOT_AVAILABLE = "not published / not available"


def _read_config(path: Path) -> dict[str, Any]:
    """The run's config.yaml; empty where it is missing or unreadable (the protocol then uses the record)."""
    try:
        return read_yaml(path)
    except UserError:
        return {}


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


def protocol_of(record: RunRecord, config: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for two runs to be averaged: crop, schedule, evaluation, backbone, weights,
    split files, the val images' sizes (a data set and its half-size copy are two protocols), the
    resolved numerics, the test list (a run reported on test is never averaged with one reported on val)
    and, for demo data generated with other options, those options (the method and its parameters are
    the cell's own)."""
    data, model = config.get("data") or {}, config.get("model") or {}
    protocol = {"crop": data.get("crop_size"), "iterations": record.iterations, "eval": record.eval,
                "backbone": model.get("backbone"), "weights": (record.weights or {}).get("sha256"),
                "split_sha256": record.split_sha256, "val_sizes": record.val_sizes, "numerics": numerics_of(record),
                "test": (record.test or {}).get("sha256")}
    variant = demo.variant(record.generated_data) if record.dataset == "demo" else None
    if variant:
        protocol["data"] = variant
    return protocol


def evaluation_set(record: RunRecord) -> str:
    """What a run is reported on, in words: test (selected on val) or val."""
    test = record.test_result()
    if test:
        return f"{test['images']} test images{_resolution(test.get('sizes'))} (selected on {record.val} val images)"
    return f"{record.val} val images{_resolution(record.val_sizes)}"


def numerics_of(record: RunRecord) -> dict[str, Any]:
    """The autocast dtypes and memory format a run resolved to."""
    return {"amp": record.amp, "teacher_amp": record.teacher_amp, "eval_amp": record.eval_amp,
            "channels_last": record.channels_last}


def machine_of(record: RunRecord) -> str:
    """The device and CPU a run was made on, in words."""
    if record.cpu_model:
        cpu = (f"{record.cpu_model} ({record.cpu_cores} cores, {record.cpu_capability}, "
               f"bf16 {'native' if record.bf16_native else 'not native'})")
    else:
        cpu = "CPU not recorded"
    where = cpu if record.device == "cpu" else f"{record.device_name} on {cpu}"
    return f"{where} x {record.cpu_threads} threads"


def setup_of(record: RunRecord, config: dict[str, Any], protocol: dict[str, Any]) -> str:
    """The run's protocol in words, for the statement beside a table: ``protocol`` (protocol_of's, read
    once) and what else a reader needs (preset, weights' source, batch, evaluation images and their
    sizes, device and CPU)."""
    numerics = protocol["numerics"]
    data = config.get("data") or {}
    crop = protocol["crop"]
    crop = "x".join(map(str, crop)) if isinstance(crop, list) else crop
    weights = (record.weights or {}).get("source", "?")
    return (f"preset {record.preset}: {protocol['backbone']} DeepLabV3+ ({'ImageNet weights' if weights == 'file' else weights}), "
            f"crop {crop}, batch {data.get('batch_size')} labeled + {data.get('unlabeled_batch_size')} unlabeled, "
            f"{protocol['iterations']} steps, evaluation {(protocol['eval'] or {}).get('mode')} on "
            f"{evaluation_set(record)}, "
            f"{machine_of(record)}, step {dtype_name(numerics['amp'])}, teachers {dtype_name(numerics['teacher_amp'])}, "
            f"evaluation {dtype_name(numerics['eval_amp'])}"
            + (f", demo data made with {protocol['data']}" if "data" in protocol else ""))


def _resolution(sizes: dict[str, int] | None) -> str:
    """" of 480x360" when every image has one size, " of mixed sizes (most 500x375)" otherwise; nothing
    when the sizes are unknown."""
    if not sizes:
        return ""
    common = next(iter(sizes))
    return f" of {common}" if len(sizes) == 1 else f" of mixed sizes (most {common})"


def _row(record: RunRecord, path: Path, source: str) -> dict[str, Any]:
    """The report's row of one finished or diverged run; a diverged run's scores are NaN (its last
    evaluation came before the step that stopped it) and ``diverged_at`` names that step."""
    test = record.test_result()
    if record.has_diverged:
        val_scores = scores = math.nan, math.nan
    else:
        val_scores = 100 * record.last_miou, 100 * record.best_miou
        scores = (100 * test["last_miou"], 100 * test["best_miou"]) if test else val_scores
    history = _read_history(path.parent / "metrics.jsonl")
    config = _read_config(path.parent / "config.yaml")
    protocol = protocol_of(record, config)
    return {"source": source, "dataset": record.dataset, "split": record.split,
            "method": method_label(record.method, record.tag), "seed": record.seed,
            "labeled": record.labeled, "fraction": record.labeled_fraction,
            "evaluated_on": "test" if test else "val", "eval_images": test["images"] if test else record.val,
            "last": scores[0], "best": scores[1], "val_last": val_scores[0], "val_best": val_scores[1],
            "diverged_at": record.diverged_at,
            "per_image_file": test.get("per_image") if test else record.per_image,
            "seconds": record.train_seconds, "memory_mb": record.peak_memory_mb,
            "backbone": (record.weights or {}).get("source", ""), "preset": record.preset,
            "folder": str(path.parent), "iterations": record.iterations,
            "last_iteration": history[-1]["iteration"] if history else None,
            "last_iou": test.get("last_iou") if test else record.last_iou, "class_names": record.class_names,
            "history": history,
            "protocol": hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:6],
            "protocol_fields": protocol, "setup": setup_of(record, config, protocol)}


def load_runs(root: Path, source: str = "local") -> tuple[pd.DataFrame, list[str]]:
    """One row per finished or diverged run under ``root/runs``, marked with ``source``, and the record files
    that were skipped as unreadable or of another format (each with the reason). Runs still training are
    left out."""
    rows, skipped = [], []
    for path in sorted((root / "runs").glob("**/record.json")):
        try:
            record = load_run_record(path)
        except UserError as error:
            skipped.append(str(error))
            continue
        if record.has_diverged:
            rows.append(_row(record, path, source))
            continue
        if not record.finished:
            continue
        if record.last_miou is None or record.best_miou is None:
            skipped.append(f"{path} (finished without an evaluation)")
            continue
        rows.append(_row(record, path, source))
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


def load_published(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Published numbers (with backbone and source) and the methods whose numbers are unavailable."""
    if not path.exists():
        return pd.DataFrame(columns=["dataset", "split", "method", "backbone", "miou", "source"]), {}
    data = read_yaml(path)
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


