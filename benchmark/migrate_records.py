"""``python -m benchmark.migrate_records RESULTS_DIR``: bring the run records (and checkpoints) of a results
folder written by older versions of the suite to the present ``RunRecord`` format, once.

What older records lack is filled with what it meant when they were written: the teachers' numerics are
the step's and evaluation was float32 (records before ``teacher_amp``/``eval_amp``); demo data made
before records named it is the former default generator options (``FORMER_DEFAULTS``), and a manifest
older than an option held that option's former default; the val images' sizes are those another record of
the same images holds (records before ``val_sizes``); every other missing field is None. The
configuration digest is recomputed from the run's config.yaml (the digest no longer treats keys added
later as absent), in the record and in the run's checkpoints, so that the run still resumes. The
numbers a record reports are checked to be unchanged; a folder is rewritten only where it changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import torch

from benchmark import config as config_module
from benchmark import method as registry
from benchmark.atomic import write_atomic, write_json
from benchmark.data import demo
from benchmark.errors import UserError
from benchmark.run_record import RunRecord

FORMER_DEFAULTS = demo.DemoSpec(max_distractors=2, max_clutter=3, max_noise=0.06, max_blur=1.0)
"""The demo generator's defaults until December 2026 (distractors, clutter, more noise and blur): what
every record made before records named their data (``generated_data``) was trained on."""

RESULTS = ("last_miou", "best_miou", "last_iou", "best_iou", "best_iteration", "test", "labeled", "seed")
"""The fields whose values migration must never change."""


def _val_images(record: dict[str, Any]) -> tuple[Any, ...]:
    return record.get("dataset"), record.get("data_root"), record.get("val")


def _val_sizes(records: list[dict[str, Any]]) -> list[dict[str, int] | None]:
    """Each record's val image sizes: its own, else those a record of the same images holds (same data set,
    root and count; for a record without a data root, the one set of sizes known for its data set and count)."""
    known = {_val_images(r): r["val_sizes"] for r in records if r.get("val_sizes")}
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


def migrated(record: dict[str, Any], folder: Path, val_sizes: dict[str, int] | None) -> dict[str, Any]:
    """The record in the present format (``val_sizes`` as ``_val_sizes`` found them)."""
    out = dict(record)
    amp = out.get("amp") or "off"
    out["amp"], out["teacher_amp"] = amp, out.get("teacher_amp") or amp
    out["eval_amp"] = out.get("eval_amp") or "off"
    out["val_sizes"] = val_sizes
    if out.get("dataset") == "demo":
        out["generated_data"] = {**demo.manifest_of(FORMER_DEFAULTS), **(out.get("generated_data") or {})}
    for spec in dataclasses.fields(RunRecord):
        out.setdefault(spec.name, None)
    method_cls = registry.get(out["method"])
    out["config_digest"] = config_module.of_run_folder(folder, out["preset"], method_cls).digest()
    ordered = RunRecord.from_dict(out, str(folder / "record.json")).as_dict()
    changed = [key for key in RESULTS if ordered.get(key) != record.get(key)]
    if changed:
        raise UserError(f"{folder}: migration would change {', '.join(changed)}; nothing written")
    return ordered


def _checkpoints(folder: Path, old: str | None, new: str) -> int:
    """Rewrite the configuration digest of the folder's checkpoints that carry ``old``; how many."""
    count = 0
    for path in (folder / "checkpoint.pt", folder / "best.pt"):
        if not path.is_file():
            continue
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(payload, dict) and payload.get("config_digest") == old and old != new:
            payload["config_digest"] = new
            write_atomic(path, lambda handle, payload=payload: torch.save(payload, handle))
            count += 1
    return count


def migrate(root: Path) -> tuple[int, int, int]:
    """Migrate every record under ``root/runs``; (records seen, records rewritten, checkpoints rewritten)."""
    paths = sorted((Path(root) / "runs").glob("**/record.json"))
    records = [json.loads(path.read_text()) for path in paths]
    rewritten = checkpoints = 0
    for path, record, sizes in zip(paths, records, _val_sizes(records)):
        new = migrated(record, path.parent, sizes)
        if new != record or list(new) != list(record):
            checkpoints += _checkpoints(path.parent, record.get("config_digest"), new["config_digest"])
            write_json(path, new)
            rewritten += 1
    return len(paths), rewritten, checkpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.migrate_records", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results folder (holding runs/), e.g. results/reference")
    args = parser.parse_args(argv)
    try:
        seen, rewritten, checkpoints = migrate(Path(args.results))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{seen} records under {args.results}/runs: {rewritten} migrated, {checkpoints} checkpoints' "
          "digests rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
