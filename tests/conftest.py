import os
from pathlib import Path

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
