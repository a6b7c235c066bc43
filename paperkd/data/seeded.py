"""Augmentation drawn from (run seed, epoch, image index) alone: the same crops and flips whatever the number of
loader workers, whether they persist across epochs, which DDP rank loads the image, or where a run was resumed.

    loader = DataLoader(SeededDataset(train_set), sampler=SeededSampler(base_sampler, seed), ...)
    loader.sampler.set_epoch(epoch)    # before each epoch

Without this, each worker draws from its own random stream, so changing the worker count changes the run, and
persistent workers (no start-up cost per epoch) would carry their streams across a resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Dataset, Sampler

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation in one epoch of one run (distinct for every triple in practice)."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) & _MASK


class SeededSampler(Sampler):
    """Wraps an index sampler (random order, or DDP's shard): yields (index, sample_seed) pairs for `SeededDataset`."""

    def __init__(self, base: Sampler, seed: int):
        self.base, self.seed, self.epoch = base, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.base, "set_epoch"):  # DistributedSampler reshuffles per epoch
            self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.base:
            yield int(index), sample_seed(self.seed, self.epoch, int(index))

    def __len__(self) -> int:
        return len(self.base) if isinstance(self.base, Sized) else 0


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
