"""What each stage draws and what a click on it selects, read as data (no Qt)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from app.inspector.scene import score_colour
from app.inspector.stages import (
    STAGES,
    Classes,
    Selection,
    StageContext,
    ViewOptions,
    available_stages,
    build_scene,
    neighbour,
    select_at,
)
from engine.data.demo import CLASSES
from engine.detector.trace_queries import anchor_cell_at, explain_targets

NAMES = Classes({0: "background", **{i + 1: name for i, name in enumerate(CLASSES)}})


def _ctx(trace, **changes):
    return dataclasses.replace(StageContext(trace, NAMES), **changes)


def test_every_stage_draws_with_its_number_in_the_caption(demo_trace):
    assert [s.key for s in available_stages(demo_trace)] == [s.key for s in STAGES]
    for stage in STAGES:
        scene = build_scene(stage.key, _ctx(demo_trace))
        assert scene.caption[0].startswith(f"{stage.number} · "), stage.key
        assert scene.legend, stage.key


def test_without_boxes_the_matching_stage_is_skipped(demo_trace):
    plain = dataclasses.replace(demo_trace, target_boxes=None, target_labels=None,
                                anchor_matching=None, roi_sampling=None)
    keys = [s.key for s in available_stages(plain)]
    assert "anchor-matching" not in keys
    assert neighbour("anchors", plain, 1) == "proposals-before-nms"
    assert neighbour("anchors", plain, -1) == "anchors"
    assert neighbour("detections", plain, 1) == "detections"
    assert "no labelled boxes" in build_scene("detections", _ctx(plain)).caption[1]


def test_anchors_show_the_clicked_cells_anchors_centred_on_it(demo_trace):
    level = demo_trace.levels[1]
    stride = level.stride[1]
    # The default: the cell whose best anchor the RPN likes most.
    scene = build_scene("anchors", _ctx(demo_trace, options=ViewOptions(level=1)))
    best = torch.sigmoid(level.objectness).view(*level.feature_size, -1).amax(2)
    row, col = divmod(int(best.flatten().argmax()), level.feature_size[1])
    assert scene.layer("cell centre").points.tolist() == [[col * stride, row * stride]]
    assert f"{level.name} cell (row {row}, column {col})" in scene.info
    # A click picks the nearest anchor centre, and its three anchors are drawn around it.
    ctx = _ctx(demo_trace, options=ViewOptions(level=1))
    selection = select_at("anchors", ctx, 101.0, 43.0)
    assert (selection.row, selection.col) == anchor_cell_at(level, demo_trace.scale, 101, 43)
    assert (selection.row, selection.col) == (5, 13)  # stride 8 at scale 1
    scene = build_scene("anchors", dataclasses.replace(ctx, selection=selection))
    for k in range(level.anchor_sizes.numel()):
        x0, y0, x1, y1 = scene.layer(f"anchor {k}").boxes[0]
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == (13 * stride, 5 * stride)
        # Anchor corners are rounded to whole pixels, as torchvision does.
        assert math.sqrt((x1 - x0) * (y1 - y0)) == pytest.approx(float(level.anchor_sizes[k]),
                                                                 abs=1.0)
    assert [entry.text.split(",")[0] for entry in scene.legend[:3]] == ["64 px"] * 3
    assert scene.heatmap.values.shape == level.feature_size


def test_matching_draws_the_positives_and_counts_what_it_does_not_draw(demo_trace):
    matching = demo_trace.anchor_matching
    scene = build_scene("anchor-matching", _ctx(demo_trace))
    positives = sum(scene.count(f"positive {row}") for row in range(5))
    assert positives == int((matching.labels == 1).sum())
    assert scene.count("ignored") == 0 and scene.count("negative") == 0
    assert f"{int((matching.labels == 0).sum())} negative" in scene.caption[0]
    sampled = build_scene("anchor-matching",
                          _ctx(demo_trace, options=ViewOptions(sampled_only=True)))
    assert sampled.count("negative") == int(matching.sampled_negative.sum())
    assert sum(sampled.count(f"positive {r}") for r in range(5)) == int(
        matching.sampled_positive.sum())
    ignored = build_scene("anchor-matching", _ctx(demo_trace, options=ViewOptions(
        show_ignored=True, max_boxes=25)))
    assert ignored.count("ignored") == min(25, int((matching.labels == -1).sum()))
    assert scene.count("best anchors") == 15  # 3 for each of the 5 boxes


def test_clicking_a_box_lists_its_best_anchors(demo_trace):
    x0, y0, x1, y1 = demo_trace.target_boxes[0].tolist()
    ctx = _ctx(demo_trace)
    selection = select_at("anchor-matching", ctx, (x0 + x1) / 2, (y0 + y1) / 2 + 0.3)
    assert selection.kind in {"target", "anchor"}
    scene = build_scene("anchor-matching",
                        dataclasses.replace(ctx, selection=Selection("target", 0)))
    best = f"{float(demo_trace.anchor_matching.box_best_iou[0]):.3f}"
    assert best in scene.info and "its best anchors" in scene.info


def test_a_suppressed_proposal_names_its_suppressor_and_their_iou(demo_trace):
    rpn = demo_trace.rpn
    suppressed = int(torch.where(rpn.suppressed_by >= 0)[0][0])
    suppressor = int(rpn.suppressed_by[suppressed])
    scene = build_scene("proposals-nms",
                        _ctx(demo_trace, selection=Selection("rpn", suppressed)))
    assert scene.layer("suppressor").boxes.tolist() == [rpn.boxes[suppressor].tolist()]
    assert f"suppressed by candidate {suppressor}" in scene.info
    iou = float(scene.info.split("IoU ")[1].split(" ")[0])
    assert rpn.nms_thresh < iou <= 1.0
    # Hiding the suppressed ones removes them from the picture and from clicks.
    hidden = _ctx(demo_trace, options=ViewOptions(show_suppressed=False))
    assert build_scene("proposals-nms", hidden).count("suppressed") == 0


def test_a_clicked_proposal_shows_its_level_equation_and_roi_align_grid(demo_trace):
    levels = demo_trace.roi_levels
    index = int(torch.argmax(levels.sqrt_area))  # the largest proposal: clicked inside
    x0, y0, _, y1 = demo_trace.rpn.proposals[index].tolist()
    ctx = _ctx(demo_trace, options=ViewOptions(max_boxes=10_000))
    selection = select_at("roi-levels", ctx, x0 + 1.0, (y0 + y1) / 2)
    assert selection.kind == "proposal"
    scene = build_scene("roi-levels", dataclasses.replace(ctx, selection=Selection(
        "proposal", index)))
    k = int(levels.level[index])
    name = levels.level_names[k - levels.k_min]
    assert f"pooled from {name}" in scene.info
    assert f"√(w·h) = {float(levels.sqrt_area[index]):.1f}" in scene.info
    assert scene.count("roi bins") == 16 and scene.count("roi samples") == 196
    assert scene.chart.labels == levels.level_names
    assert sum(scene.chart.values) == demo_trace.rpn.final.numel()
    assert scene.chart.highlight == k - levels.k_min


def test_only_the_best_boxes_are_drawn_and_the_caption_says_so(demo_trace):
    total = demo_trace.rpn.final.numel()
    assert total > 10
    scene = build_scene("proposals", _ctx(demo_trace, options=ViewOptions(max_boxes=10)))
    drawn = sum(scene.count(layer.name) for layer in scene.layers)
    assert drawn == 10 and "(best 10 drawn)" in scene.caption[0]
    # The ten are the first proposals (the best), coloured by objectness.
    scores = demo_trace.rpn.scores[demo_trace.rpn.final[:10]]
    colours = {layer.colour for layer in scene.layers if len(layer.boxes)}
    assert {score_colour((min(int(s * 10), 9) + 0.5) / 10) for s in scores} == colours


def test_class_scores_chart_is_the_proposals_softmax(demo_trace):
    scene = build_scene("class-scores", _ctx(demo_trace, selection=Selection("proposal", 3)))
    probs = demo_trace.box_head.class_probs[3]
    assert scene.chart.values == pytest.approx(probs.tolist())
    assert scene.chart.labels == ["bg", *CLASSES]
    assert scene.chart.highlight == int(probs[1:].argmax()) + 1


def test_score_threshold_and_nms_stages_follow_the_postprocess_trace(demo_trace):
    post = demo_trace.postprocess
    ctx = _ctx(demo_trace, options=ViewOptions(max_boxes=100_000, show_suppressed=True))
    scene = build_scene("score-threshold", ctx)
    drawn = sum(scene.count(f"candidates {name}") for name in CLASSES)
    assert drawn + scene.count("too small") == post.scores.numel()
    nms = build_scene("class-nms", ctx)
    assert sum(nms.count(f"kept {name}") for name in CLASSES) == post.final.numel()
    assert nms.count("suppressed") == int((post.suppressed_by >= 0).sum())


def test_detections_explain_each_labelled_box(demo_trace):
    scene = build_scene("detections", _ctx(demo_trace))
    explained = explain_targets(demo_trace)
    found = sum(e.stage == "detected" for e in explained)
    assert f"{found} of {len(explained)} found" in scene.caption[0]
    assert scene.count("ground truth found") + scene.count("ground truth missed") == 5
    for item in explained:
        assert item.reason.split(":")[0] in scene.info
    one = build_scene("detections", _ctx(demo_trace, selection=Selection("target", 2)))
    assert explained[2].reason.split(" (")[0] in one.info
    assert one.layer("selected").boxes.tolist() == [demo_trace.target_boxes[2].tolist()]


def test_a_selection_from_an_older_trace_is_ignored_not_an_error(demo_trace):
    stale = Selection("candidate", 10**6)
    for key in ("score-threshold", "class-nms"):
        scene = build_scene(key, _ctx(demo_trace, selection=stale))
        assert "Click" in scene.info
    assert np.asarray(build_scene("roi-levels", _ctx(
        demo_trace, selection=Selection("proposal", 10**6))).layer("selected").boxes).shape == (
        1, 4)


def test_with_a_selection_everything_else_is_dimmed(demo_trace):
    plain = build_scene("class-scores", _ctx(demo_trace, selection=None))
    assert plain.layer("proposals").alpha < 1  # the default selection: the most confident
    chosen = build_scene("class-scores", _ctx(demo_trace, selection=Selection("proposal", 1)))
    assert chosen.layer("selected").alpha == 1.0
    assert chosen.layer("proposals").alpha == pytest.approx(0.3 * 0.3)
    nothing = build_scene("proposals", _ctx(demo_trace))
    assert {layer.alpha for layer in nothing.layers} == {1.0}


@pytest.mark.parametrize("key", ["proposals-nms", "class-nms"])
def test_nms_stages_draw_survivors_first_within_the_limit_suppressed_on_demand(demo_trace, key):
    stage_trace = demo_trace.rpn if key == "proposals-nms" else demo_trace.postprocess
    suppressed = int((stage_trace.suppressed_by >= 0).sum())
    assert suppressed > 0
    plain = build_scene(key, _ctx(demo_trace))  # the defaults: survivors only
    assert plain.count("suppressed") == 0
    assert "tick Show suppressed" in plain.caption[-1]
    limit = 40
    for show in (False, True):
        scene = build_scene(key, _ctx(demo_trace, options=ViewOptions(max_boxes=limit,
                                                                      show_suppressed=show)))
        drawn = sum(len(layer.boxes) for layer in scene.layers
                    if layer.name not in ("selected", "suppressor", "removed by selected"))
        assert drawn <= limit, "the draw limit covers every kind of box together"
    everything = build_scene(key, _ctx(demo_trace, options=ViewOptions(
        max_boxes=100_000, show_suppressed=True)))
    assert everything.count("suppressed") == suppressed
