"""Where each ground-truth box is lost: the stage funnel, per box and over a split.

A box's *fate* refines the inspector's per-box explanation
(:func:`engine.detector.trace_queries.explain_targets`) without ever contradicting it: the
inspector's stage is computed by that function and each fate below belongs to exactly one
inspector stage (:data:`INSPECTOR_STAGE`), so a split's counts per inspector stage equal the
inspector's answers box by box. Stages, in pipeline order (a box is counted at the first one
that lost it; "covers" means IoU >= 0.5, COCO's AP50 criterion, as in the inspector):

- ``anchors`` (inspector: anchors) - no proposal covers it and no anchor reaches the RPN's
  positive IoU (``rpn_fg_iou_thresh``, 0.7): only the low-quality rule gave it positives;
- ``proposals`` (proposals) - an anchor fits, but no box the RPN regresses (over all anchors)
  covers it;
- ``pre_nms_top_k`` (proposals) - some RPN box covers it, none within its level's pre-NMS top-k;
- ``rpn_filter`` (proposals) - covering candidates, all below the RPN's minimum size or score;
- ``rpn_nms`` (proposals) - covering candidates, all removed by the RPN's NMS;
- ``post_nms_top_k`` (proposals) - a covering candidate survived NMS, beyond the post-NMS top-k;
- ``misclassified`` (classification) - covered by a proposal; no candidate of its class covers
  it after the score threshold, and another foreground class scores above the threshold on a
  covering proposal;
- ``low_score`` (classification) - the same, with no class above the threshold there (the box
  head calls it background; this also holds the rare box whose class scored above the threshold
  but whose refined box moved off it);
- ``box_min_size`` (nms) - a candidate of its class covers it, smaller than the minimum size;
- ``class_nms`` (nms) - that candidate was suppressed by per-class NMS;
- ``detections_cap`` (nms) - that candidate is beyond the detections-per-image limit;
- ``detected`` (detected) - a detection of its class covers it.

COCO's size buckets (:func:`size_bucket`) use the box's area in the original image's pixels:
small < 32², medium < 96², large otherwise (pycocotools' ``areaRng``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

from ..detector.trace import Trace
from ..detector.trace_queries import COVER_IOU, explain_targets

FATES = (
    "anchors", "proposals", "pre_nms_top_k", "rpn_filter", "rpn_nms", "post_nms_top_k",
    "misclassified", "low_score", "box_min_size", "class_nms", "detections_cap", "detected",
)
FATE_TITLES = {
    "anchors": "no anchor fits",
    "proposals": "RPN: no box covers it",
    "pre_nms_top_k": "RPN: cut by pre-NMS top-k",
    "rpn_filter": "RPN: min size / score",
    "rpn_nms": "RPN: removed by NMS",
    "post_nms_top_k": "RPN: cut by post-NMS top-k",
    "misclassified": "misclassified",
    "low_score": "score below threshold",
    "box_min_size": "box too small",
    "class_nms": "per-class NMS",
    "detections_cap": "detections-per-image limit",
    "detected": "detected",
}
INSPECTOR_STAGE = {
    "anchors": "anchors",
    "proposals": "proposals", "pre_nms_top_k": "proposals", "rpn_filter": "proposals",
    "rpn_nms": "proposals", "post_nms_top_k": "proposals",
    "misclassified": "classification", "low_score": "classification",
    "box_min_size": "nms", "class_nms": "nms", "detections_cap": "nms",
    "detected": "detected",
}
SIZE_BUCKETS = ("small", "medium", "large")
SMALL_AREA, MEDIUM_AREA = 32.0**2, 96.0**2  # pycocotools' areaRng bounds


def size_bucket(box: Iterable[float]) -> str:
    """COCO's size bucket of an (x0, y0, x1, y1) box by its area in pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return "small" if area < SMALL_AREA else "medium" if area < MEDIUM_AREA else "large"


@dataclass(frozen=True)
class BoxFate:
    """Target box ``index`` of one image (class id ``label``, ``box`` in original pixels):
    its ``fate`` (one of :data:`FATES`), the inspector's ``stage`` and ``reason`` for it, and
    ``best_anchor_iou`` / ``best_proposal_iou`` (the inspector's figures)."""

    index: int
    label: int
    box: tuple[float, float, float, float]
    fate: str
    stage: str
    reason: str
    best_anchor_iou: float
    best_proposal_iou: float

    @property
    def size(self) -> str:
        return size_bucket(self.box)


