"""Several training processes under ``torchrun``: process group, rank, and the few collectives used.

A single process needs no launcher and no process group; every helper here is then a no-op.
Backend: NCCL with CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every process."""
    if info().world == 1:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def barrier() -> None:
    """Wait for every process."""
    if info().world > 1:
        dist.barrier()
