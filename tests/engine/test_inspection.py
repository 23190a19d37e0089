"""The Trace: every stage recorded faithfully, reruns equal fresh runs, plain data on disk."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.ops import batched_nms, box_iou

from engine import build_model
from engine.detector import Inspection, inspect, load_trace, save_trace
from engine.detector.recorder import StageRecorder
from engine.detector.tracing import nms_suppressors

SMALL = {"min_size": 224, "max_size": 320}
TARGET = {
    "boxes": torch.tensor([[20.0, 30.0, 150.0, 180.0], [200.0, 40.0, 300.0, 120.0]]),
    "labels": torch.tensor([1, 2]),
}


def _sharpened_model(**kwargs):
    """Random weights with a sharpened classifier, so that detections pass the threshold."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=4, **SMALL, **kwargs)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return _sharpened_model()


@pytest.fixture(scope="module")
def image(real_images):
    return real_images[0]


@pytest.fixture(scope="module")
def traced(model, image):
    inspection = Inspection(model, image, TARGET)
    return inspection, inspection.run()


def test_last_stage_equals_the_models_detections(model, image, traced):
    _, trace = traced
    with torch.inference_mode():
        expected = model([image])[0]
    assert expected["boxes"].shape[0] > 0
    assert torch.equal(trace.detections.boxes, expected["boxes"])
    assert torch.equal(trace.detections.labels, expected["labels"])
    assert torch.equal(trace.detections.scores, expected["scores"])
    post = trace.postprocess
    torch.testing.assert_close(post.boxes[post.final], expected["boxes"], atol=1e-4, rtol=0)
    assert torch.equal(post.labels[post.final], expected["labels"])
    assert torch.equal(post.scores[post.final], expected["scores"])


def test_forward_with_a_recorder_returns_exactly_the_same(model, image):
    with torch.inference_mode():
        plain = model([image])[0]
        recorded = model([image], recorder=StageRecorder())[0]
    for key in plain:
        assert torch.equal(plain[key], recorded[key])


def test_traced_proposals_are_what_the_roi_heads_received(model, image, traced):
    _, trace = traced
    received = []
    handle = model.roi_heads.register_forward_pre_hook(
        lambda _module, args: received.append(args[1][0].clone())
    )
    try:
        with torch.inference_mode():
            model([image])
    finally:
        handle.remove()
    sy, sx = trace.scale
    resized = trace.rpn.proposals * torch.tensor([sx, sy, sx, sy])
    torch.testing.assert_close(resized, received[0], atol=1e-3, rtol=0)
    assert trace.rpn.final.numel() == received[0].shape[0] <= trace.rpn.post_nms_top_n


def test_anchor_counts_are_the_sum_of_h_w_a(traced):
    _, trace = traced
    expected = sum(lvl.feature_size[0] * lvl.feature_size[1] * 3 for lvl in trace.levels)
    assert trace.num_anchors == expected
    # The 320 x 205 photo stays 320 x 205 (max_size 320), padded to 320 x 224: P2 is 80 x 56
    # cells (h, w = 56, 80) at stride 4, ..., P6 (max-pooled from P5's 7 x 10) 4 x 5, its
    # stride the padded size divided by that: 224 // 4, 320 // 5.
    assert trace.resized_size == (205, 320) and trace.scale == (1.0, 1.0)
    assert [lvl.feature_size for lvl in trace.levels] == [(56, 80), (28, 40), (14, 20), (7, 10),
                                                         (4, 5)]
    assert [lvl.stride for lvl in trace.levels] == [(4, 4), (8, 8), (16, 16), (32, 32), (56, 64)]
    assert [lvl.name for lvl in trace.levels] == ["P2", "P3", "P4", "P5", "P6"]
    p2 = trace.levels[0]
    assert p2.anchor_sizes.tolist() == [32.0] * 3 and p2.anchor_ratios.tolist() == [0.5, 1, 2]
    assert p2.objectness.shape == (p2.num_anchors,)
    assert [lvl.first_anchor for lvl in trace.levels][:2] == [0, 56 * 80 * 3]


def test_anchors_in_original_pixels(traced):
    _, trace = traced
    sy, sx = trace.scale
    # The first P2 anchor, ratio 0.5 size 32, centred on (0, 0): (-23, -11, 23, 11) resized.
    first = trace.levels[0].anchors[0] * torch.tensor([sx, sy, sx, sy])
    torch.testing.assert_close(first, torch.tensor([-23.0, -11.0, 23.0, 11.0]))


