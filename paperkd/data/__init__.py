"""Pascal VOC 2012 data: the reader, the paired transforms of the recipe, a stand-in renderer and a data checker."""

from paperkd.data.check import DataProblem, check_data
from paperkd.data.standin import default_standin, make_standin
from paperkd.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transforms, val_transforms
from paperkd.data.voc import VOCSegmentation, find_voc_root

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataProblem",
    "VOCSegmentation",
    "check_data",
    "default_standin",
    "find_voc_root",
    "make_standin",
    "train_transforms",
    "val_transforms",
]
