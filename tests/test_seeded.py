"""Augmentation seeded per (run seed, epoch, image): runs do not depend on the loader's worker count."""

import torch
from torch.utils.data import Dataset, RandomSampler

from paperkd.checkpoint import load_checkpoint
from paperkd.config import resolve
from paperkd.data.seeded import SeededDataset, SeededSampler, sample_seed
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


def test_sampler_pairs_each_index_with_its_epoch_seed():
    sampler = SeededSampler(RandomSampler(range(5), generator=torch.Generator().manual_seed(0)), seed=3)
    sampler.set_epoch(4)
    pairs = list(sampler)
    assert sorted(i for i, _ in pairs) == list(range(5)) and len(sampler) == 5
    assert all(s == sample_seed(3, 4, i) for i, s in pairs)
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
