"""The checkpoint format: what a run's ``checkpoint.pt`` holds, how it is written, and how it is
verified and loaded on resume.

A checkpoint holds its format version, the identity of the run it belongs to (method, method class,
configuration digest, split sha256), the run state (``RunState`` fields, at the top level), every
network and buffer of the method (DDP wrappers stripped) and every optimizer. It is written atomically
and loaded with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.atomic import write_atomic
from benchmark.errors import UserError
from benchmark.method import Method
from benchmark.step import nonfinite_tensors

FORMAT = 1


@dataclass(frozen=True)
class Identity:
    """What a checkpoint must match to be resumed: the method, its configuration and its split."""

    method: str
    method_class: str
    config_digest: str
    split_sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"method": self.method, "method_class": self.method_class, "config_digest": self.config_digest,
                "split_sha256": self.split_sha256}


def _networks(method: Method, wrapped_names: list[str]) -> dict[str, torch.Tensor]:
    """The method's state dict with networks wrapped in DDP under their plain names."""
    networks = method.state_dict()
    for name in wrapped_names:
        networks = {k.replace(f"{name}.module.", f"{name}.", 1) if k.startswith(f"{name}.module.") else k: v
                    for k, v in networks.items()}
    return networks


def save_networks(path: Path, identity: Identity, iteration: int, method: Method, wrapped_names: list[str]) -> None:
    """Write the networks alone (the best evaluation's ``best.pt``), atomically, with the run's identity."""
    payload = {"format": FORMAT, **identity.as_dict(), "iteration": iteration,
               "networks": _networks(method, wrapped_names)}
    write_atomic(path, lambda handle: torch.save(payload, handle))


def read_networks(path: Path, device: torch.device) -> dict[str, Any]:
    """The payload of a checkpoint (``checkpoint.pt`` or ``best.pt``) for evaluation: networks and identity;
    a missing or damaged file is a UserError."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: the run kept no such checkpoint (runs made before best.pt "
                        "existed keep only checkpoint.pt: use --checkpoint last)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged file is the user's to remove
        raise UserError(f"checkpoint {path} is damaged or truncated ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "networks" not in payload:
        raise UserError(f"{path} is not a checkpoint of this suite")
    return payload


def save(path: Path, identity: Identity, state: dict[str, Any], method: Method,
         optimizers: dict[str, torch.optim.Optimizer], wrapped_names: list[str]) -> None:
    """Write the checkpoint atomically; networks wrapped in DDP are stored under their plain names. A state
    holding a NaN or an infinity is never written: the last checkpoint stays the last good one."""
    networks = _networks(method, wrapped_names)
    payload = {"format": FORMAT, **identity.as_dict(), **state, "networks": networks,
               "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()}}
    bad = nonfinite_tensors({"networks": networks, "optimizers": payload["optimizers"]})
    if bad:
        kept = f"the last good checkpoint ({path}) is kept" if path.exists() else "no checkpoint had been written yet"
        raise UserError(f"after {state['iteration']} steps {len(bad)} tensor(s) of the run are not finite (e.g. "
                        f"{', '.join(bad[:3])}), so no checkpoint was written and the run stopped; {kept}. Lower "
                        "optim.lr, or set trainer.on_nonfinite=skip to skip the steps that make them so")
    write_atomic(path, lambda handle: torch.save(payload, handle))


def load(path: Path, identity: Identity, method: Method, optimizers: dict[str, torch.optim.Optimizer],
         device: torch.device) -> dict[str, Any] | None:
    """Load the networks and optimizers of the checkpoint at ``path`` into ``method`` and ``optimizers``
    and return its payload, or None when there is none. A checkpoint of another method, configuration or
    split, or one that does not load, is a UserError naming the fix."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged file is the user's to remove
        raise UserError(f"checkpoint {path} is damaged or truncated ({type(error).__name__}); delete it "
                        "to restart the run, or pass --fresh") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a checkpoint of this suite; delete it or pass --fresh")
    if payload.get("method") != identity.method:
        raise UserError(f"{path} is a checkpoint of method {payload.get('method')!r}, not "
                        f"{identity.method!r}; use another --tag or pass --fresh")
    for key, what in (("config_digest", "configuration"), ("split_sha256", "split files")):
        if payload.get(key) != getattr(identity, key):
            raise UserError(f"{path} was made with a different {what}; resume with the original "
                            "settings, use --tag NAME for a variant, or pass --fresh to start over")
    try:
        method.load_state_dict(payload["networks"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][name])
    except (KeyError, RuntimeError, ValueError) as error:
        raise UserError(f"{path} does not fit this method's networks ({str(error)[:200]}); pass "
                        "--fresh to start over") from None
    return payload
