"""``python -m benchmark eval RUN_DIR``: evaluate a finished run's network again, on its val list or another.

The run's own configuration (config.yaml) decides the network, the data set's label handling, the
evaluation protocol and the numerics unless told otherwise (``--mode``; ``--set trainer.KEY=VALUE`` for
the device and numerics, e.g. ``trainer.eval_amp=off`` against ``bf16`` to check that both agree); the
checkpoint is the last (``checkpoint.pt``) or the best evaluation's (``best.pt``). The result is written
beside the run's record as ``evals/<list sha256[:12]>-<checkpoint>-<mode>-<dtype>.json`` with its per-image
counts (``.npz``, as the record's ``per_image.npz``), so that evaluations on other lists (a held-out test
set, another data root) or in other numerics never overwrite each other or the record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from benchmark import config as config_module
from benchmark import settings
from benchmark import method as registry
from benchmark.atomic import write_text
from benchmark.checkpoint import read_networks
from benchmark.data import roots, splits
from benchmark.data.pipeline import eval_dataset
from benchmark.errors import UserError
from benchmark.method import unwrap
from benchmark.records import environment, write_per_image
from benchmark.run_record import read_run_record
from benchmark.runtime import Runtime

CHECKPOINTS = {"last": "checkpoint.pt", "best": "best.pt"}


def _trainer_overrides(trainer: config_module.TrainerConfig, overrides: list[str]) -> config_module.TrainerConfig:
    """The run's trainer settings with ``--set trainer.KEY=VALUE`` overrides; other sections are the run's."""
    data = settings.to_dict(trainer)
    for text in overrides:
        override = config_module.parse_override(text)
        if set(override) != {"trainer"} or not isinstance(override["trainer"], dict):
            raise UserError(f"eval --set {text!r}: only trainer settings (device and numerics, e.g. "
                            "trainer.eval_amp=off) can change; the network, data and protocol are the run's "
                            "(--mode, --list and --data-root choose the evaluation)")
        data = settings.merge(data, override["trainer"])
    return settings.build(config_module.TrainerConfig, data, "trainer.")


def evaluate_run(folder: Path, which: str = "last", list_file: Path | None = None, data_root: str | None = None,
                 mode: str | None = None, overrides: list[str] | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate the run in ``folder``; returns the result and the path it was written to."""
    folder = Path(folder)
    record = read_run_record(folder / "record.json")
    if record is None:
        raise UserError(f"{folder} holds no readable record.json; name a run folder (…/<method>/seed<k>)")
    if which not in CHECKPOINTS:
        raise UserError(f"--checkpoint must be one of {', '.join(CHECKPOINTS)}, not {which!r}")
    method_cls = registry.get(record.method)
    resolved = config_module.of_run_folder(folder, record.preset, method_cls)
    cfg = resolved.run
    if mode:
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, mode=mode))
    if overrides:
        cfg = dataclasses.replace(cfg, trainer=_trainer_overrides(cfg.trainer, overrides))
    resolved = dataclasses.replace(resolved, run=cfg)
    root = roots.resolve(cfg.data.dataset, data_root, cfg.data.root, complete=list_file is None)
    samples = (splits.read_list(list_file, need_mask=True) if list_file
               else splits.load(record.split).val)
    if not samples:
        raise UserError(f"{list_file} lists no images")
    runtime = Runtime.of(resolved)
    device, numerics = runtime.device, runtime.numerics
    method, _, _ = runtime.method(method_cls)
    payload = read_networks(folder / CHECKPOINTS[which], device)
    if payload.get("method") != method_cls.name:
        raise UserError(f"{folder / CHECKPOINTS[which]} belongs to method {payload.get('method')!r}, not "
                        f"{method_cls.name!r} of {folder / 'record.json'}")
    try:
        method.load_state_dict(payload["networks"])
    except (KeyError, RuntimeError) as error:
        raise UserError(f"{folder / CHECKPOINTS[which]} does not fit the run's networks ({str(error)[:200]})") from None
    protocol = runtime.protocol()
    result = runtime.evaluator(eval_dataset(samples, root, cfg.data), protocol).run(unwrap(method.eval_model()))
    listing = splits.format_lines(samples)
    sha = hashlib.sha256(listing.encode()).hexdigest()
    out = {"run": str(folder), "method": record.method, "split": record.split, "seed": record.seed,
           "checkpoint": which, "iteration": payload.get("iteration"), "list": str(list_file) if list_file else "val",
           "list_sha256": sha, "images": len(samples), "data_root": str(root), "eval": protocol.as_dict(),
           "eval_amp": numerics.eval, "channels_last": numerics.channels_last, **environment(device),
           "miou": result.miou, "iou": result.iou,
           "class_names": cfg.data.class_names}
    base = folder / "evals" / f"{sha[:12]}-{which}-{protocol.mode}-{config_module.dtype_name(numerics.eval)}"
    write_per_image(base.with_suffix(".npz"), [image for image, _ in samples],
                    {"last": {"iteration": payload.get("iteration", -1), "intersection": result.intersection,
                              "union": result.union}})
    write_text(base.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    return out, base.with_suffix(".json")

