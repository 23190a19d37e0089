"""The stage funnel on a hand-built image whose twelve boxes are each lost at another stage.

One 100 x 100 image, classes 1 and 2, score threshold 0.5, every box 10 x 10 (COCO "small").
The trace is written out by hand below, stage by stage, so a reader can check each verdict."""

from __future__ import annotations

import torch

from engine.detector.trace import (
    AnchorMatching,
    BoxHeadOutput,
    Detections,
    PostprocessTrace,
    ProposalTrace,
    RoiLevels,
    Trace,
)
from engine.detector.trace_queries import explain_targets
from engine.diagnosis.funnel import FATES, INSPECTOR_STAGE, box_fates, count_fates, size_bucket

T = {  # target boxes, in the order of FATES
    "anchors": (0, 0, 10, 10), "proposals": (20, 0, 30, 10), "pre_nms_top_k": (40, 0, 50, 10),
    "rpn_filter": (60, 0, 70, 10), "rpn_nms": (80, 0, 90, 10), "post_nms_top_k": (0, 20, 10, 30),
    "misclassified": (20, 20, 30, 30), "low_score": (40, 20, 50, 30),
    "box_min_size": (60, 20, 70, 30), "class_nms": (80, 20, 90, 30),
    "detections_cap": (0, 40, 10, 50), "detected": (20, 40, 30, 50),
}
LABELS = [1] * 11 + [2]  # every box class 1 but the detected one, class 2
NEAR_CLASS_NMS = (82, 20, 92, 30)  # IoU 0.67 with its box
SUPPRESSOR = (85, 20, 95, 30)  # IoU 0.54 with NEAR_CLASS_NMS, 0.33 with the box


def _trace() -> Trace:
    # RPN candidates: c0 filtered (invalid), c1 removed by NMS, c2 kept but beyond the post-NMS
    # top-k, c3..c8 the six final proposals p0..p5.
    candidates = [T["rpn_filter"], T["rpn_nms"], T["post_nms_top_k"], T["misclassified"],
                  T["low_score"], T["box_min_size"], T["class_nms"], T["detections_cap"],
                  T["detected"]]
    valid = torch.tensor([False] + [True] * 8)
    kept = torch.tensor([False, False] + [True] * 7)
    rpn = ProposalTrace(
        boxes=torch.tensor(candidates, dtype=torch.float32), logits=torch.zeros(9),
        scores=torch.linspace(0.9, 0.1, 9), levels=torch.zeros(9, dtype=torch.long),
        anchors=torch.arange(9), valid=valid, nms_kept=kept,
        suppressed_by=torch.tensor([-1, 2, -1, -1, -1, -1, -1, -1, -1]),
        final=torch.tensor([3, 4, 5, 6, 7, 8]), pre_nms_top_n=1000, post_nms_top_n=6,
        nms_thresh=0.7, score_thresh=0.0, min_size=1e-3)
    # Box head, per proposal (background, class 1, class 2): p0 says class 2, p1 background,
    # p2..p4 class 1, p5 class 2.
    probs = torch.tensor([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1], [0.1, 0.9, 0.0], [0.1, 0.9, 0.0],
                          [0.1, 0.9, 0.0], [0.1, 0.0, 0.9]])
    # Postprocessing candidates above 0.5: k0 class 2 on p0 (kept, a detection); k1 too small;
    # k2 suppressed by k3 (kept, a detection); k4 kept but beyond the limit of 3 detections;
    # k5 the class-2 detection of the last box.
    post = PostprocessTrace(
        boxes=torch.tensor([T["misclassified"], T["box_min_size"], NEAR_CLASS_NMS, SUPPRESSOR,
                            T["detections_cap"], T["detected"]], dtype=torch.float32),
        scores=torch.tensor([0.8, 0.9, 0.9, 0.95, 0.9, 0.9]),
        labels=torch.tensor([2, 1, 1, 1, 1, 2]), proposal=torch.tensor([0, 2, 3, 3, 4, 5]),
        large_enough=torch.tensor([True, False, True, True, True, True]),
        nms_kept=torch.tensor([True, False, False, True, True, True]),
        suppressed_by=torch.tensor([-1, -1, 3, -1, -1, -1]), final=torch.tensor([3, 5, 0]),
        score_thresh=0.5, nms_thresh=0.5, detections_per_img=3, min_size=1e-2)
    detections = Detections(post.boxes[post.final], post.labels[post.final],
                            post.scores[post.final])
    best_anchor = torch.tensor([0.3] + [0.8] * 11)  # only the first box has no anchor >= 0.7
    empty = torch.zeros(0)
    matching = AnchorMatching(empty, empty.long(), empty.to(torch.int8), empty.long(),
                              empty.long(), best_anchor, torch.tensor([0]), 0.7, 0.3)
    return Trace(
        image_size=(100, 100), resized_size=(100, 100), scale=(1.0, 1.0), backbone="",
        num_classes=3, levels=[], rpn=rpn,
        roi_levels=RoiLevels(empty, empty, empty.long(), 2, 5, 224, 4, []),
        box_head=BoxHeadOutput(probs, torch.zeros((6, 0, 4))), postprocess=post,
        detections=detections, target_boxes=torch.tensor(list(T.values()), dtype=torch.float32),
        target_labels=torch.tensor(LABELS), anchor_matching=matching)


# Every anchor moved by the RPN's deltas: one lands on the pre-NMS top-k box, none on the
# "proposals" box.
DECODED = torch.tensor([T["pre_nms_top_k"], (0, 90, 5, 95)], dtype=torch.float32)


def test_each_box_is_lost_at_the_stage_it_was_built_for():
    fates = box_fates(_trace(), DECODED)
    assert [f.fate for f in fates] == list(FATES)
    assert [f.label for f in fates] == LABELS


def test_the_stages_refine_the_inspectors_explanation_box_by_box():
    trace = _trace()
    explained = explain_targets(trace)
    fates = box_fates(trace, DECODED)
    assert [INSPECTOR_STAGE[f.fate] for f in fates] == [e.stage for e in explained]
    assert [f.reason for f in fates] == [e.reason for e in explained]


def test_without_the_rpn_boxes_of_all_anchors_a_box_no_candidate_covers_is_proposals():
    fates = box_fates(_trace())
    assert fates[2].fate == "proposals"
    # The decoded boxes are asked for only when a box needs them.
    asked = []
    box_fates(_trace(), lambda: asked.append(1) or DECODED)
    assert asked == [1]


def test_counts_sum_to_the_boxes_per_stage_class_and_size():
    fates = box_fates(_trace(), DECODED) * 3  # three images alike: a small split
    counts = count_fates(fates, {1: "circle", 2: "square"})
    assert counts.boxes == 36
    assert counts.total == dict.fromkeys(FATES, 3)
    assert counts.by_class["circle"]["detected"] == 0
    assert counts.by_class["square"] == {**dict.fromkeys(FATES, 0), "detected": 3}
    assert sum(sum(row.values()) for row in counts.by_class.values()) == 36
    assert sum(counts.by_size["small"].values()) == 36
    assert counts.by_inspector_stage == {"anchors": 3, "proposals": 15, "classification": 6,
                                         "nms": 9, "detected": 3}


def test_coco_size_buckets():
    assert size_bucket((0, 0, 31, 33)) == "small"  # 1023 px^2
    # Exactly 32^2 lies on the bound pycocotools includes in both ranges; here it is medium.
    assert size_bucket((0, 0, 32, 32)) == "medium"
    assert size_bucket((0, 0, 96, 96)) == "large"