def test_level_assignment_matches_the_fpn_equation(traced):
    _, trace = traced
    sy, sx = trace.scale
    levels = trace.roi_levels
    for box, sqrt_area, level in list(zip(trace.rpn.proposals, levels.sqrt_area,
                                          levels.level))[:50]:
        w, h = float(box[2] - box[0]) * sx, float(box[3] - box[1]) * sy
        assert float(sqrt_area) == pytest.approx(math.sqrt(w * h), rel=1e-4)
        by_hand = min(max(math.floor(4 + math.log2(math.sqrt(w * h) / 224) + 1e-6), 2), 5)
        assert int(level) == by_hand
    assert (levels.k_min, levels.k_max, levels.level_names) == (2, 5, ["P2", "P3", "P4", "P5"])


def test_anchors_and_levels_on_an_image_the_transform_resizes(model, image):
    """A 320 x 240 image with min_size 224: the short side 240 -> 224, so the scale is
    224 / 240 = 0.9333 and the width floor(320 * 0.9333) = 298 (sx = 298 / 320 = 0.93125).
    Anchors are laid out in the resized image and shown in the original's pixels; the FPN
    level equation sees resized pixels."""
    photo = torch.nn.functional.interpolate(image[None], size=(240, 320), mode="bilinear",
                                            align_corners=False)[0]
    sy, sx = 224 / 240, 298 / 320
    # The P4 anchor of size 128, ratio 1 (cell anchor 1 of 3) on the cell at row 5, column 7
    # (stride 16, centre (112, 80)) is (48, 16, 176, 144) in the resized image. P4 is 14 x 20
    # cells; before it come P2's 56 * 80 * 3 and P3's 28 * 40 * 3 anchors: its index is
    # 13440 + 3360 + (5 * 20 + 7) * 3 + 1 = 17122. A target box exactly on it, in original
    # pixels (48 / sx, 16 / sy, 176 / sx, 144 / sy):
    on_anchor = torch.tensor([[48 / sx, 16 / sy, 176 / sx, 144 / sy]])
    trace = inspect(model, photo, {"boxes": on_anchor, "labels": torch.tensor([1])})

    assert trace.image_size == (240, 320) and trace.resized_size == (224, 298)
    assert trace.scale == pytest.approx((0.9333333, 0.93125))
    # Padded to 224 x 320: the same grid as at scale 1, strides in resized pixels.
    assert [lvl.feature_size for lvl in trace.levels][:3] == [(56, 80), (28, 40), (14, 20)]
    assert [lvl.stride for lvl in trace.levels][:3] == [(4, 4), (8, 8), (16, 16)]
    # The first P2 anchor, (-23, -11, 23, 11) resized, is 320 / 298 wider and 240 / 224 taller
    # in the original: (-24.698, -11.786, 24.698, 11.786).
    torch.testing.assert_close(trace.levels[0].anchors[0],
                               torch.tensor([-24.698, -11.786, 24.698, 11.786]),
                               atol=1e-3, rtol=0)
    p4 = trace.levels[2]
    assert p4.first_anchor + 322 == 17122
    torch.testing.assert_close(p4.anchors[322], torch.tensor([51.544, 17.143, 188.993, 154.286]),
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(p4.anchors[322], on_anchor[0])
    # Matching ran in resized pixels, on the box scaled there: IoU 1 with that very anchor.
    matching = trace.anchor_matching
    assert float(matching.box_best_iou[0]) == pytest.approx(1.0, abs=1e-5)
    assert int(matching.labels[17122]) == 1 and int(matching.matched_box[17122]) == 0
    assert float(matching.best_iou[17122]) == pytest.approx(1.0, abs=1e-5)

    # Level assignment: k = floor(4 + log2(sqrt(w h) / 224)) with w and h in resized pixels,
    # i.e. the original sqrt area times sqrt(sx * sy) = 0.93229.
    proposals, levels = trace.rpn.proposals, trace.roi_levels
    width, height = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    original_side = torch.sqrt(width * height)
    torch.testing.assert_close(levels.sqrt_area, original_side * math.sqrt(sx * sy),
                               rtol=1e-4, atol=1e-3)
    for side, level in zip(levels.sqrt_area.tolist(), levels.level.tolist()):
        assert level == min(max(math.floor(4 + math.log2(side / 224) + 1e-6), 2), 5)
    # Proposals of original sqrt area 112 to 120.1 would be P3 in original pixels (112 / 224
    # is one level below 224), but are 104.4 to 112 resized: P2. There are such proposals.
    boundary = (original_side >= 112) & (original_side < 112 / math.sqrt(sx * sy))
    assert int(boundary.sum()) > 0
    assert set(levels.level[boundary].tolist()) == {2}


def test_anchor_matching_and_coverage(model, image):
    # One box exactly on an anchor (a P4 anchor, size 128 ratio 1, centred at (96, 96) in the
    # resized image) and one box too small for any anchor to reach IoU 0.7.
    probe = inspect(model, image)
    sy, sx = probe.scale
    exact = torch.tensor([32.0 / sx, 32.0 / sy, 160.0 / sx, 160.0 / sy])
    tiny = torch.tensor([250.0, 150.0, 254.0, 153.0])
    target = {"boxes": torch.stack([exact, tiny]), "labels": torch.tensor([1, 3])}
    trace = inspect(model, image, target)
    matching = trace.anchor_matching
    assert matching.box_best_iou[0] == pytest.approx(1.0, abs=1e-4)
    assert matching.box_best_iou[1] < 0.7
    assert matching.uncovered.tolist() == [1]
    assert set(matching.labels.unique().tolist()) <= {-1, 0, 1}
    positives = torch.where(matching.labels == 1)[0]
    # Every positive reaches 0.7, or is the best anchor of the tiny box (low-quality match).
    assert bool(((matching.best_iou[positives] >= 0.7)
                 | (matching.matched_box[positives] == 1)).all())
    assert int(matching.sampled_positive.sum()) == positives.numel() <= 128
    assert int(matching.sampled_positive.sum() + matching.sampled_negative.sum()) == 256
    assert not bool((matching.sampled_negative & (matching.labels != 0)).any())


def test_roi_sampling_labels(traced):
    _, trace = traced
    sampling = trace.roi_sampling
    proposals = trace.rpn.final.numel()
    assert int(sampling.is_target.sum()) == 2 and not bool(sampling.is_target[:proposals].any())
    # The target boxes themselves are foreground of their own class.
    assert sampling.labels[proposals:].tolist() == [1, 2]
    foreground = sampling.labels > 0
    assert bool((sampling.best_iou[foreground] >= 0.5).all())
    assert bool((sampling.best_iou[sampling.labels == 0] < 0.5).all())
    assert 0 < int(sampling.sampled.sum()) <= 512


def test_negative_image_traces(model, image):
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    trace = inspect(model, image, empty)
    assert int((trace.anchor_matching.labels == 0).sum()) == trace.num_anchors
    assert int(trace.anchor_matching.sampled_negative.sum()) == 256
    assert trace.anchor_matching.uncovered.numel() == 0
    assert int((trace.roi_sampling.labels > 0).sum()) == 0


def test_nms_suppressors_are_the_kept_box_that_removed_each(traced):
    _, trace = traced
    for stage, groups in ((trace.rpn, trace.rpn.levels), (trace.postprocess,
                                                          trace.postprocess.labels)):
        suppressed = torch.where(stage.suppressed_by >= 0)[0]
        assert suppressed.numel() > 0
        by = stage.suppressed_by[suppressed]
        assert bool(stage.nms_kept[by].all()) and not bool(stage.nms_kept[suppressed].any())
        assert torch.equal(groups[by], groups[suppressed])
        assert bool((stage.scores[by] >= stage.scores[suppressed]).all())
        iou = box_iou(stage.boxes[suppressed], stage.boxes[by]).diagonal()
        # Boxes are in original pixels here; NMS ran in resized pixels (IoU is scale-free up
        # to the rounding of the rescale).
        assert bool((iou > stage.nms_thresh - 1e-4).all())


def test_nms_suppressors_golden():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    groups = torch.tensor([0, 0, 0, 1])
    kept = torch.tensor([0, 2, 3])  # box 1 (IoU 0.82 with box 0) was removed
    result = nms_suppressors(boxes, groups, torch.arange(4), kept, 0.5)
    assert result.tolist() == [-1, 0, -1, -1]


def _all_pairs_suppressors(boxes, groups, considered, kept, iou_thresh):
    """The first implementation, kept as the reference: IoU of every removed box with every
    kept box, masked to the same group; the first kept overlap in NMS order."""
    suppressor = torch.full((boxes.shape[0],), -1, dtype=torch.int64)
    is_kept = torch.zeros(boxes.shape[0], dtype=torch.bool)
    is_kept[kept] = True
    removed = considered[~is_kept[considered]]
    if removed.numel() == 0 or kept.numel() == 0:
        return suppressor
    overlaps = box_iou(boxes[removed], boxes[kept]) > iou_thresh
    overlaps &= groups[removed][:, None] == groups[kept][None, :]
    found = overlaps.any(dim=1)
    first = overlaps.to(torch.uint8).argmax(dim=1)
    suppressor[removed[found]] = kept[first[found]]
    return suppressor


@pytest.mark.parametrize("seed", range(6))
def test_nms_suppressors_equal_the_all_pairs_reference(seed, monkeypatch):
    """Group by group, in blocks, gives exactly what all pairs give: on clustered random
    boxes (many overlaps) in 1 to 90 groups, for batched NMS's kept boxes and for any kept
    subset in any order."""
    generator = torch.Generator().manual_seed(seed)
    count = 3000
    centres = torch.rand(20, 2, generator=generator) * 800
    xy = centres[torch.randint(20, (count,), generator=generator)] + torch.randn(
        count, 2, generator=generator) * 8
    wh = torch.rand(count, 2, generator=generator) * 40 + 60
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], dim=1)
    groups = torch.randint((1, 5, 90)[seed % 3], (count,), generator=generator)
    scores = torch.rand(count, generator=generator)
    considered = torch.where(torch.rand(count, generator=generator) < 0.9)[0]
    # Small blocks, so that groups are split into several chunks too.
    monkeypatch.setattr("engine.detector.tracing._SUPPRESSOR_BLOCK", 5000)
    for thresh in (0.3, 0.5, 0.7):
        kept = considered[batched_nms(boxes[considered], scores[considered],
                                      groups[considered], thresh)]
        expected = _all_pairs_suppressors(boxes, groups, considered, kept, thresh)
        assert int((expected >= 0).sum()) > 100
        assert torch.equal(nms_suppressors(boxes, groups, considered, kept, thresh), expected)
    shuffled = considered[torch.randperm(considered.numel(), generator=generator)][:1000]
    expected = _all_pairs_suppressors(boxes, groups, considered, shuffled, 0.5)
    assert torch.equal(nms_suppressors(boxes, groups, considered, shuffled, 0.5), expected)


