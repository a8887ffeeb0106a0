"""Several training processes under ``torchrun``: process group, rank, and the few collectives used.

A single process needs no launcher and no process group; every helper here is then a no-op.
Backend: NCCL with CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0


def info() -> DistInfo:
    """Rank and world size of the running process group (or of a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def setup() -> DistInfo:
    """Join the process group when started by torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return info()


def teardown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> None:
    """Sum ``tensor`` over all processes, in place (nothing to do for one process)."""
    if info().world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def barrier() -> None:
    """Wait for every process."""
    if info().world > 1:
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class CrossProcessBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the batch of all processes together.

    torch's SyncBatchNorm runs on CUDA only; this is its CPU (gloo) equivalent, used when several CPU
    processes train: per-channel sums, squared sums and counts are all-reduced with a differentiable
    all_reduce, so outputs, gradients and running statistics equal those of one process holding the
    whole batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or info().world == 1:
            return super().forward(x)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count])
        stats = _AllReduceSum.apply(stats)
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = stats[channels:2 * channels] / total - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                unbiased = var * total / (total - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        scale = torch.rsqrt(var + self.eps)
        y = (x - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1) if self.affine else y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> tuple[nn.Module, str]:
    """BatchNorm layers synchronised across processes: torch's SyncBatchNorm on CUDA, the cross-process
    BatchNorm above on CPU. Returns the module and a description for the record."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module), "torch SyncBatchNorm"
    return _swap_batchnorm(module), "cross-process BatchNorm (gloo all_reduce)"


def _swap_batchnorm(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CrossProcessBatchNorm):
        swapped = CrossProcessBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                        module.track_running_stats)
        swapped.load_state_dict(module.state_dict())
        swapped.train(module.training)
        if module.affine:
            swapped.weight.requires_grad_(module.weight.requires_grad)
            swapped.bias.requires_grad_(module.bias.requires_grad)
        return swapped
    for name, child in module.named_children():
        setattr(module, name, _swap_batchnorm(child))
    return module
