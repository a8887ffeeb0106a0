"""YAML files the suite reads: any mapping (``read_yaml``, with ``safe_load``) and the shipped presets.

Kept apart from ``config`` so that the data-set modules can read the shipped presets without importing
the configuration, which itself looks up users' data sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import UserError

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; any failure names the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"cannot read config file {path}: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return data


def presets() -> list[str]:
    """Names of the dataset presets shipped with the suite."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def shipped_preset(name: str) -> dict[str, Any] | None:
    """The shipped preset ``name`` as a mapping, or None when the suite ships none of that name."""
    path = PRESET_DIR / f"{name}.yaml"
    return read_yaml(path) if path.exists() else None


def default_preset(split_name: str, dataset: str) -> str:
    """The shipped preset whose name is the longest prefix of the split's name (``voc_u2pl`` for
    ``voc_u2pl_1_16``), else the data set's name."""
    names = [p for p in presets() if split_name.startswith(p + "_")]
    return max(names, key=len) if names else dataset
