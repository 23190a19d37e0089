"""The uncertainty measures on values a reader can check by hand."""

from __future__ import annotations

import math

import pytest
import torch

from engine.active.uncertainty import (
    NO_DETECTION_UNCERTAINTY,
    flip_boxes,
    flip_disagreement,
    image_uncertainty,
    margin_uncertainty,
    normalized_entropy,
)


def test_entropy_is_one_for_uniform_zero_for_certain_and_half_for_two_of_four():
    p = torch.tensor([[0.25, 0.25, 0.25, 0.25],   # log 4 / log 4
                      [1.0, 0.0, 0.0, 0.0],       # 0 (0 log 0 = 0)
                      [0.5, 0.5, 0.0, 0.0]])      # log 2 / log 4 = 0.5
    assert normalized_entropy(p).tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_entropy_of_a_skewed_distribution():
    p = torch.tensor([[0.8, 0.1, 0.1]])
    expected = -(0.8 * math.log(0.8) + 2 * 0.1 * math.log(0.1)) / math.log(3)  # 0.5817
    assert normalized_entropy(p).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.5817, abs=1e-4)


def test_margin_is_one_minus_the_gap_between_the_two_best():
    p = torch.tensor([[0.7, 0.2, 0.1],   # 1 - (0.7 - 0.2) = 0.5
                      [0.5, 0.5, 0.0],   # a tie: 1
                      [0.0, 1.0, 0.0]])  # certain: 0
    assert margin_uncertainty(p).tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_flipping_boxes_mirrors_them_and_twice_is_the_identity():
    boxes = torch.tensor([[10.0, 0.0, 30.0, 5.0]])
    assert flip_boxes(boxes, 100).tolist() == [[70.0, 0.0, 90.0, 5.0]]
    assert flip_boxes(flip_boxes(boxes, 100), 100).tolist() == boxes.tolist()


def test_flip_disagreement_mixes_box_overlap_and_class_distance():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],     # half covered by the other box
                          [50.0, 50.0, 60.0, 60.0],   # nothing overlaps it
                          [0.0, 0.0, 10.0, 5.0]])     # the other box itself, same classes
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.6, 0.4]])
    other_boxes = torch.tensor([[0.0, 0.0, 10.0, 5.0]])
    q = torch.tensor([[0.6, 0.4]])
    # Row 0: IoU 50/100 = 0.5, total variation 0.5 * (0.4 + 0.4) = 0.4 -> 0.5*0.5 + 0.5*0.4.
    assert flip_disagreement(boxes, p, other_boxes, q).tolist() == pytest.approx(
        [0.45, 1.0, 0.0])


def test_flip_disagreement_without_detections_on_either_side():
    p = torch.tensor([[0.2, 0.8]])
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert flip_disagreement(box, p, torch.zeros((0, 4)), torch.zeros((0, 2))).tolist() == [1.0]
    assert flip_disagreement(torch.zeros((0, 4)), torch.zeros((0, 2)), box, p).numel() == 0


def test_image_uncertainty_is_the_mean_of_the_three_largest():
    assert image_uncertainty(torch.tensor([0.1, 0.9, 0.5, 0.7])) == pytest.approx(0.7)
    assert image_uncertainty(torch.tensor([0.2, 0.4])) == pytest.approx(0.3)
    assert image_uncertainty(torch.tensor([0.2, 0.4]), top_k=1) == pytest.approx(0.4)
    assert image_uncertainty(torch.zeros(0)) == NO_DETECTION_UNCERTAINTY == 1.0
