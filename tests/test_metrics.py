import math

import pytest
import torch

from paperkd.metrics import ConfusionMatrix


def _batch(rows):
    """A (1, H, W) int64 tensor from a list of rows."""
    return torch.tensor([rows], dtype=torch.int64)


# A 3-class case small enough to count by hand.
#   target      pred
#   0 0 1       0 1 1
#   1 2 255     1 1 0      (255 is ignored, whatever the prediction)
TARGET = _batch([[0, 0, 1], [1, 2, 255]])
PRED = _batch([[0, 1, 1], [1, 1, 0]])
# matrix[t, p]: t=0 -> p=0 once, p=1 once; t=1 -> p=1 twice; t=2 -> p=1 once.
EXPECTED_MATRIX = [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
# IoU_c = TP / (labelled + predicted - TP)
#   class 0: 1 / (2 + 1 - 1) = 1/2;  class 1: 2 / (2 + 4 - 2) = 1/2;  class 2: 0 / (1 + 0 - 0) = 0
EXPECTED_IOU = [0.5, 0.5, 0.0]


def test_hand_computed_matrix_and_scores():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(PRED, TARGET)
    assert cm.matrix.dtype == torch.int64
    assert cm.matrix.tolist() == EXPECTED_MATRIX
    scores = cm.compute()
    assert scores["per_class_iou"] == pytest.approx(EXPECTED_IOU)
    assert scores["miou"] == pytest.approx(1 / 3)
    assert scores["pixel_acc"] == pytest.approx(3 / 5)  # 5 valid pixels, 3 on the diagonal
    assert scores["present"] == [True, True, True]


def test_ignored_pixels_do_not_count_whatever_is_predicted():
    cm = ConfusionMatrix(num_classes=3)
    target = _batch([[255, 255], [0, 255]])
    cm.update(_batch([[2, 1], [0, 0]]), target)
    assert cm.matrix.sum().item() == 1
    assert cm.matrix[0, 0].item() == 1


def test_custom_ignore_index():
    cm = ConfusionMatrix(num_classes=3, ignore_index=0)
    cm.update(_batch([[1, 2, 2]]), _batch([[0, 2, 1]]))
    assert cm.matrix.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]


def test_absent_classes_are_nan_and_excluded_from_the_mean():
    cm = ConfusionMatrix(num_classes=4)
    # class 0 perfect, class 1 only in the truth (IoU 0, counts), classes 2 and 3 nowhere.
    cm.update(_batch([[0, 0, 0, 0]]), _batch([[0, 0, 0, 1]]))
    scores = cm.compute()
    iou = scores["per_class_iou"]
    assert iou[0] == pytest.approx(3 / 4)  # 3 / (3 labelled + 4 predicted - 3)
    assert iou[1] == 0.0
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert scores["present"] == [True, True, False, False]
    assert scores["miou"] == pytest.approx((3 / 4 + 0) / 2)


def test_class_only_predicted_counts_as_present_with_zero_iou():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(_batch([[2, 0]]), _batch([[0, 0]]))
    scores = cm.compute()
    assert scores["present"] == [True, False, True]
    assert scores["per_class_iou"][2] == 0.0
    assert scores["miou"] == pytest.approx((1 / 2 + 0) / 2)


def test_empty_matrix_gives_nan_scores():
    scores = ConfusionMatrix(num_classes=3).compute()
    assert math.isnan(scores["miou"]) and math.isnan(scores["pixel_acc"])
    assert scores["present"] == [False, False, False]


def test_logits_are_reduced_by_argmax_over_channels():
    # Build logits whose argmax is PRED, in half precision to exercise float dtypes.
    logits = torch.nn.functional.one_hot(PRED, 3).permute(0, 3, 1, 2).to(torch.float16) * 5 - 1
    from_logits, from_indices = ConfusionMatrix(3), ConfusionMatrix(3)
    from_logits.update(logits, TARGET)
    from_indices.update(PRED, TARGET)
    assert torch.equal(from_logits.matrix, from_indices.matrix)


@pytest.mark.parametrize("pred_dtype", [torch.uint8, torch.int32, torch.int64])
@pytest.mark.parametrize("target_dtype", [torch.uint8, torch.int32, torch.int64])
def test_integer_dtypes_give_the_same_matrix(pred_dtype, target_dtype):
    cm = ConfusionMatrix(num_classes=3)
    cm.update(PRED.to(pred_dtype), TARGET.to(target_dtype))
    assert cm.matrix.tolist() == EXPECTED_MATRIX


def test_float_class_indices_are_refused():
    with pytest.raises(ValueError, match="integer class indices"):
        ConfusionMatrix(3).update(PRED.float(), TARGET)


def test_accumulating_batches_equals_one_big_update():
    gen = torch.Generator().manual_seed(0)
    n = 21
    target = torch.randint(0, n, (6, 17, 19), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.1] = 255
    logits = torch.randn(6, n, 17, 19, generator=gen)

    whole = ConfusionMatrix(n)
    whole.update(logits, target)
    streamed = ConfusionMatrix(n)
    for start in range(0, 6, 2):
        streamed.update(logits[start : start + 2], target[start : start + 2])
    assert torch.equal(whole.matrix, streamed.matrix)
    assert whole.matrix.sum().item() == (target != 255).sum().item()

    # And both agree with a plain per-pixel count.
    pred = logits.argmax(1)
    valid = target != 255
    reference = torch.zeros(n, n, dtype=torch.int64)
    for t, p in zip(target[valid].tolist(), pred[valid].tolist()):
        reference[t, p] += 1
    assert torch.equal(whole.matrix, reference)


def test_reset_clears_counts():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    cm.reset()
    assert cm.matrix.sum().item() == 0
    cm.update(PRED, TARGET)
    assert cm.matrix.tolist() == EXPECTED_MATRIX


@pytest.mark.parametrize("bad", [21, 254, -1])
def test_out_of_range_target_is_an_error_naming_the_value(bad):
    target = torch.zeros(1, 2, 2, dtype=torch.int64)
    target[0, 1, 1] = bad
    with pytest.raises(ValueError, match=f"value {bad}"):
        ConfusionMatrix(21).update(torch.zeros_like(target), target)


def test_out_of_range_prediction_is_an_error():
    with pytest.raises(ValueError, match="pred .* value 7"):
        ConfusionMatrix(3).update(_batch([[7, 0]]), _batch([[0, 0]]))


def test_shape_and_channel_mismatches_are_errors():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(3).update(_batch([[0, 0, 0]]), _batch([[0, 0]]))
    with pytest.raises(ValueError, match="channels"):
        ConfusionMatrix(3).update(torch.zeros(1, 4, 1, 2), _batch([[0, 0]]))


def test_all_reduce_without_a_process_group_is_a_no_op():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    cm.all_reduce()
    assert cm.matrix.tolist() == EXPECTED_MATRIX


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_update_on_gpu_stays_on_device_without_host_sync():
    cm = ConfusionMatrix(3)
    pred, target = PRED.cuda(), TARGET.cuda()
    cm.update(pred, target)  # the first batch moves the matrix (a copy, allowed once)
    torch.cuda.set_sync_debug_mode("error")
    try:
        cm.update(pred, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert cm.matrix.device.type == "cuda"
    assert cm.matrix.cpu().tolist() == [[2 * v for v in row] for row in EXPECTED_MATRIX]
    bad = target.clone()
    bad[0, 0, 0] = 9
    cm.update(pred, bad)  # deferred on the GPU ...
    with pytest.raises(ValueError, match="value 9"):
        cm.compute()  # ... raised here