def box_fates(
    trace: Trace,
    decoded: torch.Tensor | Callable[[], torch.Tensor] | None = None,
    cover_iou: float = COVER_IOU,
) -> list[BoxFate]:
    """The fate of every target box of ``trace`` (which must have a target).

    ``decoded`` (R, 4), or a function returning it (called only when a box needs it): every
    anchor moved by the RPN's deltas, in the original image's pixels (the RPN head's
    ``decoded`` scaled back); it tells ``pre_nms_top_k`` from ``proposals``. Without it, a box
    no candidate covers is ``proposals``.
    """
    if trace.target_boxes is None:
        raise ValueError("the trace has no target boxes: inspect the image with its boxes")
    targets = trace.target_boxes.float().reshape(-1, 4)
    rpn, post = trace.rpn, trace.postprocess
    candidate_iou = _iou(targets, rpn.boxes)
    clipped: list[torch.Tensor] = []

    def decoded_covers(i: int) -> bool:
        if decoded is None:
            return False
        if not clipped:
            boxes = (decoded() if callable(decoded) else decoded).float().clone()
            height, width = trace.image_size
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
            clipped.append(boxes)
        return bool((_iou(targets[i:i + 1], clipped[0]) >= cover_iou).any())
    proposal_iou = _iou(targets, rpn.proposals)
    probs = trace.box_head.class_probs
    fates = []
    for explanation in explain_targets(trace, cover_iou):
        i = explanation.index
        stage = explanation.stage
        if stage in ("anchors", "detected"):
            fate = stage
        elif stage == "proposals":
            fate = _proposal_fate(candidate_iou[i] >= cover_iou, rpn, lambda i=i: decoded_covers(i))
        elif stage == "classification":
            covering = proposal_iou[i] >= cover_iou
            others = probs[covering, 1:].clone()
            others[:, explanation.label - 1] = 0.0  # its own class is below the threshold
            fate = "misclassified" if bool((others > post.score_thresh).any()) else "low_score"
        else:
            candidate = explanation.best_candidate
            if not bool(post.large_enough[candidate]):
                fate = "box_min_size"
            elif int(post.suppressed_by[candidate]) >= 0:
                fate = "class_nms"
            else:
                fate = "detections_cap"
        fates.append(BoxFate(
            index=i, label=explanation.label,
            box=tuple(float(v) for v in targets[i].tolist()), fate=fate, stage=stage,
            reason=explanation.reason, best_anchor_iou=explanation.best_anchor_iou,
            best_proposal_iou=explanation.best_proposal_iou,
        ))
    return fates


def _proposal_fate(covering: torch.Tensor, rpn, decoded_covers: Callable[[], bool]) -> str:
    """A box no final proposal covers: which RPN step removed its covering candidates.
    ``covering`` (K,) marks the pre-NMS candidates covering it; ``decoded_covers()`` whether
    any of the RPN's boxes (all anchors) does."""
    if not bool(covering.any()):
        return "pre_nms_top_k" if decoded_covers() else "proposals"
    if not bool((covering & rpn.valid).any()):
        return "rpn_filter"
    if not bool((covering & rpn.nms_kept).any()):
        return "rpn_nms"
    return "post_nms_top_k"


def _iou(targets: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    if boxes.numel() == 0 or targets.numel() == 0:
        return torch.zeros((targets.shape[0], boxes.shape[0] if boxes.dim() == 2 else 0))
    return box_iou(targets, boxes.float())


@dataclass
class FunnelCounts:
    """How many boxes each fate holds: ``total`` by fate, ``by_class`` class name -> fate ->
    count, ``by_size`` size bucket -> fate -> count. Every box is in exactly one fate, so each
    of these sums to the number of boxes."""

    total: dict[str, int]
    by_class: dict[str, dict[str, int]]
    by_size: dict[str, dict[str, int]]

    @property
    def boxes(self) -> int:
        return sum(self.total.values())

    @property
    def by_inspector_stage(self) -> dict[str, int]:
        """The same boxes counted by the inspector's coarser stages."""
        counts: Counter[str] = Counter()
        for fate, count in self.total.items():
            counts[INSPECTOR_STAGE[fate]] += count
        return dict(counts)

    def to_dict(self) -> dict:
        return {"boxes": self.boxes, "total": self.total, "by_class": self.by_class,
                "by_size": self.by_size, "by_inspector_stage": self.by_inspector_stage}


def count_fates(fates: Iterable[BoxFate], class_names: dict[int, str]) -> FunnelCounts:
    """Counts of ``fates`` (of any number of images); ``class_names`` class id -> name."""
    total = dict.fromkeys(FATES, 0)
    by_class: dict[str, dict[str, int]] = {}
    by_size = {bucket: dict.fromkeys(FATES, 0) for bucket in SIZE_BUCKETS}
    for fate in fates:
        total[fate.fate] += 1
        name = class_names.get(fate.label, str(fate.label))
        by_class.setdefault(name, dict.fromkeys(FATES, 0))[fate.fate] += 1
        by_size[fate.size][fate.fate] += 1
    return FunnelCounts(total, by_class, by_size)
