"""The order of training items: a pure function of (seed, epoch), sharded over processes, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Item indices of one epoch for one process, from `start_batch` on.

    The epoch's permutation depends only on (seed, epoch), so a resumed run sees the same order, and a run
    on W processes sees the same global batches as a run on one: global batch b is items
    perm[b·B : (b+1)·B], and process r reads its contiguous slice of B/W of them. The last global batch is
    completed with items from the start of the permutation (as DistributedSampler pads), so every process
    runs the same number of steps; evaluation loaders do not shuffle and are not padded.

    Args:
        length: number of items in the dataset.
        global_batch: B, items per optimiser step over all processes.
        seed: base seed of the permutations.
        shuffle: permute (training) or keep dataset order.
        rank: this process.
        world: number of processes (must divide `global_batch`).
    """

    def __init__(self, length: int, global_batch: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world: int = 1) -> None:
        if global_batch % world:
            raise ValueError(f"train.batch_size ({global_batch}) must be divisible by the {world} processes")
        self.length, self.global_batch, self.seed, self.shuffle = length, global_batch, seed, shuffle
        self.rank, self.world = rank, world
        self.epoch, self.start_batch = 0, 0

    @property
    def num_batches(self) -> int:
        """Optimiser steps per epoch."""
        return -(-self.length // self.global_batch)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Choose the epoch's permutation and the global batch to start from (to resume mid-epoch)."""
        self.epoch, self.start_batch = epoch, start_batch

    def permutation(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.length, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self.permutation()
        padded = self.num_batches * self.global_batch
        order += order[: padded - len(order)] if self.world > 1 else []
        local = self.global_batch // self.world
        for b in range(self.start_batch, self.num_batches):
            first = b * self.global_batch + self.rank * local
            yield from order[first : first + local]

    def __len__(self) -> int:
        remaining = self.num_batches - self.start_batch
        if self.world > 1:
            return remaining * (self.global_batch // self.world)
        return max(0, self.length - self.start_batch * self.global_batch)
