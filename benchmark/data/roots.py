"""Where a data set lives: ``--data-root``, then ``BENCHMARK_<DATASET>_ROOT``, then
``BENCHMARK_DATA/<dataset>``, then ``data.root`` of the config. Never a path written in the code; the
demo data set alone has a default (the user's cache folder), where it is generated on first use."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.data import custom, demo
from benchmark.data.layouts import LAYOUTS, missing_folders
from benchmark.errors import UserError

def env_name(dataset: str) -> str:
    """The environment variable naming ``dataset``'s root."""
    return f"BENCHMARK_{dataset.upper()}_ROOT"


def resolve(dataset: str, cli_root: str | None, config_root: str | None, complete: bool = True) -> Path:
    """The data root of ``dataset``; for the demo data set, generated if needed. For a data set of your
    own, the root its file names comes last. ``complete``: the root must hold the data set's standard
    folders (training and val); without it (evaluating a list of files) any folder will do, and the
    list's own files are checked when read."""
    yours = custom.find(dataset) if dataset not in LAYOUTS else None
    if dataset not in LAYOUTS and yours is None:
        registered = custom.registered()
        raise UserError(f"unknown data set {dataset!r}; known: {', '.join(sorted(LAYOUTS))}"
                        + (f"; yours: {', '.join(registered)}" if registered else "")
                        + " (your own data set: python -m benchmark datasets add FILE, or --dataset-file FILE)")
    candidates = [(cli_root, "--data-root"), (os.environ.get(env_name(dataset)), env_name(dataset))]
    shared = os.environ.get("BENCHMARK_DATA")
    if shared:
        candidates.append((str(Path(shared) / dataset), "BENCHMARK_DATA"))
    candidates.append((config_root, "data.root"))
    if yours is not None and yours.root is not None:
        candidates.append((str(yours.root), str(yours.path)))
    chosen = next(((Path(p).expanduser(), source) for p, source in candidates if p), None)
    if dataset == "demo" and (complete or chosen is None):
        return demo.ensure(chosen[0] if chosen else demo.default_root())
    layout = yours.layout() if yours else LAYOUTS[dataset]
    if chosen is None:
        raise UserError(f"no data root for {dataset}: pass --data-root DIR, or set {env_name(dataset)}"
                        f"=DIR. Expected under DIR: {layout}")
    root, source = chosen
    if not root.is_dir():
        raise UserError(f"data root {root} (from {source}) does not exist or is not a folder. "
                        f"Expected there: {layout}")
    lacking = ([name for name in yours.required() if not (root / name).exists()] if yours
               else missing_folders(dataset, root))
    if lacking and complete:
        raise UserError(f"data root {root} (from {source}) lacks {', '.join(lacking)}: it is not a complete "
                        f"{dataset} root. Expected there: {layout}")
    return root
