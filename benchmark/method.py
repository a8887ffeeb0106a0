"""The method contract: what a semi-supervised method class receives, returns and declares.

A method is an ``nn.Module`` that builds its networks from the context, computes named losses for one
micro-batch (``training_step``), and names the network that is evaluated. The trainer owns everything
else: data, devices, the optimizers, backward, checkpoints and records. The rules:

- **Networks.** ``ctx.build_model()`` returns a new :class:`SegmentationModel` (its calls and members
  are documented there); call it once per network. ``trainable()`` names the networks the optimizers
  train (one optimizer each, by attribute name).
- **DDP.** Under torchrun the trainer replaces each trainable attribute by a DistributedDataParallel
  wrapper, which only forwards calls: call ``self.<name>(...)`` for every forward pass that trains, and
  read anything else (parameters, ``classifier_weight()``, ``backbone``, ``mean``) on
  ``self.network(name)``, the network inside. Networks that are not trainable (teachers) are never
  wrapped.
- **State.** Everything a method holds as modules, parameters or buffers is checkpointed and restored
  on resume (``state_dict``); a plain attribute is not, so state that changes while training (running
  statistics, counters) must live in buffers. ``params`` is rebuilt from the configuration.
- **Hooks.** Teachers move in one of two hooks that the trainer calls exactly once per optimizer step:
  ``before_step`` (before its first micro-batch) or ``after_step`` (after the optimizer step). A step
  whose loss is not finite changes no weights and calls no ``after_step``.
- **A step returns** a dict of named values (:func:`check_step`): ``"loss"``, a scalar tensor with
  gradient, which the trainer back-propagates; every other value a scalar (0-d tensor or number),
  logged and averaged.
- **Flags.** ``uses_unlabeled`` (default true): ``batch.unlabeled`` is None when false.
  ``uses_mix`` (default false): ``batch.mix``, a second unlabeled batch (the mixing source), is None
  unless true.
- **Parameters.** ``Params`` is a dataclass whose fields are documented with
  ``benchmark.settings.setting``; a field's type is one of bool, int, float, str, a ``Literal`` of
  strings, ``X | None``, a ``tuple`` or ``list`` of these, or ``dict``: what ``--set method.KEY=VALUE``
  and YAML can set (``benchmark.settings.coerce``).

The batch types (``Batch``, ``Labeled``, ``Unlabeled``) and the network interface are importable from
here so that a method file needs one import for the contract.

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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from benchmark.config import AugmentConfig
from benchmark.data.batch import Batch, Labeled, Unlabeled
from benchmark.errors import UserError
from benchmark.models.interface import SegmentationModel, SegOutput

ENTRY_POINT_GROUP = "benchmark.methods"

__all__ = ["Batch", "Context", "Labeled", "Method", "SegOutput", "SegmentationModel", "Step", "Unlabeled",
           "available", "check_step", "get", "register", "unwrap"]


@dataclass
class Step:
    """Where training is, and the micro-batch's random generator."""

    iteration: int
    """Index of the optimizer step being computed, from 0 (the same for all its micro-batches)."""
    total: int
    """Number of optimizer steps of the run."""
    generator: torch.Generator
    """Seeded for this micro-batch alone, on the training device: use it for every random draw."""


@dataclass
class Context:
    """What the harness gives a method to build itself and compute its losses."""

    num_classes: int
    ignore_index: int
    build_model: Callable[[], SegmentationModel]
    """A new segmentation network with the configured (pretrained) encoder; call once per network."""
    supervised_loss: Callable[[Tensor, Tensor], Tensor]
    """The data set's labeled loss (CE, or OHEM CE on Cityscapes) on logits and masks."""
    strong: Callable[[Tensor, torch.Generator], Tensor]
    """The strong photometric view of an image batch: ``strong(images, generator)``."""
    cutmix_boxes: Callable[[int, torch.Generator], Tensor]
    """``cutmix_boxes(n, generator)``: N x H x W bool CutMix boxes of the crop size."""
    inference: Callable[[], AbstractContextManager] = nullcontext
    """The numerics of no-grad passes (``trainer.teacher_amp``)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """The data set's augmentation settings behind ``strong`` and ``cutmix_boxes`` (for a method that
    composes its own views from the same strengths)."""

    def no_grad_forward(self, model: nn.Module, *args: Any, eval_mode: bool = True, **kwargs: Any) -> Any:
        """``model(*args, **kwargs)`` without gradient, in the numerics of no-grad passes and, unless
        ``eval_mode`` is false, in eval mode (BatchNorm statistics left alone; the mode is restored
        after). Every floating tensor of the output comes back in float32, so that thresholds and losses
        downstream see the same dtype in every numerics. For teachers and pseudo labels."""
        was_training = model.training
        if eval_mode:
            model.eval()
        try:
            with torch.no_grad(), self.inference():
                return _float32(model(*args, **kwargs))
        finally:
            model.train(was_training)


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

    def network(self, name: str) -> nn.Module:
        """The network held as attribute ``name``, unwrapped: under torchrun a trainable attribute is a DDP
        wrapper that only forwards calls, so read everything but a forward pass here."""
        return unwrap(getattr(self, name))

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        """Losses of one step: ``"loss"`` is back-propagated by the trainer, the rest are logged."""
        raise NotImplementedError

    def before_step(self, step: Step) -> None:
        """Called once per optimizer step, before its first micro-batch (teachers that the spec updates
        before the forward passes); by default nothing. ``step`` is the first micro-batch's."""

    def after_step(self, step: Step) -> None:
        """Called once after each optimizer step that was taken (EMA teachers); by default nothing.
        ``step`` is the last micro-batch's."""

    def eval_model(self) -> nn.Module:
        """The network that is evaluated."""
        return self.model


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside torch's wrappers (DistributedDataParallel, DataParallel), or the module itself."""
    return module.module if isinstance(module, (DistributedDataParallel, nn.DataParallel)) else module


def check_step(method: str, out: Any) -> None:
    """Refuse what ``training_step`` must not return (a method author's mistake, named with the fix):
    anything but a dict of scalars whose ``"loss"`` is a tensor with gradient."""
    if not isinstance(out, dict) or "loss" not in out:
        raise TypeError(f"{method}.training_step must return a dict with a 'loss' entry, got "
                        f"{type(out).__name__}{'' if not isinstance(out, dict) else ' with keys ' + ', '.join(out)}")
    loss = out["loss"]
    if not (isinstance(loss, Tensor) and loss.requires_grad and loss.numel() == 1):
        raise TypeError(f"{method}.training_step: 'loss' must be a scalar tensor with gradient (the trainer "
                        "calls backward on it)")
    for key, value in out.items():
        scalar = value.numel() == 1 if isinstance(value, Tensor) else isinstance(value, (int, float))
        if not scalar:
            raise TypeError(f"{method}.training_step: logged value {key!r} must be a scalar (a 0-d tensor or a "
                            f"number), got {type(value).__name__}"
                            + (f" of shape {tuple(value.shape)}" if isinstance(value, Tensor) else ""))


def _float32(value: Any) -> Any:
    """``value`` with every floating tensor in it (also inside tuples, NamedTuples and lists) as float32."""
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_float32(item) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_float32(item) for item in value)
    return value


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
