import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

# OpenMP threads busy-wait between ops by default; on a shared 2-core machine that made steps up to 10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
VOC_LABELS = Path(os.environ.get("PAPERKD_VOC_LABELS", REPO.parent / "shared" / "data" / "voc2012-labels"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def voc_labels() -> Path:
    """The real VOC 2012 label maps shipped beside the repository (../shared/data/voc2012-labels)."""
    if not (VOC_LABELS / "SegmentationClass").is_dir():
        pytest.skip(f"real VOC label maps not found at {VOC_LABELS}")
    return VOC_LABELS


@pytest.fixture(scope="session")
def tiny_standin(tmp_path_factory) -> Path:
    """A small procedural stand-in in the VOC layout (16 train / 8 val images, short side 64)."""
    from paperkd.data import make_standin

    return make_standin(tmp_path_factory.mktemp("standin") / "data", n_train=16, n_val=8, size=64, seed=0,
                        progress=False)


SMOKE = {"dataset": "standin", "workers": 0, "eval_every": 1}


@pytest.fixture(scope="session")
def smoke_teacher(tmp_path_factory, tiny_standin) -> Path:
    """A ResNet-101 teacher trained at smoke scale on the tiny stand-in; returns its selected checkpoint (the one
    a campaign's students distil from: best.pt under the default recipe)."""
    from paperkd.config import resolve
    from paperkd.train import train

    out = tmp_path_factory.mktemp("teacher")
    record = train(resolve("teacher", "smoke", data_root=str(tiny_standin), out=str(out), **SMOKE), progress=False)
    return Path(record["selected"]["checkpoint"])


@contextlib.contextmanager
def interrupted_in_epoch_2() -> Iterator[None]:
    """Inside: `paperkd.train.train` is interrupted (KeyboardInterrupt) at its second evaluation, in epoch 2, when
    epoch 1's checkpoint is on disk (the runs evaluate every epoch); the raise is expected. The trainer is restored
    on leaving."""
    import paperkd.train as trainer

    real_evaluate, calls = trainer.evaluate, {"n": 0}

    def evaluate_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    trainer.evaluate = evaluate_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        trainer.evaluate = real_evaluate
