"""A run's folder as ``run`` uses it: the variant's name (``--tag``), whether a finished run answers for
this configuration, and setting a run aside (``--fresh``) instead of deleting it."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import yaml

from benchmark.config import Resolved
from benchmark.errors import Diverged, UserError
from benchmark.records import RunPaths
from benchmark.run_record import RunRecord, read_run_record

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A variant's name: it becomes part of a folder name (``<method>+<tag>``)."""


def checked_tag(tag: str | None) -> str | None:
    """``tag`` if it can name a folder; a message with an example otherwise."""
    if tag is not None and not TAG.fullmatch(tag):
        raise UserError(f"--tag {tag!r} is not a name: use letters, digits, '.', '_' and '-' (up to 64, starting "
                        "with a letter or digit), e.g. --tag lr001")
    return tag


def flat(data: dict, prefix: str = "") -> dict[str, object]:
    """A nested configuration as {'optim.lr': 0.05, ...}."""
    out: dict[str, object] = {}
    for key, value in data.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


class RunFolder:
    """The folder of one run (method, split, seed, tag) under a results root."""

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths

    def finished(self, resolved: Resolved) -> RunRecord | None:
        """The record of a finished run of this configuration, None when the run is still to train; a
        finished run of another configuration is refused, naming what differs, and so is a diverged run
        unless ``trainer.on_nonfinite=skip`` resumes it (training it again would diverge again)."""
        record = read_run_record(self.paths.record)
        if record is not None and record.has_diverged and resolved.run.trainer.on_nonfinite == "stop":
            raise Diverged(f"{self.paths.folder} diverged at iteration {record.diverged_at} "
                            f"({(record.diverged or {}).get('what', 'a non-finite step')}); its record is kept as "
                            "diverged and report counts it so. --fresh trains it again from the start; --set "
                            "trainer.on_nonfinite=skip resumes it from its last good checkpoint, skipping such steps")
        if record is None or not record.finished:
            return None
        if record.config_digest != resolved.digest():
            try:
                before = flat(yaml.safe_load(self.paths.config.read_text()) or {})
            except (OSError, yaml.YAMLError):
                before = {}
            now = flat(resolved.as_dict())
            changed = [f"{k}: {before.get(k)!r} there, {now[k]!r} now" for k in now
                       if k in before and before[k] != now[k]]
            detail = f" ({'; '.join(changed[:4])})" if changed else ""
            raise UserError(f"{self.paths.folder} finished with a different configuration{detail}; use --tag NAME "
                            "to train this variant beside it, or --fresh to set the finished run aside and train "
                            "again")
        return record

    def set_aside(self) -> Path | None:
        """Move the run's files (all but the lock this process holds, so that no other process can start the
        run meanwhile) into a dated sibling folder; None when there was nothing to move."""
        keep = self.paths.lock
        if not any(entry != keep for entry in self.paths.folder.iterdir()):
            return None
        target = self.paths.folder.with_name(f"{self.paths.folder.name}.replaced-"
                                             f"{datetime.now().strftime('%Y%m%d-%H%M%S')}")
        target.mkdir()
        for entry in self.paths.folder.iterdir():
            if entry != keep:
                shutil.move(str(entry), str(target / entry.name))
        return target

    def remove_partial_writes(self) -> None:
        """Delete the temporary files of a process killed while it wrote (atomic writes go through them)."""
        for stale in self.paths.folder.glob(".*.tmp"):
            stale.unlink()


def scores(record: RunRecord) -> str:
    """A record's mIoU in words: on val (last, best and when), and on test where the split has one."""
    text = (f"val mIoU last {100 * record.last_miou:.2f}, best {100 * record.best_miou:.2f} "
            f"(iteration {record.best_iteration})")
    test = record.test_result()
    if test:
        text += (f"; test ({test['images']} images) last {100 * test['last_miou']:.2f}, best-on-val "
                 f"{100 * test['best_miou']:.2f}")
    return text
