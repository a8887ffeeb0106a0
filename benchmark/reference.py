"""The suite's reference records (``results/reference/``): finished runs, and runs that diverged (a result
too: ``report`` counts them), copied there by ``promote``.

A run never writes to the reference folder, so a user's command can neither overwrite nor resume a
committed record. The maintainers train in their own results folder (resumable, with checkpoints) and
promote what finished: the record, its metrics, its per-image counts and its configuration, never the
checkpoint.

When a preset changes, the records of its former configuration stay valid but are no longer the preset's:
``promote --as-tag TAG`` files such a run again as a tagged variant (the record's ``tag`` set to TAG and
``filed_as`` naming where it was), so the headline table holds one protocol only; ``--as-tag none`` files
a tagged run whose configuration became the preset's as the method itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from benchmark.atomic import write_atomic
from benchmark.errors import UserError
from benchmark.records import REFERENCE_ROOT, RunPaths
from benchmark.run_record import read_run_record, write_run_record

COPIED = ("config.yaml", "metrics.jsonl", "per_image.npz", "test_per_image.npz", "record.json")
"""What a reference run holds; record.json is written last, so that a half-copied run is never read as
finished. A run of a split without a test list has no test_per_image.npz, and a run that never
evaluated no per_image.npz: they are copied without."""
OPTIONAL = ("per_image.npz", "test_per_image.npz")


def promote(folders: list[Path], replace: bool = False, reference: Path = REFERENCE_ROOT,
            as_tag: str | None = None) -> Iterator[str]:
    """Copy each finished or diverged run folder into ``reference`` (under ``as_tag`` when given, see the module's
    docstring); yields one line per run copied."""
    for folder in folders:
        record = read_run_record(folder / "record.json")
        if record is None:
            raise UserError(f"{folder} holds no readable record.json; name a run folder (…/<method>/seed<k>)")
        if not (record.finished or record.has_diverged):
            raise UserError(f"{folder} is not finished (status {record.status!r}); finish it with the "
                            "same run command first")
        missing = [name for name in COPIED if name not in OPTIONAL and not (folder / name).is_file()]
        if missing:
            raise UserError(f"{folder} lacks {', '.join(missing)}; rerun it to write them")
        if as_tag is not None:
            tag = None if as_tag == "none" else as_tag
            if not as_tag or tag == record.tag:
                raise UserError(f"--as-tag {as_tag!r}: give a tag other than the run's own ({record.tag!r}), "
                                "or none for no tag")
            record = dataclasses.replace(record, tag=tag, filed_as="/".join(folder.resolve().parts[-3:]))
        target = RunPaths.of(record.dataset, record.split, record.method, record.seed, record.tag, reference).folder
        if target.resolve() == folder.resolve():
            raise UserError(f"{folder} is already a reference run")
        if (target / "record.json").exists() and not replace:
            raise UserError(f"{target} exists; pass --replace to replace it")
        for name in COPIED:
            if not (folder / name).is_file():
                (target / name).unlink(missing_ok=True)  # a replaced run's file must not outlive it
                continue
            if name == "record.json" and as_tag is not None:
                write_run_record(target / name, record)
                continue
            data = (folder / name).read_bytes()
            write_atomic(target / name, lambda handle, data=data: handle.write(data))
        dirty = " (made from a tree with uncommitted changes: no commit reproduces it)" if record.git_dirty else ""
        yield f"{folder} -> {target}{dirty}"
