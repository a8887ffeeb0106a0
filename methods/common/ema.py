"""Exponential moving averages of networks (mean teachers)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that receives no gradient (a teacher's starting point)."""
    teacher = copy.deepcopy(model)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float, buffers: bool = False) -> None:
    """theta_T <- m theta_T + (1 - m) theta_S for every parameter (and float buffer when ``buffers``;
    integer buffers such as BatchNorm's batch counter are copied)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s.detach(), 1.0 - momentum)
    if buffers:
        for t, s in zip(teacher.buffers(), student.buffers()):
            if t.is_floating_point():
                t.lerp_(s, 1.0 - momentum)
            else:
                t.copy_(s)
