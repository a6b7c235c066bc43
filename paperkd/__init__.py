"""paperkd: pixel-wise and pair-wise knowledge distillation for DeepLabV3+ semantic segmentation.

A companion library to the paper restated in the book: faithful DeepLabV3+ teacher and students, every distillation
loss of the paper and its baselines, a training pipeline that writes run records, and the notebooks that turn those
records into the paper's tables.
"""

__version__ = "0.1.0"
