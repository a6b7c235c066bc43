"""Augmentation seeded per (run seed, epoch, image): runs do not depend on the loader's worker count."""

import torch
from torch.utils.data import Dataset

from paperkd.checkpoint import load_checkpoint
from paperkd.config import resolve
from paperkd.data.seeded import EpochBatches, SeededDataset, epoch_order, sample_seed
from paperkd.train import train
from conftest import SMOKE


class Noise(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, index):
        return torch.rand(3) + index


def test_same_key_same_sample_and_the_caller_stream_untouched():
    data = SeededDataset(Noise())
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a, b = data[(2, 7)], data[(2, 7)]
    assert torch.equal(a, b) and not torch.equal(a, data[(2, 8)])
    assert torch.equal(torch.get_rng_state(), before)  # with no workers, the training loop's stream is not consumed


def test_epoch_batches_cover_each_epoch_in_its_own_order_with_its_seeds():
    batches = EpochBatches(size=10, batch_size=3, seed=5, epochs=3)
    every = list(batches)
    assert len(every) == len(batches) == 3 * 3 and batches.batches_per_epoch == 3  # 10 // 3, the rest dropped
    epochs = [every[3 * e:3 * e + 3] for e in range(3)]
    for epoch, chunk in enumerate(epochs):
        indices = [i for batch in chunk for i, _ in batch]
        assert indices == epoch_order(10, 5, epoch)[:9] and len(set(indices)) == 9
        assert all(s == sample_seed(5, epoch, i) for batch in chunk for i, s in batch)
    assert epochs[0] != epochs[1]
    batches.start_epoch = 2  # a resume from epoch 2 yields exactly the rest
    assert list(batches) == epochs[2] and len(batches) == 3
    shards = [list(EpochBatches(10, 2, 5, 1, rank=r, world_size=2)) for r in (0, 1)]
    seen = [i for shard in shards for batch in shard for i, _ in batch]
    assert len(seen) == len(set(seen)) == 8  # two ranks, disjoint, 2 batches of 2 each
    assert len({sample_seed(3, e, i) for e in range(50) for i in range(1464)}) == 50 * 1464


def test_a_run_is_the_same_with_or_without_loader_workers(tmp_path, tiny_standin):
    weights = []
    for workers in (0, 2):
        cfg = resolve("r18-none", "smoke", data_root=str(tiny_standin), out=str(tmp_path / f"w{workers}"), epochs=2,
                      max_train_images=8, **{**SMOKE, "workers": workers})
        train(cfg, progress=False)
        weights.append(load_checkpoint(tmp_path / f"w{workers}" / cfg.name / "checkpoint.pt")["model"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
