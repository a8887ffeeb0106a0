"""Supervised-only baseline: the labeled images alone, same model, schedule and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from benchmark.method import Batch, Context, Method, Step, register


@register("supervised")
class Supervised(Method):
    """Labeled loss only (CE, or OHEM on Cityscapes). On a ``*_full`` split it is the ceiling row."""

    summary = "labeled images only: the floor (and, on a full split, the ceiling) of every table"
    paper = "-"
    fidelity = "standard"
    uses_unlabeled = False

    @dataclass
    class Params:
        """No parameters of its own."""

    def __init__(self, ctx: Context, params: Params) -> None:
        super().__init__(ctx, params)
        self.model = ctx.build_model()

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor]:
        loss = self.ctx.supervised_loss(self.model(batch.labeled.image), batch.labeled.mask)
        return {"loss": loss, "loss_x": loss}
