"""Golden values for the IoU matcher: Detectron2's 3x4 matrix test in our label convention.

Match vector: index of the matched ground-truth box, -1 background (IoU < low), -2 ignored
(low <= IoU < high).
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from engine.detector.matching import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, Matcher
from engine.detector.rpn import anchor_labels

# Rows: 3 ground-truth boxes; columns: 4 predictions (Detectron2 tests/modeling/test_matcher.py).
IOU = torch.tensor(
    [
        [0.15, 0.45, 0.20, 0.60],
        [0.30, 0.65, 0.05, 0.10],
        [0.05, 0.40, 0.25, 0.40],
    ]
)
# Best per column: col 0 0.30 (gt 1), col 1 0.65 (gt 1), col 2 0.25 (gt 2), col 3 0.60 (gt 0).
# Best per row: gt 0 0.60 at col 3, gt 1 0.65 at col 1, gt 2 0.40 at cols 1 and 3 (a tie).


def test_label_constants():
    assert (BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS) == (-1, -2)


def test_detectron2_matrix_without_low_quality_matches():
    # col 0: 0.30 >= 0.3 and < 0.7 -> -2; col 1: 0.65 -> -2; col 2: 0.25 < 0.3 -> -1;
    # col 3: 0.60 -> -2.
    matches = Matcher(0.7, 0.3, allow_low_quality_matches=False)(IOU)
    assert_close(matches, torch.tensor([-2, -2, -1, -2]))


def test_detectron2_matrix_with_low_quality_matches():
    # Cols 1 and 3 are the best of some gt, so they get back their own best gt: col 1 -> 1,
    # col 3 -> 0 (its best is gt 0 with 0.60, not gt 2 for which it ties at 0.40).
    # Detectron2 gives matches [1, 1, 2, 0] with labels [ignore, 1, 0, 1]: the same.
    matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(IOU)
    assert_close(matches, torch.tensor([-2, 1, -1, 0]))


def test_thresholds_are_inclusive_at_high_and_low():
    iou = torch.tensor(
        [
            [0.80, 0.20, 0.00, 0.30],
            [0.10, 0.70, 0.29, 0.00],
        ]
    )
    # col 0: 0.8 -> gt 0; col 1: 0.7 = high -> matched, gt 1; col 2: 0.29 -> -1;
    # col 3: 0.3 = low -> ignored.
    matches = Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou)
    assert_close(matches, torch.tensor([0, 1, -1, -2]))


def test_low_quality_ties_are_all_kept():
    iou = torch.tensor(
        [
            [0.50, 0.50, 0.10],
            [0.10, 0.20, 0.20],
        ]
    )
    # gt 0's best 0.50 is at cols 0 and 1: both keep gt 0. gt 1's best 0.20 is at cols 1 and 2:
    # col 1 keeps its own best gt (0), col 2 gets gt 1 though 0.20 < low threshold.
    assert_close(Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou), torch.tensor([0, 0, 1]))
    assert_close(
        Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou), torch.tensor([-2, -2, -1])
    )


def test_empty_ground_truth_raises():
    with pytest.raises(ValueError, match="no boxes"):
        Matcher(0.7, 0.3, allow_low_quality_matches=True)(torch.zeros((0, 5)))


def test_anchor_labels_positive_negative_ignored():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 -> positive
            [0.0, 0.0, 10.0, 20.0],  # IoU 100 / 200 = 0.5 -> ignored
            [0.0, 0.0, 10.0, 50.0],  # IoU 100 / 500 = 0.2 -> negative
        ]
    )
    labels, matched = anchor_labels(anchors, gt, Matcher(0.7, 0.3, allow_low_quality_matches=True))
    assert_close(labels, torch.tensor([1.0, -1.0, 0.0]))
    assert_close(matched, gt.expand(3, 4))


def test_anchor_labels_image_without_boxes_is_all_negative():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 9.0, 9.0]])
    labels, matched = anchor_labels(anchors, torch.zeros((0, 4)), Matcher(0.7, 0.3, True))
    assert_close(labels, torch.tensor([0.0, 0.0]))
    assert_close(matched, torch.zeros((2, 4)))
