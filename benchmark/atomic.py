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

    An ``OSError`` (disk full, permissions) removes the temporary file and becomes a ``UserError``
    that says the previous file is untouched.
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
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        previous = "the previous version is intact" if path.exists() else "no previous version existed"
        raise UserError(f"could not write {path}: {error.strerror or error}; {previous}. "
                        "Free disk space or fix permissions and run the same command again.") from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
