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


def ema_momentum(iteration: int, cap: float) -> float:
    """The warm-up momentum min(1 - 1/(t + 1), cap) of the update at optimizer step t (from 0): 0 at the
    first step (the teacher takes the student's weights), then rising to ``cap``."""
    return min(1 - 1 / (iteration + 1), cap)


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
