"""Where and in which numerics one configuration runs: the set-up chain (device -> numerics -> method ->
optimizers -> evaluator) written once, for the trainer, ``eval`` and ``bench``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from benchmark.config import Resolved, RunConfig, crop_hw
from benchmark.evaluate import Evaluator, Protocol
from benchmark.method import Method
from benchmark.models.pretrained import WeightsInfo
from benchmark.step import Numerics, build_method, build_optimizers, pick_device


@dataclass(frozen=True)
class Runtime:
    """A resolved configuration with its device and numerics."""

    resolved: Resolved
    device: torch.device
    numerics: Numerics

    @classmethod
    def of(cls, resolved: Resolved, local_rank: int = 0) -> Runtime:
        """The configuration's device (this process's GPU under torchrun) and resolved numerics; applies
        ``trainer.threads``."""
        trainer = resolved.run.trainer
        if trainer.threads:
            torch.set_num_threads(trainer.threads)
        device = pick_device(trainer.device, local_rank)
        return cls(resolved, device, Numerics.resolve(trainer, device))

    @property
    def cfg(self) -> RunConfig:
        return self.resolved.run

    def method(self, method_cls: type[Method], sync_bn: bool = False) -> tuple[Method, WeightsInfo | None, str]:
        """The method on the device (networks from the run seed), its encoder weights, the BatchNorm mode."""
        return build_method(self.resolved, method_cls, self.device, self.numerics, sync_bn)

    def optimizers(self, method: Method) -> dict[str, torch.optim.Optimizer]:
        return build_optimizers(method, self.cfg)

    def protocol(self, mode: str | None = None) -> Protocol:
        """The evaluation protocol of the configuration, or of another mode."""
        config = self.cfg.eval if mode is None else dataclasses.replace(self.cfg.eval, mode=mode)
        return Protocol.from_config(config, crop_hw(self.cfg.data))

    def evaluator(self, images: Dataset, protocol: Protocol | None = None, eval_amp: str | None = None) -> Evaluator:
        """An evaluator of ``images`` under the configuration's protocol and numerics (or the ones given)."""
        cfg, numerics = self.cfg, self.numerics
        if eval_amp is not None:
            numerics = dataclasses.replace(numerics, eval=eval_amp)
        return Evaluator(images, protocol or self.protocol(), cfg.data.num_classes, cfg.data.ignore_index,
                         self.device, cfg.eval.batch_size, min(cfg.data.workers, 2),
                         numerics.autocast(self.device, "eval"), numerics.channels_last)
