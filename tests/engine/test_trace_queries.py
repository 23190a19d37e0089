"""Questions the inspector asks of a Trace: anchor cells, best anchors, RoIAlign grids, and why
a box was found or missed."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou, roi_align

from engine import build_model
from engine.detector import Inspection
from engine.detector.trace import LevelTrace
from engine.detector.trace_queries import (
    anchor_cell_at,
    anchor_level,
    best_anchors_per_box,
    cell_anchor_indices,
    explain_targets,
    proposal_sampling_grid,
    roi_align_sampling_grid,
)


def test_roi_align_grid_golden_values():
    # A 56 x 28 box at stride 4: 14 x 7 feature cells, so bins of 2 x 1 cells = 8 x 4 px,
    # and two samples per bin and axis at the quarters of each bin.
    grid = roi_align_sampling_grid((0.0, 0.0, 56.0, 28.0), stride=4)
    assert grid.x_edges.tolist() == [0, 8, 16, 24, 32, 40, 48, 56]
    assert grid.y_edges.tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert grid.sample_x.tolist() == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54]
    assert grid.sample_y.tolist() == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27]
    assert grid.sample_points().shape == (196, 2)
    assert grid.sample_points()[:2].tolist() == [[2, 1], [6, 1]]


def test_a_box_smaller_than_a_cell_is_read_over_one_cell():
    # 2 px wide at stride 8: the kernel widens it to one cell (8 px) from x0.
    grid = roi_align_sampling_grid((10.0, 20.0, 12.0, 60.0), stride=8, output_size=2,
                                   sampling_ratio=1)
    assert grid.x_edges.tolist() == [10, 14, 18]
    assert grid.sample_x.tolist() == [12, 16]
    assert grid.y_edges.tolist() == [20, 40, 60]


@pytest.mark.parametrize("box, stride", [
    ((13.0, 7.0, 97.5, 61.25), 4),
    ((40.0, 33.0, 200.0, 90.0), 16),
    ((100.0, 60.0, 104.0, 63.0), 8),
])
def test_the_grid_is_where_torchvision_roi_align_reads(box, stride):
    # On a feature map whose value is the x (or y) feature coordinate, bilinear interpolation is
    # exact, so each pooled bin is the mean coordinate of its samples.
    height, width = 40, 60
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    features = torch.stack([xs, ys])[None]  # (1, 2, H, W)
    rois = torch.tensor([[0.0, *box]], dtype=torch.float64)
    pooled = roi_align(features, rois, (7, 7), 1.0 / stride, 2, aligned=False)[0]
    grid = roi_align_sampling_grid(box, stride)
    mean_x = grid.sample_x.double().view(7, 2).mean(1) / stride
    mean_y = grid.sample_y.double().view(7, 2).mean(1) / stride
    torch.testing.assert_close(pooled[0], mean_x[None, :].expand(7, 7), atol=1e-4, rtol=0)
    torch.testing.assert_close(pooled[1], mean_y[:, None].expand(7, 7), atol=1e-4, rtol=0)


def _level(stride=8, feature_size=(3, 4), sizes=(32.0, 64.0)):
    height, width = feature_size
    count = height * width * len(sizes)
    return LevelTrace(name="P3", stride=(stride, stride), feature_size=feature_size,
                      anchor_sizes=torch.tensor(sizes), anchor_ratios=torch.ones(len(sizes)),
                      anchors=torch.zeros(count, 4), objectness=torch.zeros(count),
                      first_anchor=100)


def test_anchor_cell_at_golden_values():
    level = _level()
    # Resized = original * 2: the point (11, 9) is (22, 18) resized, nearest centres (24, 16):
    # column 3, row 2. Halfway between two centres goes to the later cell.
    assert anchor_cell_at(level, (2.0, 2.0), 11.0, 9.0) == (2, 3)
    assert anchor_cell_at(level, (2.0, 2.0), 10.0, 6.0) == (2, 3)  # (2.5, 1.5) cells
    assert anchor_cell_at(level, (1.0, 1.0), 0.0, 0.0) == (0, 0)
    assert anchor_cell_at(level, (1.0, 1.0), 27.9, 19.9) == (2, 3)
    assert anchor_cell_at(level, (1.0, 1.0), 28.1, 5.0) is None  # beyond half a stride
    assert anchor_cell_at(level, (1.0, 1.0), -4.1, 5.0) is None
    # Cell (1, 2) of a 4-wide grid with 2 anchors per cell: anchors 12 and 13 of the level.
    assert cell_anchor_indices(level, 1, 2).tolist() == [12, 13]


@pytest.fixture(scope="module")
def traced(real_images):
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=4, min_size=224, max_size=320)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    model.eval()
    image = real_images[0]
    target = {"boxes": torch.tensor([[20.0, 30.0, 150.0, 180.0], [200.0, 40.0, 300.0, 120.0]]),
              "labels": torch.tensor([1, 2])}
    return Inspection(model, image, target).run()


def test_best_anchors_agree_with_the_matching(traced):
    best = best_anchors_per_box(traced, k=3)
    assert best.anchors.shape == best.ious.shape == (2, 3)
    assert bool((best.ious[:, :-1] >= best.ious[:, 1:]).all())
    # The matcher's best IoU per box was computed on the resized image; the same to rounding.
    torch.testing.assert_close(best.ious[:, 0], traced.anchor_matching.box_best_iou,
                               atol=1e-3, rtol=0)
    position, within = anchor_level(traced, int(best.anchors[0, 0]))
    level = traced.levels[position]
    torch.testing.assert_close(level.anchors[within],
                               torch.cat([lv.anchors for lv in traced.levels])[best.anchors[0, 0]])
    with pytest.raises(IndexError):
        anchor_level(traced, traced.num_anchors)


def test_proposal_grid_follows_its_level_and_the_resize(traced):
    levels = traced.roi_levels
    index = int(levels.level.argmax())
    pooling = proposal_sampling_grid(traced, index)
    assert pooling.k == int(levels.level[index])
    assert pooling.stride == 2 ** pooling.k
    assert pooling.level_name == levels.level_names[pooling.k - levels.k_min]
    x0, y0, x1, _ = traced.rpn.proposals[index].tolist()
    assert pooling.grid.x_edges[0] == pytest.approx(x0, abs=1e-3)
    assert pooling.grid.y_edges[0] == pytest.approx(y0, abs=1e-3)
    # A proposal wider than one cell ends exactly at its right edge.
    if (x1 - x0) * traced.scale[1] > pooling.stride:
        assert pooling.grid.x_edges[-1] == pytest.approx(x1, abs=1e-3)
    assert pooling.grid.sample_points().shape == (196, 2)


def test_explanations_name_the_stage_each_box_was_lost_at(traced):
    explained = explain_targets(traced)
    assert [e.index for e in explained] == [0, 1]
    for item in explained:
        assert item.stage in {"anchors", "proposals", "classification", "nms", "detected"}
        assert item.best_anchor_iou == pytest.approx(
            float(traced.anchor_matching.box_best_iou[item.index]))
        assert item.reason


def test_a_detection_on_the_box_makes_it_detected_and_nothing_covering_it_loses_it(traced):
    post = traced.postprocess
    first = int(post.final[0])
    detected_box = traced.detections.boxes[0]
    label = int(traced.detections.labels[0])
    far = torch.tensor([0.0, 0.0, 2.0, 2.0])  # a 2 px box in the corner: nothing covers it
    trace = _with_targets(traced, torch.stack([detected_box, far]), torch.tensor([label, label]))
    found, missed = explain_targets(trace)
    assert found.stage == "detected" and found.detection == 0
    assert found.detection_iou == pytest.approx(1.0)
    # Another class's detection on the same spot, if any, is named with its label.
    others = torch.where(traced.detections.labels != label)[0]
    covering = [int(i) for i in others
                if float(box_iou(detected_box[None], traced.detections.boxes[i][None])) >= 0.5]
    assert found.other_detection == (covering[0] if covering else -1)
    if covering:
        assert found.other_class == int(traced.detections.labels[covering[0]])
    assert found.best_candidate == first
    assert missed.stage in {"anchors", "proposals"}
    assert missed.best_proposal_iou < 0.5 and "no proposal covers it" in missed.reason


def test_a_box_whose_class_scores_low_is_lost_in_classification(traced):
    # A target exactly on a proposal, with the class the box head likes least there.
    probs = traced.box_head.class_probs
    proposal = 0
    label = int(probs[proposal, 1:].argmin()) + 1
    box = traced.rpn.proposals[proposal]
    trace = _with_targets(traced, box[None], torch.tensor([label]))
    (item,) = explain_targets(trace)
    covering = box_iou(box[None], traced.rpn.proposals)[0] >= 0.5
    best_prob = float(probs[covering, label].max())
    assert item.class_prob == pytest.approx(best_prob)
    if best_prob < traced.postprocess.score_thresh:
        assert item.stage == "classification"


def _with_targets(trace, boxes, labels):
    import dataclasses

    from engine.detector.trace import AnchorMatching

    anchors = torch.cat([level.anchors for level in trace.levels])
    best = box_iou(boxes, anchors).max(dim=1).values
    matching = AnchorMatching(
        best_iou=trace.anchor_matching.best_iou, matched_box=trace.anchor_matching.matched_box,
        labels=trace.anchor_matching.labels,
        sampled_positive=trace.anchor_matching.sampled_positive,
        sampled_negative=trace.anchor_matching.sampled_negative, box_best_iou=best,
        uncovered=torch.where(best < 0.7)[0], fg_iou_thresh=0.7, bg_iou_thresh=0.3)
    return dataclasses.replace(trace, target_boxes=boxes, target_labels=labels,
                               anchor_matching=matching)