def test_roi_rerun_equals_a_fresh_run_and_skips_the_rpn(model, image):
    inspection = Inspection(model, image)
    inspection.run()
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1))
             for m in (model.backbone, model.rpn.head, model.roi_heads.box_head)]
    try:
        rerun = inspection.run(box_score_thresh=0.3, box_nms_thresh=0.3, box_detections_per_img=5)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []
    fresh = inspect(model, image, box_score_thresh=0.3, box_nms_thresh=0.3,
                    box_detections_per_img=5)
    assert 0 < rerun.detections.boxes.shape[0] <= 5
    assert torch.equal(rerun.detections.boxes, fresh.detections.boxes)
    assert torch.equal(rerun.detections.scores, fresh.detections.scores)
    assert rerun.settings["box_score_thresh"] == 0.3


def test_rpn_rerun_equals_a_fresh_run_without_the_backbone(model, image):
    inspection = Inspection(model, image)
    inspection.run()
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1))
             for m in (model.backbone, model.rpn.head)]
    try:
        rerun = inspection.run(rpn_nms_thresh=0.5, rpn_post_nms_top_n=300,
                               rpn_pre_nms_top_n=500)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []
    fresh = inspect(model, image, rpn_nms_thresh=0.5, rpn_post_nms_top_n=300,
                    rpn_pre_nms_top_n=500)
    assert rerun.rpn.final.numel() == min(300, int(rerun.rpn.nms_kept.sum()))
    assert rerun.rpn.boxes.shape[0] <= 5 * 500
    assert torch.equal(rerun.rpn.final, fresh.rpn.final)
    torch.testing.assert_close(rerun.rpn.proposals, fresh.rpn.proposals)
    # The box head ran on other batches: equal up to float rounding.
    torch.testing.assert_close(rerun.box_head.class_probs, fresh.box_head.class_probs,
                               atol=1e-5, rtol=0)
    assert torch.equal(rerun.detections.labels, fresh.detections.labels)
    torch.testing.assert_close(rerun.detections.boxes, fresh.detections.boxes, atol=1e-3, rtol=0)
    # And back: the original settings give the original trace again.
    again = inspection.run()
    assert again.rpn.final.numel() == inspection.settings()[0].post_nms_top_n


