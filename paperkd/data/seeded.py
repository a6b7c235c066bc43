"""Order and augmentation drawn from (run seed, epoch, image index) alone: the same batches, crops and flips
whatever the number of loader workers, which DDP rank loads the image, or where a run was resumed.

    batches = EpochBatches(len(train_set), batch_size, seed, epochs)      # every epoch's batches, back to back
    loader = DataLoader(SeededDataset(train_set), batch_sampler=batches, num_workers=8)
    it = iter(loader)   # one iterator for the whole run: the workers prepare the next epoch's first batches while
                        # the current epoch ends, so no step waits at an epoch boundary

Without this, each worker draws from its own random stream, so changing the worker count changes the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation in one epoch of one run (distinct for every triple in practice)."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) & _MASK


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The shuffled image order of one epoch: torch.randperm from a generator seeded with (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


class EpochBatches(Sampler):
    """Batches of (index, sample_seed) for epochs `start_epoch` .. `epochs - 1`, back to back (a `batch_sampler`).

    Each epoch has its own order (`epoch_order`) and drops its last partial batch, so every epoch has
    `batches_per_epoch` batches. With `world_size` > 1 each rank takes every world_size-th image of the order (the
    order cut to a multiple of world_size first), as DistributedSampler with drop_last does. Set `start_epoch` before
    iterating to resume.
    """

    def __init__(self, size: int, batch_size: int, seed: int, epochs: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, "
                             f"{world_size}")
        self.size, self.batch_size, self.seed, self.epochs = size, batch_size, seed, epochs
        self.rank, self.world_size, self.start_epoch = rank, world_size, 0

    @property
    def batches_per_epoch(self) -> int:
        return (self.size // self.world_size) // self.batch_size

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        order = epoch_order(self.size, self.seed, epoch)
        mine = order[:self.size - self.size % self.world_size][self.rank::self.world_size]
        return [[(i, sample_seed(self.seed, epoch, i)) for i in mine[b * self.batch_size:(b + 1) * self.batch_size]]
                for b in range(self.batches_per_epoch)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in range(self.start_epoch, self.epochs):
            yield from self.epoch_batches(epoch)

    def __len__(self) -> int:
        return max(0, self.epochs - self.start_epoch) * self.batches_per_epoch


class SeededDataset(Dataset):
    """`dataset[index]` with torch's CPU random state set from the key's seed; the caller's state is left untouched
    (so with no workers the training loop's own random stream is not consumed by augmentation)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]
