"""Questions the inspector asks of a :class:`~engine.detector.trace.Trace`, answered as data.

Each function reads a Trace (never the model) and returns plain tensors, numbers or small
dataclasses, in the **original image's pixels** like the Trace itself:

- :func:`anchor_cell_at` - the anchor grid cell of a level nearest to a point;
- :func:`best_anchors_per_box` - for each target box its k best anchors and their IoUs;
- :func:`roi_align_sampling_grid` / :func:`proposal_sampling_grid` - the bins and bilinear
  sample points RoIAlign reads for a box (torchvision's ``roi_align``, ``aligned=False``);
- :func:`explain_targets` - for each target box, the last stage it survived: why it was found
  or missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

from .trace import LevelTrace, Trace

# What the box head uses (engine.detector.build): 7x7 bins, 2x2 samples per bin.
ROI_OUTPUT_SIZE = 7
ROI_SAMPLING_RATIO = 2
# A detection or proposal "covers" a target box from this IoU on (COCO's AP50 criterion).
COVER_IOU = 0.5


# ----------------------------------------------------------------------- anchors


def anchor_cell_at(
    level: LevelTrace, scale: tuple[float, float], x: float, y: float
) -> tuple[int, int] | None:
    """The (row, col) of ``level``'s anchor grid whose anchors are centred nearest to the
    original-image point (x, y), or None when the point lies outside the grid's reach.

    The anchors of cell (row, col) are centred at (col * stride_x, row * stride_y) in resized
    pixels (torchvision's grid: shifts ``arange(W) * stride``), so the nearest centre is
    ``round(x * scale_x / stride_x)``. A point more than half a stride beyond the first or last
    centre is outside.
    """
    (sy, sx), (stride_y, stride_x) = scale, level.stride
    height, width = level.feature_size
    col = (x * sx) / stride_x
    row = (y * sy) / stride_y
    if not (-0.5 <= col < width - 0.5 and -0.5 <= row < height - 0.5):
        return None
    # floor(v + 0.5): a point halfway between two centres goes to the later cell.
    return (int(min(height - 1, max(0, math.floor(row + 0.5)))),
            int(min(width - 1, max(0, math.floor(col + 0.5)))))


def cell_anchor_indices(level: LevelTrace, row: int, col: int) -> torch.Tensor:
    """Indices into ``level.anchors`` of the A anchors of cell (row, col), in the order of
    ``level.anchor_sizes`` / ``level.anchor_ratios``."""
    per_cell = level.anchor_sizes.numel()
    first = (row * level.feature_size[1] + col) * per_cell
    return torch.arange(first, first + per_cell)


def anchor_level(trace: Trace, anchor: int) -> tuple[int, int]:
    """(level position, index within the level) of a global anchor index."""
    for position, level in enumerate(trace.levels):
        if level.first_anchor <= anchor < level.first_anchor + level.num_anchors:
            return position, anchor - level.first_anchor
    raise IndexError(f"anchor {anchor} is beyond the trace's {trace.num_anchors} anchors")


@dataclass
class BestAnchors:
    """For each target box (M,): ``anchors`` (M, k) global anchor indices, best first, and
    ``ious`` (M, k) their IoU with the box (k may be less than asked when there are fewer
    anchors)."""

    anchors: torch.Tensor
    ious: torch.Tensor


def best_anchors_per_box(trace: Trace, k: int = 3) -> BestAnchors:
    """The ``k`` anchors (all levels) that overlap each target box most.

    IoU is computed in original-image pixels, where the Trace keeps the anchors; the matcher
    works on the resized image, and since the resize scales both axes alike (up to a rounding
    of the resized size) the IoUs agree to within that rounding.
    """
    if trace.target_boxes is None or trace.target_boxes.shape[0] == 0:
        empty = torch.zeros((0, k))
        return BestAnchors(empty.long(), empty)
    anchors = torch.cat([level.anchors for level in trace.levels])
    iou = box_iou(trace.target_boxes.float(), anchors.float())  # (M, R)
    k = min(k, iou.shape[1])
    ious, indices = iou.topk(k, dim=1)
    return BestAnchors(indices, ious)


# ----------------------------------------------------------------------- RoIAlign


@dataclass
class RoiAlignGrid:
    """Where RoIAlign reads a box: ``x_edges`` (S + 1,) and ``y_edges`` (S + 1,) the bin
    boundaries; ``sample_x`` (S * r,) and ``sample_y`` (S * r,) the bilinear sample positions
    (r per bin along each axis, so S * S * r * r points in all, the product of the two). All in
    the coordinates of the box that was given."""

    x_edges: torch.Tensor
    y_edges: torch.Tensor
    sample_x: torch.Tensor
    sample_y: torch.Tensor

    def sample_points(self) -> torch.Tensor:
        """(S * r * S * r, 2) every (x, y) sample point, row by row."""
        ys, xs = torch.meshgrid(self.sample_y, self.sample_x, indexing="ij")
        return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def roi_align_sampling_grid(
    box: tuple[float, float, float, float] | torch.Tensor,
    stride: float | tuple[float, float],
    output_size: int = ROI_OUTPUT_SIZE,
    sampling_ratio: int = ROI_SAMPLING_RATIO,
) -> RoiAlignGrid:
    """The bins and sample points of torchvision's ``roi_align(..., spatial_scale=1/stride,
    sampling_ratio, aligned=False)`` for ``box`` (x0, y0, x1, y1) in the pixels of the image
    the feature map was computed from; the result is in those pixels too. ``stride`` is one
    number or (stride_y, stride_x).

    As the kernel does: the box is scaled to feature cells without a half-pixel offset, a box
    narrower than one cell is widened to one cell (from x0), each of the ``output_size`` bins
    is split into ``sampling_ratio`` equal parts per axis, and a sample sits in the middle of
    each part. Feature cell j is read at feature coordinate j, i.e. image coordinate j * stride.
    """
    if sampling_ratio < 1:
        raise ValueError("sampling_ratio must be at least 1 (adaptive sampling is not drawn)")
    x0, y0, x1, y1 = (float(v) for v in box)
    stride_y, stride_x = (stride, stride) if isinstance(stride, int | float) else stride
    # roi_width = max(x1 / stride - x0 / stride, 1) cells, back in image pixels.
    width = max(x1 - x0, float(stride_x))
    height = max(y1 - y0, float(stride_y))
    bins = torch.arange(output_size + 1, dtype=torch.float64)
    parts = (torch.arange(output_size * sampling_ratio, dtype=torch.float64) + 0.5) / sampling_ratio
    return RoiAlignGrid(
        x_edges=(x0 + bins * width / output_size).float(),
        y_edges=(y0 + bins * height / output_size).float(),
        sample_x=(x0 + parts * width / output_size).float(),
        sample_y=(y0 + parts * height / output_size).float(),
    )


@dataclass
class ProposalPooling:
    """How proposal ``index`` is pooled: from ``level_name`` (position ``level`` in
    ``trace.levels``, FPN level ``k``, stride ``stride`` resized pixels) on ``grid``, which is in
    original-image pixels."""

    index: int
    k: int
    level: int
    level_name: str
    stride: int
    grid: RoiAlignGrid


def proposal_sampling_grid(trace: Trace, index: int) -> ProposalPooling:
    """The RoIAlign grid of final proposal ``index`` (into ``trace.rpn.proposals``): the
    proposal is pooled from the resized image's feature map, so the grid is computed there and
    scaled back to the original image."""
    levels = trace.roi_levels
    k = int(levels.level[index])
    position = k - levels.k_min
    stride = trace.levels[position].stride
    sy, sx = trace.scale
    x0, y0, x1, y1 = (float(v) for v in trace.rpn.proposals[index])
    resized = roi_align_sampling_grid((x0 * sx, y0 * sy, x1 * sx, y1 * sy), stride)
    grid = RoiAlignGrid(resized.x_edges / sx, resized.y_edges / sy,
                        resized.sample_x / sx, resized.sample_y / sy)
    return ProposalPooling(index, k, position, levels.level_names[position], stride[1], grid)


# ----------------------------------------------------------------------- explaining


@dataclass
class TargetExplanation:
    """What became of target box ``index`` (class ``label``), stage by stage.

    ``best_anchor_iou``: the best IoU of any anchor (below the RPN's positive threshold the box
    gets positives only through the low-quality rule); ``best_proposal`` / ``best_proposal_iou``:
    the final RPN proposal overlapping it most (-1 / 0 without proposals); ``class_prob``: the
    best probability the box head gives its class on a proposal covering it (IoU >= 0.5);
    ``best_candidate``: the best-scoring candidate of its class covering it after the score
    threshold (-1 when none); ``detection`` / ``detection_iou``: the detection of its class
    covering it most (-1 when none); ``other_detection`` / ``other_class``: the best-scoring
    detection of another class covering it and its label (-1 when none). ``stage`` names where
    it was lost (or ``"detected"``), and ``reason`` says it in a sentence.
    """

    index: int
    label: int
    best_anchor_iou: float
    best_proposal: int
    best_proposal_iou: float
    class_prob: float
    best_candidate: int
    detection: int
    detection_iou: float
    other_detection: int
    other_class: int
    stage: str
    reason: str


def explain_targets(trace: Trace, cover_iou: float = COVER_IOU) -> list[TargetExplanation]:
    """For each target box, the last stage of the pipeline that still had it.

    Stages, in order: ``"anchors"`` (no final proposal covers it by ``cover_iou`` and no
    anchor reaches the RPN's positive IoU either: the box had positives only through the
    low-quality rule), ``"proposals"`` (no final proposal covers it, though an anchor did),
    ``"classification"`` (no covering proposal scores its class above the score threshold),
    ``"nms"`` (candidates existed but per-class NMS, the minimum size or the detections-per-
    image limit removed them; the reason names which, for the best-scoring one), and
    ``"detected"``. A box detected is ``"detected"`` even when its anchors were poor; the
    anchor figure is then only in ``best_anchor_iou``.
    """
    if trace.target_boxes is None:
        return []
    targets = trace.target_boxes.float()
    labels = trace.target_labels
    proposals = trace.rpn.proposals.float()
    post = trace.postprocess
    detections = trace.detections
    score_thresh = post.score_thresh
    fg_thresh = trace.anchor_matching.fg_iou_thresh if trace.anchor_matching else 0.7
    anchor_iou = (trace.anchor_matching.box_best_iou if trace.anchor_matching is not None
                  else torch.zeros(targets.shape[0]))
    proposal_iou = box_iou(targets, proposals) if proposals.numel() else torch.zeros(
        (targets.shape[0], 0))
    candidate_iou = box_iou(targets, post.boxes.float()) if post.boxes.numel() else torch.zeros(
        (targets.shape[0], 0))
    detection_iou = (box_iou(targets, detections.boxes.float()) if detections.boxes.numel()
                     else torch.zeros((targets.shape[0], 0)))
    explanations = []
    for index in range(targets.shape[0]):
        label = int(labels[index])
        best_anchor = float(anchor_iou[index]) if anchor_iou.numel() else 0.0
        if proposal_iou.shape[1]:
            best_proposal_iou, best_proposal = (float(v) for v in proposal_iou[index].max(0))
            best_proposal = int(best_proposal)
        else:
            best_proposal_iou, best_proposal = 0.0, -1
        covering = proposal_iou[index] >= cover_iou
        class_prob = (float(trace.box_head.class_probs[covering, label].max())
                      if bool(covering.any()) else 0.0)
        own = (post.labels == label) & (candidate_iou[index] >= cover_iou) \
            if candidate_iou.shape[1] else torch.zeros(0, dtype=torch.bool)
        best_candidate = (int(torch.where(own)[0][post.scores[own].argmax()])
                          if bool(own.any()) else -1)
        same = (detections.labels == label) & (detection_iou[index] >= cover_iou) \
            if detection_iou.shape[1] else torch.zeros(0, dtype=torch.bool)
        if bool(same.any()):
            ious = torch.where(same, detection_iou[index], torch.full_like(detection_iou[index],
                                                                            -1))
            detection, det_iou = int(ious.argmax()), float(ious.max())
        else:
            detection, det_iou = -1, 0.0
        other = (detections.labels != label) & (detection_iou[index] >= cover_iou) \
            if detection_iou.shape[1] else torch.zeros(0, dtype=torch.bool)
        # Detections are in decreasing score: the first covering one is the best.
        other_detection = int(torch.where(other)[0][0]) if bool(other.any()) else -1
        other_class = int(detections.labels[other_detection]) if other_detection >= 0 else -1
        if detection >= 0:
            stage = "detected"
            score = float(detections.scores[detection])
            reason = f"detected (IoU {det_iou:.2f}, score {score:.2f})"
        elif best_proposal_iou < cover_iou:
            stage = "proposals"
            reason = (f"lost at the RPN: no proposal covers it (best proposal IoU "
                      f"{best_proposal_iou:.2f} < {cover_iou:g})")
            if best_anchor < fg_thresh:
                stage = "anchors"
                reason += (f"; no anchor reaches IoU {fg_thresh:g} either (best "
                           f"{best_anchor:.2f}): the anchor sizes or ratios do not fit it")
        elif best_candidate < 0:
            stage = "classification"
            reason = (f"lost in classification: the best score for its class on a covering "
                      f"proposal is {class_prob:.2f}, below the threshold {score_thresh:g}")
        else:
            stage = "nms"
            reason = _candidate_fate(post, best_candidate)
        explanations.append(TargetExplanation(
            index=index, label=label, best_anchor_iou=best_anchor, best_proposal=best_proposal,
            best_proposal_iou=best_proposal_iou, class_prob=class_prob,
            best_candidate=best_candidate, detection=detection, detection_iou=det_iou,
            other_detection=other_detection, other_class=other_class, stage=stage,
            reason=reason,
        ))
    return explanations


def _candidate_fate(post, candidate: int) -> str:
    """Why postprocessing candidate ``candidate`` did not become a detection."""
    score = float(post.scores[candidate])
    if not bool(post.large_enough[candidate]):
        return (f"removed after classification: its best candidate (score {score:.2f}) is "
                f"smaller than {post.min_size:g} px")
    suppressor = int(post.suppressed_by[candidate])
    if suppressor >= 0:
        return (f"suppressed by per-class NMS: its best candidate (score {score:.2f}) overlaps "
                f"candidate {suppressor} (score {float(post.scores[suppressor]):.2f}) of the same "
                f"class by IoU > {post.nms_thresh:g}")
    return (f"beyond the limit of {post.detections_per_img} detections per image: its best "
            f"candidate scores {score:.2f}")