def test_precomputed_box_head_serves_rpn_reruns(model, image):
    inspection = Inspection(model, image)
    inspection.run(rpn_post_nms_top_n=10)
    computed = inspection.precompute_box_head(chunk=100)
    assert computed > 0
    calls = []
    hook = model.roi_heads.box_head.register_forward_hook(lambda *_: calls.append(1))
    try:
        rerun = inspection.run(rpn_nms_thresh=0.6)
    finally:
        hook.remove()
    assert calls == []
    fresh = inspect(model, image, rpn_nms_thresh=0.6)
    torch.testing.assert_close(rerun.box_head.class_probs, fresh.box_head.class_probs,
                               atol=1e-5, rtol=0)
    assert inspection.precompute_box_head(stop=lambda: True) == 0


def test_box_head_reruns_pool_in_parallel_with_the_same_numbers(model, image):
    inspection = Inspection(model, image)
    trace = inspection.run()
    proposals = trace.rpn.boxes[trace.rpn.valid][:200] * torch.tensor(
        [trace.scale[1], trace.scale[0]] * 2)  # back to resized pixels, as the head sees them
    assert proposals.shape[0] >= 100  # enough to be split between threads
    with torch.inference_mode():
        parallel = inspection._predict(proposals)
        features = inspection.outputs.features.maps[: model.pooled_levels]
        serial = model.roi_heads.predict(features, [proposals])
    assert torch.equal(parallel[0], serial[0]) and torch.equal(parallel[1], serial[1])


