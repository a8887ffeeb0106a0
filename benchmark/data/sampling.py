"""Deterministic, resumable sample streams.

A stream is an endless sequence of positions p = 0, 1, 2, ...; position p is sample
``perm_e[p mod n]`` of epoch ``e = p // n`` (a fresh seeded permutation per epoch) together with a
per-sample seed for its random geometry. Everything is a function of (run seed, stream, position), so
the data position after ``k`` steps is simply ``k`` batches into the stream: resuming needs no saved
sampler state, and several processes read disjoint slices of the same global batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class StreamSampler(Sampler):
    """Yields ``(index, sample_seed)`` for the positions of one process.

    Global batch ``b`` holds positions ``[b * global_batch, (b + 1) * global_batch)``; process ``rank``
    of ``world`` takes its contiguous share of each. Iteration starts at global batch ``start_batch``.
    """

    def __init__(self, size: int, seed: int, stream: int, global_batch: int, rank: int = 0,
                 world: int = 1, start_batch: int = 0) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty list")
        if global_batch % world:
            raise ValueError(f"global batch {global_batch} is not divisible by {world} processes")
        self.size, self.seed, self.stream = size, seed, stream
        self.global_batch, self.rank, self.world = global_batch, rank, world
        self.start_batch = start_batch
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def position(self, position: int) -> tuple[int, int]:
        """(sample index, sample seed) at stream position ``position``."""
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, self.stream, epoch]).permutation(self.size)
        sample_seed = int(np.random.SeedSequence([self.seed, self.stream, position]).generate_state(1)[0])
        return int(self._perm[offset]), sample_seed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        local = self.global_batch // self.world
        batch = self.start_batch
        while True:
            first = batch * self.global_batch + self.rank * local
            for position in range(first, first + local):
                yield self.position(position)
            batch += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a length for len(loader)
        return 2 ** 62
