"""Filtering of detections (box head) and of proposals (RPN) on hand-made candidates."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from engine.detector.roi_heads import DetectionSettings, class_candidates, postprocess_detections
from engine.detector.rpn import ProposalSettings, filter_image_proposals, top_k_per_level

# Candidates of one image. IoU of A and B (or C): overlap 9 x 10 = 90, union 100 + 100 - 90
# = 110, IoU 0.82 > 0.5.
BOXES = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],  # A, class 1, 0.90
        [1.0, 0.0, 11.0, 10.0],  # B, class 1, 0.80: suppressed by A
        [1.0, 0.0, 11.0, 10.0],  # C, class 2, 0.70: other class, kept
        [50.0, 50.0, 60.0, 60.0],  # D, class 1, 0.50: exactly the threshold, dropped
        [70.0, 70.0, 70.5, 80.0],  # E, class 1, 0.95: 0.5 wide < min_size 1, removed
        [20.0, 20.0, 30.0, 30.0],  # F, class 3, 0.51: kept
        [40.0, 40.0, 41.0, 41.0],  # G, class 3, 0.60: exactly min_size wide and high, kept
    ]
)
SCORES = torch.tensor([0.90, 0.80, 0.70, 0.50, 0.95, 0.51, 0.60])
LABELS = torch.tensor([1, 1, 2, 1, 1, 3, 3])
SETTINGS = DetectionSettings(score_thresh=0.5, nms_thresh=0.5, detections_per_img=100, min_size=1.0)


def test_postprocess_detections_threshold_size_and_per_class_nms():
    out = postprocess_detections(BOXES, SCORES, LABELS, SETTINGS)
    # Kept: A, C, G, F in decreasing score.
    assert_close(out["boxes"], BOXES[[0, 2, 6, 5]])
    assert_close(out["scores"], torch.tensor([0.90, 0.70, 0.60, 0.51]))
    assert out["labels"].tolist() == [1, 2, 3, 3]


def test_postprocess_detections_top_k():
    settings = DetectionSettings(
        score_thresh=0.5, nms_thresh=0.5, detections_per_img=2, min_size=1.0
    )
    out = postprocess_detections(BOXES, SCORES, LABELS, settings)
    assert_close(out["boxes"], BOXES[[0, 2]])
    assert out["labels"].tolist() == [1, 2]


def test_postprocess_detections_nothing_above_threshold():
    settings = DetectionSettings(
        score_thresh=0.99, nms_thresh=0.5, detections_per_img=10, min_size=1.0
    )
    out = postprocess_detections(BOXES, SCORES, LABELS, settings)
    assert out["boxes"].shape == (0, 4)
    assert out["scores"].shape == (0,)
    assert out["labels"].shape == (0,)


def test_class_candidates_drop_background_and_clip():
    proposals = torch.tensor([[0.0, 0.0, 10.0, 20.0], [20.0, 0.0, 30.0, 10.0]])
    # Proposal 0: logits all 0 -> softmax 1/3 each. Proposal 1: logits (0, log 2, 0)
    # -> exp = (1, 2, 1) / 4 = (0.25, 0.5, 0.25).
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]])
    deltas = torch.zeros(2, 12)
    # Proposal 1, class 2 (columns 8..11): dx code 10 / weight 10 = 1 width -> shift x by 10.
    deltas[1, 8] = 10.0
    boxes, scores, labels = class_candidates(logits, deltas, proposals, image_size=(15, 100))
    # Ordered by proposal, then class 1, 2; proposal 0 clipped to height 15.
    expected = torch.tensor(
        [
            [0.0, 0.0, 10.0, 15.0],
            [0.0, 0.0, 10.0, 15.0],
            [20.0, 0.0, 30.0, 10.0],
            [30.0, 0.0, 40.0, 10.0],
        ]
    )
    assert_close(boxes, expected)
    assert_close(scores, torch.tensor([1 / 3, 1 / 3, 0.5, 0.25]))
    assert labels.tolist() == [1, 2, 1, 2]


# RPN candidates of one image of size (h, w) = (40, 60).
PROPOSALS = torch.tensor(
    [
        [-10.0, -5.0, 20.0, 30.0],  # 0, level 0, 0.90: clipped to [0, 0, 20, 30]
        [0.0, 0.0, 20.0, 30.0],  # 1, level 1, 0.80: same box as 0, other level: kept
        [1.0, 0.0, 21.0, 30.0],  # 2, level 0, 0.70: IoU with 0 = 570 / 630 = 0.90: suppressed
        [40.0, 10.0, 80.0, 50.0],  # 3, level 1, 0.60: clipped to [40, 10, 60, 40]
        [30.0, 30.0, 35.0, 35.0],  # 4, level 0, 0.50: exactly the threshold, kept (>=)
        [0.0, 0.0, 5.0, 5.0],  # 5, level 1, 0.49: below the threshold
        [70.0, 0.0, 90.0, 10.0],  # 6, level 0, 0.95: clipped to width 0, removed
    ]
)
PROPOSAL_SCORES = torch.tensor([0.90, 0.80, 0.70, 0.60, 0.50, 0.49, 0.95])
PROPOSAL_LEVELS = torch.tensor([0, 1, 0, 1, 0, 1, 0])


def _settings(post_nms_top_n: int) -> ProposalSettings:
    return ProposalSettings(
        pre_nms_top_n=100,
        post_nms_top_n=post_nms_top_n,
        nms_thresh=0.7,
        score_thresh=0.5,
        min_size=1e-3,
    )


def test_filter_image_proposals():
    stages = filter_image_proposals(
        PROPOSALS, PROPOSAL_SCORES, PROPOSAL_LEVELS, (40, 60), _settings(100)
    )
    boxes, scores, kept = stages.proposals, stages.scores[stages.final], stages.final
    expected = torch.tensor(
        [
            [0.0, 0.0, 20.0, 30.0],
            [0.0, 0.0, 20.0, 30.0],
            [40.0, 10.0, 60.0, 40.0],
            [30.0, 30.0, 35.0, 35.0],
        ]
    )
    assert_close(boxes, expected)
    assert_close(scores, torch.tensor([0.90, 0.80, 0.60, 0.50]))
    assert kept.tolist() == [0, 1, 3, 4]


def test_filter_image_proposals_nms_is_per_level():
    # All on one level, box 1 (IoU 1 with clipped box 0) is suppressed as well.
    stages = filter_image_proposals(
        PROPOSALS, PROPOSAL_SCORES, torch.zeros(7, dtype=torch.int64), (40, 60), _settings(100)
    )
    boxes, kept = stages.proposals, stages.final
    assert kept.tolist() == [0, 3, 4]
    assert boxes.shape == (3, 4)


def test_filter_image_proposals_post_nms_top_k():
    stages = filter_image_proposals(
        PROPOSALS, PROPOSAL_SCORES, PROPOSAL_LEVELS, (40, 60), _settings(2)
    )
    boxes, scores, kept = stages.proposals, stages.scores[stages.final], stages.final
    assert kept.tolist() == [0, 1]
    assert_close(scores, torch.tensor([0.90, 0.80]))
    assert_close(boxes, torch.tensor([[0.0, 0.0, 20.0, 30.0], [0.0, 0.0, 20.0, 30.0]]))


def test_top_k_per_level():
    # Two levels of 3 and 2 anchors; indices are into the concatenation.
    objectness = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7], [0.8, 0.0, 0.2, 0.6, 0.4]])
    top = top_k_per_level(objectness, [3, 2], k=2)
    assert top.tolist() == [[1, 2, 4, 3], [0, 2, 3, 4]]
    # k above a level's size takes the whole level: 3 + 2 indices.
    assert top_k_per_level(objectness, [3, 2], k=4).shape == (2, 5)
