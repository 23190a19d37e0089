"""Error analysis: which detections are right, which are wrong and why, which boxes were missed.

The golden example, on a 100 x 20 image with three ground-truth boxes (class 1 is "circle",
class 2 is "square")::

    A (0, 0, 10, 10) circle     B (20, 0, 30, 10) square     C (40, 0, 50, 10) circle

    d0 (0, 0, 10, 10)   circle 0.9   IoU 1 with A                  -> true positive (A)
    d1 (0, 0, 10, 11)   circle 0.8   IoU 100/110 with A, A taken    -> duplicate of A
    d2 (20, 0, 30, 10)  circle 0.7   IoU 1 with B, a square         -> wrong class (B)
    d3 (40, 0, 50, 25)  circle 0.6   IoU 100/250 = 0.4 with C       -> low IoU (C)
    d4 (70, 0, 80, 10)  square 0.55  overlaps nothing               -> background
    d5 (20, 0, 30, 10)  square 0.3   below the score threshold 0.5  -> not counted

so B and C are missed. At score threshold 0.25, d5 finds B.
"""

from __future__ import annotations

import pytest
import torch

from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import ClassInfo
from engine.training.data import DetectionDataset, classes_for
from engine.training.error_analysis import (
    FalsePositive,
    TruePositive,
    analyse_checkpoint,
    analyse_errors,
    match_detections,
)

GT_BOXES = torch.tensor([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype=torch.float)
GT_LABELS = torch.tensor([1, 2, 1])
DET_BOXES = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [20, 0, 30, 10], [40, 0, 50, 25],
                          [70, 0, 80, 10], [20, 0, 30, 10]], dtype=torch.float)
DET_LABELS = torch.tensor([1, 1, 1, 1, 2, 2])
DET_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.55, 0.3])


def test_the_three_box_example():
    matches = match_detections(GT_BOXES, GT_LABELS, DET_BOXES, DET_LABELS, DET_SCORES)
    assert matches.true_positives == [TruePositive(0, 0, 1.0)]
    assert [(fp.detection, fp.reason, fp.ground_truth) for fp in matches.false_positives] == [
        (1, "duplicate", 0), (2, "wrong class", 1), (3, "low IoU", 2), (4, "background", None)]
    assert matches.false_positives[0].iou == pytest.approx(100 / 110)
    assert matches.false_positives[2].iou == pytest.approx(0.4)
    assert matches.missed == [1, 2]
    assert matches.ignored == []


def test_thresholds_change_the_verdicts():
    lower_score = match_detections(GT_BOXES, GT_LABELS, DET_BOXES, DET_LABELS, DET_SCORES,
                                   score_threshold=0.25)
    assert TruePositive(5, 1, 1.0) in lower_score.true_positives
    assert lower_score.missed == [2]
    # At IoU 0.4, d3 is close enough to C.
    lower_iou = match_detections(GT_BOXES, GT_LABELS, DET_BOXES, DET_LABELS, DET_SCORES,
                                 iou_threshold=0.4)
    assert TruePositive(3, 2, pytest.approx(0.4)) in lower_iou.true_positives
    assert lower_iou.missed == [1]


def test_higher_scores_match_first_and_take_the_best_overlap():
    gt = torch.tensor([[0, 0, 10, 10]], dtype=torch.float)
    # The lower-scoring detection fits better, but the higher-scoring one takes the box.
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 12]], dtype=torch.float)
    matches = match_detections(gt, torch.tensor([1]), boxes, torch.tensor([1, 1]),
                               torch.tensor([0.6, 0.9]))
    assert matches.true_positives == [TruePositive(1, 0, pytest.approx(100 / 120))]
    assert matches.false_positives == [FalsePositive(0, "duplicate", 0, 1.0)]


