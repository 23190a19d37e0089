"""Labelled boxes with project category ids -> the detector's target, with what is left out."""

from __future__ import annotations

import pytest
import torch

from app.inspector.ground_truth import ground_truth
from engine.detector.checkpoint import ClassInfo

CLASSES = [ClassInfo(1, "cat", category_id=7), ClassInfo(2, "dog", category_id=3)]


def test_category_ids_map_to_the_checkpoints_class_ids():
    truth = ground_truth([(0, 0, 10, 10), (5, 5, 20, 30)], [3, 7], CLASSES, (100, 50))
    target = truth.target()
    assert target["labels"].tolist() == [2, 1]
    assert target["boxes"].tolist() == [[0, 0, 10, 10], [5, 5, 20, 30]]
    assert [b.name for b in truth.boxes] == ["dog", "cat"]
    assert [b.target_index for b in truth.boxes] == [0, 1]
    assert truth.notes() == []


def test_boxes_the_detector_cannot_take_are_shown_with_the_reason_and_left_out():
    truth = ground_truth(
        [(0, 0, 10, 10), (1, 1, 5, 5), (4, 4, 4, 9), (90, 40, 130, 49)], [99, 7, 7, 3],
        CLASSES, (100, 50))
    target = truth.target()
    assert target["labels"].tolist() == [1]
    assert [b.target_index for b in truth.boxes] == [-1, 0, -1, -1]
    notes = truth.notes()
    assert "category 99" in notes[0] and "not a class of this checkpoint" in notes[0]
    assert "zero or negative size" in notes[1]
    assert "outside the 100x50 image" in notes[2]
    assert len(truth.left_out) == 3


def test_no_boxes_means_no_target_and_all_left_out_an_empty_one():
    assert ground_truth([], [], CLASSES, (10, 10)).target() is None
    empty = ground_truth([(0, 0, 5, 5)], [42], CLASSES, (10, 10)).target()
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64
    with pytest.raises(ValueError, match="2 boxes but 1 category ids"):
        ground_truth([(0, 0, 1, 1), (0, 0, 2, 2)], [7], CLASSES, None)
