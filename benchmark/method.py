"""The method contract: what a semi-supervised method class receives, returns and declares.

A method is an ``nn.Module`` that builds its networks from the context, computes named losses for one
step (``training_step``), may update teachers after the optimizer step (``after_step``), and names the
network that is evaluated. The trainer owns everything else: data, devices, the optimizers, backward,
checkpoints and records. Everything a method holds as modules or buffers is checkpointed.

Methods are found by name: built-ins in the ``methods`` package register themselves with
``@register("name")``; third-party classes through the ``benchmark.methods`` entry-point group or as
``--method package.module:Class``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from benchmark.data.augment import StrongAugment
from benchmark.errors import UserError

ENTRY_POINT_GROUP = "benchmark.methods"


@dataclass
class Labeled:
    """Labeled images after the random geometry."""

    image: Tensor
    """N x 3 x H x W float in [0, 1]."""
    mask: Tensor
    """N x H x W int64 class ids; the ignore index where unsupervised (padding, void)."""


@dataclass
class Unlabeled:
    """Unlabeled images after the random geometry (the weak view)."""

    image: Tensor
    """N x 3 x H x W float in [0, 1]."""
    ignore: Tensor
    """N x H x W bool, True on padding: never supervised."""


@dataclass
class Batch:
    """One step's data: labeled images, unlabeled images, and a second unlabeled batch (mix sources)."""

    labeled: Labeled
    unlabeled: Unlabeled | None = None
    mix: Unlabeled | None = None


@dataclass
class Step:
    """Where training is, and the step's random generator."""

    iteration: int
    """Index of the optimizer step being computed, from 0."""
    total: int
    """Number of optimizer steps of the run."""
    generator: torch.Generator
    """Seeded for this step alone, on the training device: use it for every random draw of the step."""

    @property
    def progress(self) -> float:
        """Fraction of training done before this step."""
        return self.iteration / self.total


@dataclass
class Context:
    """What the harness gives a method to build itself and compute its losses."""

    num_classes: int
    ignore_index: int
    crop_size: tuple[int, int]
    """Training crop (height, width)."""
    total_iters: int
    device: torch.device
    build_model: Callable[[], nn.Module]
    """A new segmentation network with the configured (pretrained) encoder; call once per network."""
    supervised_loss: Callable[[Tensor, Tensor], Tensor]
    """The data set's labeled loss (CE, or OHEM CE on Cityscapes) on logits and masks."""
    strong: StrongAugment
    """The strong photometric view of an image batch: ``strong(images, generator)``."""
    cutmix_boxes: Callable[[int, torch.Generator], Tensor]
    """``cutmix_boxes(n, generator)``: N x H x W bool CutMix boxes of the crop size."""


class Method(nn.Module):
    """Base class of every method. Subclasses set the class attributes and implement ``training_step``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for ``python -m benchmark methods``."""
    paper: ClassVar[str] = ""
    fidelity: ClassVar[str] = ""
    """Where the implementation comes from: the authors' code, or the paper's description."""
    uses_unlabeled: ClassVar[bool] = True
    uses_mix: ClassVar[bool] = False
    """Whether the step needs the second unlabeled batch (``batch.mix``)."""

    @dataclass
    class Params:
        """The method's hyper-parameters; every field documented with ``benchmark.settings.setting``."""

    def __init__(self, ctx: Context, params: Any) -> None:
        super().__init__()
        self.ctx = ctx
        self.params = params

    def trainable(self) -> dict[str, nn.Module]:
        """Networks the optimizer trains, by attribute name (one optimizer each)."""
        return {"model": self.model}

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        """Losses of one step: ``"loss"`` is back-propagated by the trainer, the rest are logged."""
        raise NotImplementedError

    def after_step(self, step: Step) -> None:
        """Called after the optimizer step (EMA teachers); by default nothing."""

    def eval_model(self) -> nn.Module:
        """The network that is evaluated."""
        return self.model

    def forward(self, x: Tensor) -> Tensor:
        """Inference with the evaluated network."""
        return self.eval_model()(x)


_REGISTRY: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a method available as ``--method name``."""

    def add(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is taken by {_REGISTRY[name].__module__}")
        if not dataclasses.is_dataclass(cls.Params):
            raise TypeError(f"{cls.__name__}.Params must be a dataclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def _discover_builtins() -> None:
    """Import every module of the ``methods`` package (adding a file is enough to add a method)."""
    package = importlib.import_module("methods")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and not info.ispkg:
            importlib.import_module(f"methods.{info.name}")


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, type[Method]]:
    """Every registered method: built-ins and entry points, by name."""
    _discover_builtins()
    for name, ep in _entry_points().items():
        if name not in _REGISTRY:
            _load_entry_point(name, ep)
    return dict(sorted(_REGISTRY.items()))


def _load_entry_point(name: str, ep: importlib.metadata.EntryPoint) -> type[Method]:
    try:
        cls = ep.load()
    except Exception as error:  # noqa: BLE001 - a broken plugin must not hide the others' names
        raise UserError(f"the method entry point {name} = {ep.value} cannot be loaded: {error}") from None
    return _checked(cls, ep.value, name)


def _checked(cls: Any, where: str, name: str) -> type[Method]:
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UserError(f"{where} is not a subclass of benchmark.method.Method")
    if _REGISTRY.get(cls.name) is not cls:
        register(name)(cls)
    return cls


def get(spec: str) -> type[Method]:
    """The method class for ``spec``: a registered name, or ``package.module:Class``."""
    if ":" in spec:
        module_name, _, class_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise UserError(f"cannot import {module_name!r} for --method {spec}: {error}. Is the "
                            "package installed or on PYTHONPATH?") from None
        cls = getattr(module, class_name, None)
        if cls is None:
            raise UserError(f"module {module_name} has no class {class_name!r}")
        return _checked(cls, spec, getattr(cls, "name", "") or class_name.lower())
    _discover_builtins()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    entry = _entry_points().get(spec)
    if entry is not None:
        return _load_entry_point(spec, entry)
    names = ", ".join(available())
    raise UserError(f"unknown method {spec!r}; available: {names} (or --method package.module:Class)")
