"""Atomic file writes: write a temporary file beside the target, then rename it over the target.

A crash or a full disk while writing leaves the previous version of the file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from benchmark.errors import UserError


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, fsync it, and rename it to ``path``.

    A failed write (a full disk, permissions: an ``OSError``, also when a writer such as ``torch.save``
    reports it as its own RuntimeError) removes the temporary file and becomes a ``UserError`` that says
    the previous file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error(error)
        if cause is None:
            raise
        previous = "the previous version is intact" if path.exists() else "no previous version existed"
        raise UserError(f"could not write {path}: {cause.strerror or cause}; {previous}. "
                        "Free disk space or fix permissions and run the same command again.") from error


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself, or one it was raised from or while handling (torch.save
    turns a failing file write into 'RuntimeError: [enforce fail ...] unexpected pos')."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