def test_difficult_boxes_are_neither_found_nor_missed():
    gt = torch.tensor([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=torch.float)
    matches = match_detections(gt, torch.tensor([1, 1]), gt.clone(), torch.tensor([1, 1]),
                               torch.tensor([0.9, 0.9]), gt_difficult=torch.tensor([False, True]))
    assert matches.true_positives == [TruePositive(0, 0, 1.0)]
    assert matches.ignored == [1] and matches.missed == [] and matches.false_positives == []


def test_a_negative_image_and_an_image_without_detections():
    none = torch.zeros((0, 4))
    empty = match_detections(none, torch.zeros(0, dtype=torch.int64), DET_BOXES[:1],
                             DET_LABELS[:1], DET_SCORES[:1])
    assert [fp.reason for fp in empty.false_positives] == ["background"]
    blind = match_detections(GT_BOXES, GT_LABELS, none, torch.zeros(0, dtype=torch.int64),
                             torch.zeros(0))
    assert blind.missed == [0, 1, 2] and not blind.true_positives


class _Replay(torch.nn.Module):
    """A stand-in detector returning prepared detections, one image after another."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)

    def forward(self, images):
        return [self.outputs.pop(0) for _ in images]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("errors") / "demo", count=5, seed=3)


def test_analysis_of_a_split_counts_per_class_and_filters_images(demo):
    with Project.open(demo) as project:
        records = project.dataset()[:3]
        classes = classes_for(project.categories())
    dataset = DetectionDataset(records, classes)
    targets = [dataset[i].target for i in range(3)]
    # Image 0: found exactly. Image 1: nothing found. Image 2: found, plus one stray box.
    perfect = {"boxes": targets[0]["boxes"], "labels": targets[0]["labels"],
               "scores": torch.full((len(targets[0]["labels"]),), 0.9)}
    stray = {"boxes": torch.cat([targets[2]["boxes"], torch.tensor([[0.0, 0.0, 5.0, 5.0]])]),
             "labels": torch.cat([targets[2]["labels"], torch.tensor([1])]),
             "scores": torch.cat([torch.full((len(targets[2]["labels"]),), 0.8),
                                  torch.tensor([0.7])])}
    nothing = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
               "scores": torch.zeros(0)}
    seen = []
    analysis = analyse_errors(_Replay([perfect, nothing, stray]), dataset, classes,
                              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]
    assert [i.image_id for i in analysis.filtered("all")] == [r.image_id for r in records]
    assert [i.image_id for i in analysis.filtered("errors")] == [records[1].image_id,
                                                                  records[2].image_id]
    assert [i.image_id for i in analysis.filtered("missed")] == [records[1].image_id]
    assert [i.image_id for i in analysis.filtered("false positives")] == [records[2].image_id]
    counts = analysis.class_counts()
    total_gt = sum(len(t["labels"]) for t in targets)
    assert sum(c.ground_truth for c in counts.values()) == total_gt
    assert sum(c.missed for c in counts.values()) == len(targets[1]["labels"])
    assert counts["circle"].false_positives == 1  # the stray box, class 1
    assert sum(c.true_positives for c in counts.values()) == total_gt - len(targets[1]["labels"])
    # pycocotools on the same detections: every class found where it was found at all.
    assert set(analysis.evaluation.per_class) == {c.name for c in classes}
    # Raising the score threshold over the stray box's score takes it away: no rerun needed.
    analysis.rematch(0.5, 0.75)
    assert analysis.filtered("false positives") == []


def test_a_split_without_labeled_images_is_explained(demo, tmp_path):
    from engine.detector.build import build_model
    from engine.detector.checkpoint import save_detector

    model = build_model("efficientnet_lite0", num_classes=5, weights="none", min_size=160,
                        max_size=224, representation_size=64)
    classes = [ClassInfo(i + 1, name, i + 1) for i, name in
               enumerate(("circle", "square", "triangle", "cross"))]
    checkpoint = save_detector(tmp_path / "model.pt", model, classes)
    with pytest.raises(ValueError, match="test split has no labeled images"):
        analyse_checkpoint(checkpoint, demo, split="test")
    analysis = analyse_checkpoint(checkpoint, demo, split="val", score_threshold=0.0)
    with Project.open(demo) as project:
        assert len(analysis.images) == len(project.dataset("val"))
