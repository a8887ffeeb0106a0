"""The run configuration and how it is resolved.

Order of precedence, lowest first: the dataclass defaults below, the dataset preset
(``benchmark/presets/<name>.yaml``), the method's own parameter defaults (then the preset's
``method_params`` for keys the method has), user YAML files (``--config``), and ``--set key=value``.
The resolved configuration is saved with every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from benchmark.data import custom
from benchmark.errors import UserError
from benchmark.settings import build, merge, setting, to_dict
from benchmark.yaml_files import presets, read_yaml, shipped_preset



@dataclass
class DataConfig:
    """Which data, and the train-time geometry."""

    dataset: str = setting("demo", "dataset name: selects the reader and splits/<dataset>/")
    root: str | None = setting(None, "dataset root; --data-root and BENCHMARK_<DATASET>_ROOT take precedence")
    num_classes: int = setting(7, "number of classes, background included")
    class_names: list[str] = setting([], "class names in label order (for reports)")
    ignore_index: int = setting(255, "mask value that is never supervised nor evaluated")
    label_map: dict = setting({}, "raw mask value -> label (e.g. CamVid void 11 -> 255); unlisted values kept")
    reduce_zero_label: bool = setting(False, "ADE20K: raw 0 ('other') is ignored and every other id moves down by 1")
    mask_colors: list[tuple[int, int, int]] = setting(
        [], "RGB masks: the colour of each class in label order (empty: masks hold class ids)")
    ignore_colors: list[tuple[int, int, int]] = setting([], "RGB masks: colours of ignored pixels")
    crop_size: int | tuple[int, int] = setting(321, "training crop: a side in pixels, or [height, width]")
    scale_range: tuple[float, float] = setting((0.5, 2.0), "random rescale factor range of the image size")
    batch_size: int = setting(8, "labeled images per step, all processes together")
    unlabeled_batch_size: int = setting(8, "unlabeled images per step (and mix sources), all processes together")
    workers: int = setting(2, "data loader worker processes per training process")


@dataclass
class ModelConfig:
    """DeepLabV3+ and its backbone."""

    backbone: Literal["resnet18", "resnet50", "resnet101", "efficientnet_lite0"] = setting(
        "resnet101", "encoder network")
    output_stride: Literal[8, 16] = setting(16, "encoder output stride (dilation replaces the last strides)")
    head_channels: int = setting(256, "ASPP and decoder width (256 in DeepLabV3+; smaller for CPU runs)")
    low_level_channels: int = setting(48, "channels of the low-level projection in the decoder")
    aspp_dilations: tuple[int, int, int] = setting((6, 12, 18), "ASPP atrous rates at output stride 16")
    pretrained: str = setting("auto", "ImageNet weights: 'auto' (local files only), 'none', or a path")
    deep_stem: bool = setting(False, "ResNet with a 3-conv deep stem (bring matching weights)")


@dataclass
class OptimConfig:
    """SGD with a poly schedule; the head learns faster than the pretrained backbone."""

    lr: float = setting(0.001, "backbone learning rate at reference_batch")
    head_lr_mult: float = setting(10.0, "learning-rate multiplier of the decoder/head")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(1e-4, "SGD weight decay")
    poly_power: float = setting(0.9, "lr = base * (1 - it / iters) ** power, per iteration")
    lr_batch_rule: Literal["none", "linear"] = setting(
        "none", "'linear' scales lr by global batch / reference_batch when they differ")
    reference_batch: int = setting(8, "labeled global batch the lr was tuned for")


@dataclass
class ScheduleConfig:
    """How long to train and how often to evaluate and checkpoint."""

    iters: int = setting(1000, "optimizer steps")
    eval_every: int = setting(200, "evaluate every this many steps (and at the end)")
    checkpoint_every: int = setting(0, "checkpoint every this many steps; 0 = at every evaluation")
    accumulate: int = setting(1, "micro-batches per optimizer step (gradient accumulation)")


@dataclass
class LossConfig:
    """The supervised loss."""

    name: Literal["ce", "ohem"] = setting("ce", "cross-entropy, or online hard example mining CE")
    ohem_threshold: float = setting(0.7, "OHEM: keep pixels whose true-class probability is below this")
    ohem_min_kept: int = setting(200000, "OHEM: keep at least this many pixels per batch")


@dataclass
class AugmentConfig:
    """Strong photometric view and CutMix, applied batched on the training device."""

    jitter: tuple[float, float, float, float] = setting(
        (0.5, 0.5, 0.5, 0.25), "colour jitter strength: brightness, contrast, saturation, hue")
    jitter_p: float = setting(0.8, "probability of colour jitter")
    grayscale_p: float = setting(0.2, "probability of grayscale")
    blur_p: float = setting(0.5, "probability of Gaussian blur")
    blur_sigma: tuple[float, float] = setting((0.1, 2.0), "blur sigma range in pixels")
    cutmix_p: float = setting(0.5, "probability that a CutMix box is pasted")
    cutmix_area: tuple[float, float] = setting((0.02, 0.4), "CutMix box area as a fraction of the crop")
    cutmix_aspect: tuple[float, float] = setting((0.3, 1 / 0.3), "CutMix box aspect ratio range")


@dataclass
class EvalConfig:
    """The evaluation protocol, recorded with every result."""

    mode: Literal["original", "center_crop", "sliding_window"] = setting(
        "original", "full image, a centre crop, or sliding-window inference")
    crop_size: int = setting(0, "centre crop size or sliding window size (0 = data.crop_size)")
    stride: int = setting(0, "sliding window stride (0 = two thirds of the window)")
    batch_size: int = setting(1, "val images per forward pass (images of one size are stacked)")


@dataclass
class TrainerConfig:
    """Device and numerics."""

    device: str = setting("auto", "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'")
    amp: Literal["auto", "bf16", "fp16", "off"] = setting(
        "auto", "autocast dtype of the training step; 'auto' = bf16 on CUDA, off on CPU")
    teacher_amp: Literal["auto", "bf16", "fp16", "off"] = setting(
        "auto", "autocast dtype of the no-grad passes of training (teachers, pseudo labels); 'auto' = trainer.amp "
                "(bf16 moves pseudo labels near the threshold: see docs/usage.md, Numerics)")
    eval_amp: Literal["auto", "bf16", "fp16", "off"] = setting(
        "auto", "autocast dtype of evaluation; 'auto' = trainer.amp on CUDA; on CPU bf16 where the CPU computes "
                "bf16 natively, else off (the record says which)")
    channels_last: Literal["auto", "on", "off"] = setting(
        "auto", "NHWC memory format; 'auto' = on (see bench --vary trainer.channels_last=on,off)")
    sync_bn: bool = setting(True, "BatchNorm statistics over all processes (SyncBatchNorm on CUDA, a gloo "
                                  "all-reduce BatchNorm on CPU)")
    find_unused_parameters: bool = setting(False, "DDP flag for methods that leave parameters unused")
    deterministic: bool = setting(False, "ask for deterministic CUDA kernels (slower); CPU runs always are")
    on_nonfinite: Literal["stop", "skip"] = setting(
        "stop", "a NaN/inf loss stops the run (last good checkpoint kept), or skips that step; skip stops the run "
                "too after 3 skipped steps in a row or 5% of the schedule in all")
    threads: int = setting(0, "torch CPU threads (0 = torch's default)")


def dtype_name(amp: str) -> str:
    """What an autocast setting computes in, in words: 'float32' for 'off', else its dtype."""
    return "float32" if amp == "off" else amp


@dataclass
class RunConfig:
    """Everything that defines a run except the method's own parameters."""

    seed: int = setting(0, "seed of every random draw of the run")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class NoMethod:
    """The parameters of no method: a configuration of the harness alone (data, model, evaluation),
    for commands that train nothing."""


