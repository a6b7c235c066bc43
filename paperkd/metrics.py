"""Streaming confusion matrix for semantic segmentation: mean IoU and pixel accuracy on Pascal VOC.

The paper reports mIoU over VOC's 21 classes (background counts) with label 255 ignored. The matrix accumulates on
the device of its inputs; `update` never reads a value back to the host, so evaluation does not stall the GPU per
batch. Only `compute` (once per evaluation) copies the 21 x 21 counts to the host.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from paperkd.vocabulary import IGNORE_INDEX, NUM_CLASSES

_LOWEST = torch.iinfo(torch.int64).min


class ConfusionMatrix:
    """Counts of (true class, predicted class) pixel pairs, accumulated over batches.

    `matrix[t, p]` is the number of valid pixels whose target is `t` and whose prediction is `p`. Pixels whose target
    equals `ignore_index` are skipped. Any other target outside `0 .. num_classes - 1` is an error (a ValueError that
    names the value): raised by `update` when the target lives on the CPU, and by `compute` otherwise, because checking
    a GPU tensor inside `update` would force a host round-trip per batch.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX,
                 device: torch.device | str | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        # Out-of-range values seen so far, kept on the device: [count, largest offending value] per input kind.
        self._out_of_range = {kind: self._empty_tally(device) for kind in ("target", "pred")}

    def reset(self) -> None:
        """Forget every pixel counted so far (the matrix stays on its device)."""
        self.matrix.zero_()
        self._out_of_range = {kind: self._empty_tally(self.matrix.device) for kind in self._out_of_range}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch. `pred`: class indices (B, H, W) of any integer dtype, or logits (B, C, H, W) of any float
        dtype (reduced by argmax over C). `target`: class indices (B, H, W), `ignore_index` for pixels to skip.

        Counting uses a scatter-add histogram of `target * n + pred` rather than `torch.bincount`, whose CUDA kernel
        reads the input's maximum back to the host; invalid pixels go to one extra bin that is then dropped.
        """
        n = self.num_classes
        if pred.dim() == target.dim() + 1:
            if pred.shape[1] != n:
                raise ValueError(f"logits have {pred.shape[1]} channels but the matrix has {n} classes")
            pred = pred.argmax(dim=1)
        elif pred.is_floating_point():
            raise ValueError(
                f"pred of shape {tuple(pred.shape)} has the target's shape, so it must hold integer class indices, "
                f"got {pred.dtype}; pass logits (B, C, H, W) or class indices"
            )
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")

        self._move_to(target.device)
        target = target.to(torch.int64).flatten()
        pred = pred.to(device=target.device, dtype=torch.int64).flatten()

        considered = target != self.ignore_index
        target_ok = (target >= 0) & (target < n)
        pred_ok = (pred >= 0) & (pred < n)
        self._tally(self._out_of_range["target"], target, considered & ~target_ok)
        self._tally(self._out_of_range["pred"], pred, considered & target_ok & ~pred_ok)

        valid = considered & target_ok & pred_ok
        trash_bin = n * n
        cells = torch.where(valid, target * n + pred, trash_bin)
        counts = torch.zeros(n * n + 1, dtype=torch.int64, device=target.device)
        counts.scatter_add_(0, cells, torch.ones_like(cells))
        self.matrix += counts[:trash_bin].view(n, n)

        if target.device.type == "cpu":  # checking is free on the host: fail at the offending batch
            self._raise_if_out_of_range()

    def all_reduce(self) -> None:
        """Sum the matrix over all processes of an initialised torch.distributed group (no-op otherwise)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def compute(self) -> dict:
        """Scores from the counts so far.

        Returns a dict with
        - "miou": mean IoU over the classes PRESENT in the prediction or in the ground truth. A class absent from both
          (no pixel predicted, no pixel labelled) has an undefined IoU (0 / 0) and is excluded from the mean; a class
          present in only one of them has IoU 0 and counts. NaN if no class is present at all.
        - "per_class_iou": list of `num_classes` floats, IoU_c = TP / (TP + FP + FN); NaN for absent classes.
        - "pixel_acc": correctly classified valid pixels / valid pixels (NaN if no valid pixel was seen).
        - "present": list of `num_classes` bools, the classes counted in "miou".
        """
        self._raise_if_out_of_range()
        matrix = self.matrix.to("cpu", torch.float64)
        true_positive = matrix.diagonal()
        labelled = matrix.sum(dim=1)
        predicted = matrix.sum(dim=0)
        union = labelled + predicted - true_positive
        present = (labelled + predicted) > 0
        iou = torch.where(present, true_positive / union.clamp(min=1), torch.full_like(union, math.nan))
        total = matrix.sum()
        return {
            "miou": iou[present].mean().item() if present.any() else math.nan,
            "per_class_iou": iou.tolist(),
            "pixel_acc": (true_positive.sum() / total).item() if total > 0 else math.nan,
            "present": present.tolist(),
        }

    def _move_to(self, device: torch.device) -> None:
        # The matrix follows its inputs (one copy on the first batch from a new device, none after).
        if self.matrix.device != device:
            self.matrix = self.matrix.to(device)
            self._out_of_range = {kind: tally.to(device) for kind, tally in self._out_of_range.items()}

    @staticmethod
    def _empty_tally(device) -> torch.Tensor:
        return torch.tensor([0, _LOWEST], dtype=torch.int64, device=device)

    @staticmethod
    def _tally(tally: torch.Tensor, values: torch.Tensor, bad: torch.Tensor) -> None:
        # Count and remember the largest offending value without leaving the device.
        if values.numel() == 0:
            return
        tally[0] += bad.sum()
        tally[1] = torch.maximum(tally[1], torch.where(bad, values, _LOWEST).max())

    def _raise_if_out_of_range(self) -> None:
        for kind, tally in self._out_of_range.items():
            count, value = tally.tolist()
            if count:
                raise ValueError(
                    f"{kind} holds {count} pixel(s) outside the classes 0..{self.num_classes - 1} "
                    f"(and not ignore_index {self.ignore_index}), e.g. value {value}"
                )
