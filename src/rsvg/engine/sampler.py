"""A resumable, sharded sampler: the order depends only on (seed, epoch), so a run resumed mid-epoch sees
exactly the batches the uninterrupted run would have seen."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableShardedSampler(Sampler):
    """Shuffled (or sequential) indices split across ``world_size`` ranks, starting at ``start`` for this epoch.

    Training shards pad the permutation by repeating its head so that every rank gets the same number of
    samples (DDP needs equal step counts); evaluation (``pad=False``) gives each rank ``indices[rank::world]``
    with no duplicates, so no sample is dropped or counted twice. With ``with_epoch`` it yields
    ``(epoch, index)`` keys, which :class:`rsvg.data.dataset.RSVGDataset` reads to pick the epoch's augmentation.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        with_epoch: bool = False,
    ) -> None:
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.with_epoch = with_epoch
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip its first ``start`` samples of this rank (for resuming)."""
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        if self.pad and self.world_size > 1 and self.length % self.world_size:
            extra = self.world_size - self.length % self.world_size
            order += (order * (extra // max(self.length, 1) + 1))[:extra]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        indices = self._indices()[self.start :]
        if self.with_epoch:
            return iter([(self.epoch, i) for i in indices])
        return iter(indices)

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)