@dataclass
class Resolved:
    """A validated run configuration with the method's parameters and where each came from."""

    run: RunConfig
    method_params: Any
    preset: str
    sources: list[str]

    def as_dict(self) -> dict[str, Any]:
        """The full configuration as plain data (what config.yaml holds)."""
        return {**to_dict(self.run), "method": to_dict(self.method_params)}

    def digest(self) -> str:
        """A short hash of the configuration that decides the training (seed included).

        ``trainer.on_nonfinite`` is hashed as its default: it changes nothing a run computes until a
        non-finite step happens, so a stopped run can be resumed with ``skip`` as its message advises."""
        data = self.as_dict()
        data["trainer"] = {**data["trainer"], "on_nonfinite": "stop"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def of_run_folder(folder: Path, preset: str, method_cls: type) -> Resolved:
    """The configuration a run was resolved to when it trained (its config.yaml)."""
    data = read_yaml(Path(folder) / "config.yaml")
    preset, sources = data.pop("preset", preset), data.pop("sources", [])
    method_params = data.pop("method", {}) or {}
    return Resolved(build(RunConfig, data), build(method_cls.Params, method_params, "method."), preset, sources)


def load_preset(name: str) -> dict[str, Any]:
    """The preset ``name`` as a mapping: a shipped one, or the one derived from your data set ``name``
    (registered with ``datasets add`` or read with ``--dataset-file``)."""
    shipped = shipped_preset(name)
    if shipped is not None:
        return shipped
    dataset = custom.find(name)
    if dataset is None:
        yours = custom.registered()
        raise UserError(f"unknown preset {name!r}; available presets: {', '.join(presets())}"
                        + (f"; your data sets: {', '.join(yours)}" if yours else "")
                        + " (your own data set: python -m benchmark datasets add FILE)")
    return dataset.preset()


def parse_override(text: str) -> dict[str, Any]:
    """``a.b=value`` as ``{"a": {"b": value}}``; the value is parsed as YAML (``0.5``, ``[1, 2]``, ``off``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects key=value, got {text!r} (e.g. --set optim.lr=0.01)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise UserError(f"cannot parse the value of --set {text!r}: {error}") from None
    if raw.strip().lower() in ("off", "on", "yes", "no"):
        value = raw.strip().lower()
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def resolve(preset: str, params_cls: type = NoMethod, config_files: list[Path] | None = None,
            overrides: list[str] | None = None, extra: dict[str, Any] | None = None) -> Resolved:
    """Resolve preset <- method defaults <- config files <- ``extra`` <- ``--set`` overrides."""
    preset_data = load_preset(preset)
    common_method = preset_data.pop("method_params", {}) or {}
    params_fields = {f.name for f in dataclasses.fields(params_cls)}
    data: dict[str, Any] = merge(preset_data, {"method": {k: v for k, v in common_method.items()
                                                          if k in params_fields}})
    sources = [f"preset:{preset}"]
    for path in config_files or []:
        data = merge(data, read_yaml(path))
        sources.append(f"file:{path}")
    if extra:
        data = merge(data, extra)
    for text in overrides or []:
        data = merge(data, parse_override(text))
        sources.append(f"set:{text}")
    method_data = data.pop("method", {}) or {}
    run = build(RunConfig, data)
    params = build(params_cls, method_data, "method.")
    check(run)
    return Resolved(run, params, preset, sources)


def crop_hw(data: DataConfig) -> tuple[int, int]:
    """The training crop as (height, width)."""
    crop = data.crop_size
    return (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))


def check(run: RunConfig) -> None:
    """Cross-field checks that a type alone cannot express."""
    problems = []
    if run.schedule.iters < 1:
        problems.append("schedule.iters must be at least 1")
    if run.schedule.eval_every < 1:
        problems.append("schedule.eval_every must be at least 1")
    if run.schedule.accumulate < 1:
        problems.append("schedule.accumulate must be at least 1")
    if run.data.batch_size < 1 or run.data.unlabeled_batch_size < 1:
        problems.append("data.batch_size and data.unlabeled_batch_size must be at least 1")
    if run.eval.batch_size < 1:
        problems.append("eval.batch_size must be at least 1")
    for key, value in (("data.workers", run.data.workers), ("schedule.checkpoint_every", run.schedule.checkpoint_every),
                       ("trainer.threads", run.trainer.threads), ("eval.crop_size", run.eval.crop_size),
                       ("eval.stride", run.eval.stride)):
        if value < 0:
            problems.append(f"{key} must not be negative")
    if min(crop_hw(run.data)) < 8:
        problems.append("data.crop_size must be at least 8 pixels")
    if run.data.class_names and len(run.data.class_names) != run.data.num_classes:
        problems.append(f"data.class_names has {len(run.data.class_names)} names for "
                        f"data.num_classes = {run.data.num_classes}")
    if not 0 < run.data.scale_range[0] <= run.data.scale_range[1]:
        problems.append("data.scale_range must be (low, high) with 0 < low <= high")
    if problems:
        raise UserError("invalid configuration: " + "; ".join(problems))
