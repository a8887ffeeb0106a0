"""Results folders, run folders and what they hold: config.yaml, metrics.jsonl, record.json, checkpoints,
a lock.

Two results folders, each holding ``runs/<dataset>/<split>/<method>[+<tag>]/seed<k>/``:
- yours: ``--out DIR``, else ``BENCHMARK_RESULTS``, else ``results/local/`` of the checkout (ignored by
  git). Every run writes here; ``report`` writes your tables here.
- the reference: ``results/reference/``, the suite's committed records (no checkpoints). ``report``
  reads it; no run writes to it or resumes from it (``promote`` copies a finished run of yours there).
Every file is written atomically, and a run's folder is locked by the process training it so that two
processes never write one run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
import yaml

from benchmark import PROJECT_ROOT, hardware
from benchmark.atomic import write_atomic, write_text
from benchmark.errors import UserError


REFERENCE_ROOT = PROJECT_ROOT / "results" / "reference"
"""The suite's committed records: read by ``report``, never written by a run."""
LOCAL_ROOT = PROJECT_ROOT / "results" / "local"
"""The default folder of a user's own runs (ignored by git)."""
PUBLISHED = PROJECT_ROOT / "results" / "reported.yaml"
"""The papers' published numbers, with their sources."""


def results_root(out: str | Path | None = None) -> Path:
    """Where the user's runs and reports go: ``out`` (``--out``), else ``BENCHMARK_RESULTS``, else
    ``results/local/`` of the checkout."""
    return Path(out or os.environ.get("BENCHMARK_RESULTS") or LOCAL_ROOT).expanduser()


def writable_root(out: str | Path | None = None) -> Path:
    """``results_root(out)``, refused when it is or lies inside the reference folder."""
    root = results_root(out)
    reference = REFERENCE_ROOT.resolve()
    if root.resolve() == reference or reference in root.resolve().parents:
        raise UserError(f"{root} is inside {REFERENCE_ROOT}, the suite's committed reference records, which no "
                        f"run writes; choose another --out (or BENCHMARK_RESULTS), e.g. the default {LOCAL_ROOT}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot use {root} as the results folder ({error.strerror or error}); choose another "
                        "--out (or BENCHMARK_RESULTS)") from None
    return root


def method_label(method: str, tag: str | None) -> str:
    """Folder name of a method variant."""
    return f"{method}+{tag}" if tag else method


def is_main(label: str) -> bool:
    """Whether a method label is a method as published (no tag): headline tables and plots show these."""
    return "+" not in label


@dataclass(frozen=True)
class RunPaths:
    """The files of one run."""

    folder: Path

    @classmethod
    def of(cls, dataset: str, split: str, method: str, seed: int, tag: str | None = None,
           root: Path | None = None) -> RunPaths:
        """The run's folder under ``root`` (default: ``results_root()``)."""
        return cls((root or results_root()) / "runs" / dataset / split / method_label(method, tag) / f"seed{seed}")

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.jsonl"

    @property
    def record(self) -> Path:
        return self.folder / "record.json"

    @property
    def per_image(self) -> Path:
        return self.folder / "per_image.npz"

    @property
    def test_per_image(self) -> Path:
        """Per-image counts of the test evaluations of the last and the best-on-val networks."""
        return self.folder / "test_per_image.npz"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def best(self) -> Path:
        """The networks of the best evaluation."""
        return self.folder / "best.pt"

    @property
    def lock(self) -> Path:
        return self.folder / ".lock"


def write_config(paths: RunPaths, config: dict[str, Any]) -> None:
    write_text(paths.config, yaml.safe_dump(config, sort_keys=False))


def write_metrics(paths: RunPaths, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl from the run's evaluation history (kept in the checkpoint, so that the
    file always matches the checkpoint a resumed run continues from)."""
    write_text(paths.metrics, "".join(json.dumps(line) + "\n" for line in history))


def write_per_image(path: Path, images: list[str], counts: dict[str, dict[str, Any]]) -> None:
    """Write ``path`` (``per_image.npz`` for val, ``test_per_image.npz``; compressed integers): the
    ``images`` in list order and, for the ``last`` and ``best`` network, the iteration it was evaluated
    at and the images x classes intersection and union."""
    arrays: dict[str, np.ndarray] = {"images": np.array(images)}
    for which, entry in counts.items():
        arrays[f"{which}_iteration"] = np.array(entry["iteration"])
        arrays[f"{which}_intersection"] = np.asarray(entry["intersection"], dtype=np.int64)
        arrays[f"{which}_union"] = np.asarray(entry["union"], dtype=np.int64)
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def read_per_image(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a ``per_image.npz``, or None when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def git_commit() -> tuple[str | None, bool | None]:
    """(commit hash, whether the tree has uncommitted changes) of the checkout, or (None, None)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return head, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, machine (the CPU's model, cores, torch's CPU capability and whether bf16 is native, on
    every device: the loaders run there) and commit, for the record."""
    commit, dirty = git_commit()
    cpu = hardware.cpu_info()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu.model
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "host": socket.gethostname(),
            "device": str(device), "device_name": name, "cpu_threads": torch.get_num_threads(), **cpu.as_dict(),
            "git_commit": commit, "git_dirty": dirty}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run folder: a file holding the owner's pid, created with O_EXCL.

    A lock left by a process that no longer exists (killed) is taken over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise UserError(f"run {self.path.parent} is being trained by process {owner}; wait "
                                    "for it to finish, or stop it first") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise UserError(f"cannot lock {self.path}: another process keeps taking it")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or -1)
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc: object) -> None:
        if self.held and self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the run so far: allocated CUDA memory, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10
