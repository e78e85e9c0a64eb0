"""A resumable, sharded sampler: the order depends only on (seed, epoch), so a run resumed mid-epoch sees
exactly the batches the uninterrupted run would have seen."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ResumableShardedSampler(Sampler):
    """Shuffled (or sequential) indices split across ``world_size`` ranks, starting at ``start`` for this epoch.

    Training shards pad the permutation by repeating its head so that every rank gets the same number of
    samples (DDP needs equal step counts); ``pad=False`` gives each rank ``indices[rank::world]`` with no
    duplicates (evaluation uses :class:`ImageBatchSampler`, which also keeps images together). With
    ``with_epoch`` it yields ``(epoch, index)`` keys, which :class:`rsvg.data.dataset.RSVGDataset` reads to pick
    the epoch's augmentation.
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


class ImageBatchSampler(Sampler):
    """Evaluation batches that keep each image's expressions together, split across ranks by whole batches.

    An image's expressions then share one decoding and one backbone pass
    (:func:`rsvg.engine.evaluate.share_image_features`), on one rank. Batches hold up to ``batch_size``
    expressions: images are taken in order of first appearance and packed while they fit; an image with more
    expressions than ``batch_size`` fills batches of its own. Every index appears exactly once across ranks; the
    ranks' batch counts differ by at most one (evaluation needs no equal step counts)."""

    def __init__(self, image_ids: Sequence[str], batch_size: int, *, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        groups: dict[str, list[int]] = {}
        for i, image_id in enumerate(image_ids):
            groups.setdefault(image_id, []).append(i)
        batches: list[list[int]] = []
        current: list[int] = []
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                if len(current) + len(chunk) > batch_size:
                    batches.append(current)
                    current = []
                current = current + chunk
        if current:
            batches.append(current)
        self.batches = batches[rank::world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
