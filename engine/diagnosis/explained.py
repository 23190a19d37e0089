"""The parts of a Trace that explaining a box reads, built cheaply from the stage outputs.

:func:`engine.detector.trace_queries.explain_targets` (the inspector's per-box answer) reads a
Trace's target boxes, the anchor matching's best IoU per box, the RPN's candidates and
proposals, the box head's class probabilities, the postprocessing candidates and the
detections. A full Trace also holds every anchor, the ROI sampling, every class's refined box
and the NMS suppressor of every removed candidate: most of its cost, none of which the
explanation needs. :func:`explainable_trace` builds a Trace with the same values in the fields
the explanation reads and leaves the others empty, so that a split's boxes are explained by
the inspector's own function at a fraction of the cost. Two fields are filled only where the
explanation can look: ``postprocess.suppressed_by`` for removed candidates of a target's class
that overlap a target box (IoU >= 0.4 in resized pixels, a superset of the 0.5 the
explanation uses), ``rpn.suppressed_by`` not at all (-1). A test compares the explanations with
those of the inspector's full Trace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, clip_boxes_to_image

from ..detector.model import DetectorOutputs
from ..detector.trace import (
    AnchorMatching,
    BoxHeadOutput,
    Detections,
    PostprocessTrace,
    ProposalTrace,
    RoiLevels,
    Trace,
)
from ..detector.tracing import nms_suppressors
from ..detector.transform import resize_boxes

_LOOK_IOU = 0.4  # removed candidates overlapping a target this much get their suppressor


def resized_targets(outputs: DetectorOutputs, boxes: torch.Tensor) -> torch.Tensor:
    """Target boxes (M, 4) in the original image's pixels -> the resized image's, on the
    outputs' device."""
    batch = outputs.batch
    device = batch.tensors.device
    return resize_boxes(boxes.to(device).float().reshape(-1, 4), batch.original_sizes[0],
                        batch.image_sizes[0])


def best_anchor_ious(outputs: DetectorOutputs, boxes: torch.Tensor) -> torch.Tensor:
    """(M,) each target box's best IoU with any anchor, in resized pixels as the RPN's matcher
    computes it (the anchor matching's ``box_best_iou``)."""
    if boxes.numel() == 0:
        return torch.zeros(0)
    anchors = torch.cat(outputs.features.anchors)
    return box_iou(resized_targets(outputs, boxes), anchors).max(dim=1).values.cpu()


def decoded_boxes(outputs: DetectorOutputs) -> torch.Tensor:
    """(R, 4) image 0's anchors moved by the RPN's deltas (all of them, before any top-k), in
    the original image's pixels: what :func:`engine.diagnosis.funnel.box_fates` reads to tell a
    box cut by the pre-NMS top-k from one the RPN never regressed to."""
    batch = outputs.batch
    decoded = outputs.rpn.head.decoded[0].reshape(-1, 4).float()
    return resize_boxes(decoded, batch.image_sizes[0], batch.original_sizes[0]).cpu()


