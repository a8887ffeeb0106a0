"""No-grad, eval-mode forward passes (teacher predictions that leave BatchNorm statistics alone)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


@torch.no_grad()
def eval_forward(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """``model(*args, **kwargs)`` in eval mode without gradient; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        return model(*args, **kwargs)
    finally:
        model.train(was_training)