def test_unknown_setting_is_refused(model, image):
    with pytest.raises(ValueError, match="box_nms_thresh"):
        inspect(model, image, box_nms=0.3)


def test_trace_saves_and_loads_as_plain_data(traced, tmp_path):
    _, trace = traced
    path = save_trace(trace, tmp_path / "trace.pt")
    loaded = load_trace(path)  # weights_only=True inside
    assert loaded.summary() == trace.summary()
    assert torch.equal(loaded.levels[2].anchors, trace.levels[2].anchors)
    assert torch.equal(loaded.anchor_matching.labels, trace.anchor_matching.labels)
    assert loaded.roi_levels.level_names == trace.roi_levels.level_names
    assert loaded.scale == trace.scale and isinstance(loaded.levels[0].stride, tuple)


def test_summary_counts(traced):
    _, trace = traced
    summary = trace.summary()
    rpn = summary["rpn"]
    assert rpn["valid"] - rpn["after_nms"] == rpn["suppressed"]
    assert sum(level["proposals"] for level in summary["levels"]) == rpn["proposals"]
    assert sum(summary["roi_levels"].values()) == rpn["proposals"]
    assert summary["postprocess"]["detections"] == summary["detections"]
    # The second target box, 100 x 80 at (200, 40), is best matched by the P3 anchor of size 64
    # and ratio 0.5 (90 x 46 after rounding) centred at (248, 64): (203, 41, 293, 87) lies
    # inside the box, IoU = 90 * 46 / (100 * 80) = 0.5175 < 0.7: the box is uncovered.
    assert summary["anchor_matching"]["uncovered_boxes"] == [1]
    assert float(trace.anchor_matching.box_best_iou[1]) == pytest.approx(4140 / 8000)


def test_traced_proposals_and_detections_equal_torchvision(real_images):
    torch.manual_seed(0)
    theirs = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5, **SMALL)
    with torch.no_grad():
        theirs.roi_heads.box_predictor.cls_score.weight.mul_(30)
    ours = build_model("resnet50", num_classes=5, fold_frozen_batchnorm=False,
                       channels_last=False, **SMALL)
    ours.load_state_dict(theirs.state_dict())
    theirs.eval()
    received = []
    theirs.roi_heads.register_forward_pre_hook(lambda _m, args: received.append(args[1][0]))
    image = real_images[1]
    with torch.inference_mode():
        expected = theirs([image])[0]
    trace = inspect(ours, image)
    sy, sx = trace.scale
    resized = trace.rpn.proposals * torch.tensor([sx, sy, sx, sy])
    torch.testing.assert_close(resized, received[0], atol=1e-3, rtol=0)
    assert expected["boxes"].shape[0] > 0
    assert torch.equal(trace.detections.labels, expected["labels"])
    torch.testing.assert_close(trace.detections.boxes, expected["boxes"], atol=1e-3, rtol=0)
    torch.testing.assert_close(trace.detections.scores, expected["scores"], atol=1e-5, rtol=0)