def explainable_trace(
    outputs: DetectorOutputs,
    target: dict[str, torch.Tensor],
    anchor_iou: torch.Tensor,
    fg_iou_thresh: float,
    bg_iou_thresh: float,
    settings: dict[str, float] | None = None,
) -> Trace:
    """A Trace of image 0 of ``outputs`` with what :func:`explain_targets` reads (see the
    module docstring). ``target`` ``{"boxes": (M, 4) original pixels, "labels": (M,)}``;
    ``anchor_iou`` (M,) from :func:`best_anchor_ious`; the thresholds are the RPN matcher's."""
    batch = outputs.batch
    resized, original = batch.image_sizes[0], batch.original_sizes[0]

    def to_original(boxes: torch.Tensor) -> torch.Tensor:
        scaled = resize_boxes(boxes.reshape(-1, 4), resized, original)
        return clip_boxes_to_image(scaled, original).cpu()

    rpn, stages = outputs.rpn, outputs.rpn.stages[0]
    count = stages.boxes.shape[0]
    valid = torch.zeros(count, dtype=torch.bool)
    valid[stages.valid.cpu()] = True
    rpn_kept = torch.zeros(count, dtype=torch.bool)
    rpn_kept[stages.nms_kept.cpu()] = True
    proposal_trace = ProposalTrace(
        boxes=to_original(stages.boxes), logits=rpn.candidates.logits[0].float().cpu(),
        scores=stages.scores.float().cpu(), levels=rpn.candidates.levels[0].cpu(),
        anchors=rpn.candidates.anchor_indices[0].cpu(), valid=valid, nms_kept=rpn_kept,
        suppressed_by=torch.full((count,), -1, dtype=torch.int64), final=stages.final.cpu(),
        pre_nms_top_n=rpn.settings.pre_nms_top_n, post_nms_top_n=rpn.settings.post_nms_top_n,
        nms_thresh=float(rpn.settings.nms_thresh), score_thresh=float(rpn.settings.score_thresh),
        min_size=float(rpn.settings.min_size),
    )
    probs = F.softmax(outputs.roi.head.class_logits.float(), dim=-1).cpu()
    detections = outputs.detections[0]
    empty = torch.zeros(0)
    return Trace(
        image_size=tuple(original), resized_size=tuple(resized),
        scale=(resized[0] / original[0], resized[1] / original[1]),
        backbone="", num_classes=int(probs.shape[1]), levels=[], rpn=proposal_trace,
        roi_levels=RoiLevels(empty, empty, empty.long(), 0, 0, 0, 0, []),
        box_head=BoxHeadOutput(probs, torch.zeros((probs.shape[0], 0, 4))),
        postprocess=_postprocess(outputs, target, to_original),
        detections=Detections(detections["boxes"].cpu(), detections["labels"].cpu(),
                              detections["scores"].cpu()),
        settings=dict(settings or {}),
        target_boxes=target["boxes"].float().cpu(), target_labels=target["labels"].cpu(),
        anchor_matching=AnchorMatching(
            best_iou=empty, matched_box=empty.long(), labels=empty.to(torch.int8),
            sampled_positive=empty.long(), sampled_negative=empty.long(),
            box_best_iou=anchor_iou.float().cpu(),
            uncovered=torch.where(anchor_iou < fg_iou_thresh)[0].cpu(),
            fg_iou_thresh=fg_iou_thresh, bg_iou_thresh=bg_iou_thresh),
    )


def _postprocess(outputs: DetectorOutputs, target: dict, to_original) -> PostprocessTrace:
    """As :meth:`TraceBuilder.postprocess`, with suppressors only where the explanation looks."""
    roi = outputs.roi
    settings, stages, candidates = roi.settings, roi.stages[0], roi.candidates[0]
    boxes, scores, labels = candidates.boxes, candidates.scores, candidates.labels
    num_foreground = outputs.roi.head.class_logits.shape[1] - 1
    device = scores.device
    above = stages.above_score
    position = torch.full((scores.shape[0],), -1, dtype=torch.int64, device=device)
    position[above] = torch.arange(above.numel(), device=device)
    large_enough = torch.zeros(above.numel(), dtype=torch.bool, device=device)
    large_enough[position[stages.large_enough]] = True
    kept = torch.zeros_like(large_enough)
    kept[position[stages.nms_kept]] = True
    # Removed candidates near a target box of their class: the only ones explained by name.
    is_kept = torch.zeros(scores.shape[0], dtype=torch.bool, device=device)
    is_kept[stages.nms_kept] = True
    removed = stages.large_enough[~is_kept[stages.large_enough]]
    if removed.numel() and target["boxes"].numel():
        targets = resized_targets(outputs, target["boxes"])
        near = (box_iou(boxes[removed], targets) >= _LOOK_IOU) & (
            labels[removed, None] == target["labels"].to(device)[None, :])
        removed = removed[near.any(dim=1)]
    else:
        removed = removed[:0]
    considered = torch.cat([stages.nms_kept, removed])
    suppressed_by = nms_suppressors(boxes, labels, considered, stages.nms_kept,
                                    settings.nms_thresh)[above]
    suppressed_by = torch.where(suppressed_by >= 0, position[suppressed_by.clamp(min=0)],
                                suppressed_by)
    return PostprocessTrace(
        boxes=to_original(boxes[above]), scores=scores[above].float().cpu(),
        labels=labels[above].cpu(), proposal=(above // num_foreground).cpu(),
        large_enough=large_enough.cpu(), nms_kept=kept.cpu(), suppressed_by=suppressed_by.cpu(),
        final=position[stages.final].cpu(), score_thresh=float(settings.score_thresh),
        nms_thresh=float(settings.nms_thresh),
        detections_per_img=int(settings.detections_per_img), min_size=float(settings.min_size),
    )
