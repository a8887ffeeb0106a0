"""The training and val data of a run: datasets, endless seeded loaders, and device batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from benchmark.config import DataConfig, crop_hw
from benchmark.data.datasets import PairReader, TrainSet, ValSet
from benchmark.data.sampling import StreamSampler
from benchmark.data.splits import Sample, Split
from benchmark.data.transforms import Geometry
from benchmark.distributed import DistInfo
from benchmark.errors import UserError
from benchmark.data.batch import Batch, Labeled, Unlabeled

LABELED, UNLABELED, MIX = 0, 1, 2
"""Stream ids: the labeled stream, the unlabeled stream and the mix-source stream draw independently."""


def eval_dataset(samples: list[Sample], root: Path, data: DataConfig) -> ValSet:
    """Images of an evaluation list (a split's val or test list, or any list of pairs) at full size."""
    return ValSet(PairReader(root, samples, data))


@dataclass
class TrainStreams:
    """Endless iterators over the labeled, unlabeled and mix-source loaders of one process."""

    labeled: Iterator[dict[str, torch.Tensor]]
    unlabeled: Iterator[dict[str, torch.Tensor]] | None
    mix: Iterator[dict[str, torch.Tensor]] | None

    def next(self, device: torch.device, channels_last: bool) -> Batch:
        """The next step's batch, on ``device`` as [0, 1] float images."""
        return Batch(_labeled(next(self.labeled), device, channels_last),
                     _unlabeled(next(self.unlabeled), device, channels_last) if self.unlabeled else None,
                     _unlabeled(next(self.mix), device, channels_last) if self.mix else None)


def _image(raw: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    image = raw.to(device, non_blocking=True).float().div_(255)
    return image.contiguous(memory_format=torch.channels_last) if channels_last else image


def _labeled(raw: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> Labeled:
    return Labeled(_image(raw["image"], device, channels_last), raw["mask"].to(device, non_blocking=True))


def _unlabeled(raw: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> Unlabeled:
    return Unlabeled(_image(raw["image"], device, channels_last), raw["ignore"].to(device, non_blocking=True))


def _loader(dataset: Dataset, global_batch: int, stream: int, seed: int, dist: DistInfo, start: int,
            workers: int, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    sampler = StreamSampler(len(dataset), seed, stream, global_batch, dist.rank, dist.world, start)
    loader = DataLoader(dataset, batch_size=global_batch // dist.world, sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        prefetch_factor=2 if workers > 0 else None, drop_last=True)
    return iter(loader)


def train_streams(split: Split, root: Path, data: DataConfig, seed: int, dist: DistInfo,
                  start_batch: int, device: torch.device, uses_unlabeled: bool, uses_mix: bool) -> TrainStreams:
    """Loaders of the run, positioned ``start_batch`` global batches into each stream (resume)."""
    for name, batch in (("data.batch_size", data.batch_size), ("data.unlabeled_batch_size",
                                                                data.unlabeled_batch_size)):
        if batch % dist.world:
            raise UserError(f"{name} = {batch} is the global batch and must divide by the {dist.world} processes")
    if uses_unlabeled and not split.unlabeled:
        raise UserError(f"split {split.name} has no unlabeled images, and this method needs them; use a "
                        "split with an unlabeled list, or --method supervised")
    geometry = Geometry(crop_hw(data), tuple(data.scale_range), data.ignore_index)
    labeled = _loader(TrainSet(PairReader(root, split.labeled, data), geometry, True), data.batch_size, LABELED,
                      seed, dist, start_batch, data.workers, device)
    if not uses_unlabeled:
        return TrainStreams(labeled, None, None)
    unlabeled_set = TrainSet(PairReader(root, split.unlabeled, data), geometry, False)
    unlabeled = _loader(unlabeled_set, data.unlabeled_batch_size, UNLABELED, seed, dist, start_batch,
                        data.workers, device)
    mix = (_loader(unlabeled_set, data.unlabeled_batch_size, MIX, seed, dist, start_batch, data.workers, device)
           if uses_mix else None)
    return TrainStreams(labeled, unlabeled, mix)
