"""A Trace: every stage of one detector run on one image, as plain data.

Built by :mod:`engine.detector.inspection`. Everything is a CPU tensor, a number, a string or a
list/tuple of them, so a Trace crosses a thread or process boundary, saves with
:func:`save_trace` and loads with :func:`load_trace` (``torch.load(weights_only=True)``: no
code is ever unpickled). Boxes are ``x0, y0, x1, y1`` in the **original image's pixels**; the
network saw the image resized by ``scale`` = (sy, sx), so a value in the resized image is the
original value times the scale. Class ids count the background as 0, as the detector does.

Index conventions: an *anchor index* points into the anchors of all levels concatenated in
level order (``LevelTrace.first_anchor`` is where a level starts); a *candidate index* points
into a stage's candidate arrays; -1 means "none".
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch

TRACE_FORMAT_VERSION = 1


@dataclass
class LevelTrace:
    """One FPN level. ``anchors`` (H * W * A, 4) ordered by row, column, then the A cell
    anchors; ``anchor_sizes`` (A,) and ``anchor_ratios`` (A,) (height / width) describe the
    cell anchors in that order; ``objectness`` (H * W * A,) the RPN's logit for each anchor.
    ``stride`` (sy, sx) and ``feature_size`` (H, W) are in resized-image pixels and cells."""

    name: str
    stride: tuple[int, int]
    feature_size: tuple[int, int]
    anchor_sizes: torch.Tensor
    anchor_ratios: torch.Tensor
    anchors: torch.Tensor
    objectness: torch.Tensor
    first_anchor: int

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])


@dataclass
class AnchorMatching:
    """The RPN's training targets for this image's boxes (present only with a target).

    Per anchor (R,): ``matched_box`` the target box a positive anchor is assigned to, for the
    other anchors the box it overlaps most (-1 without boxes); ``best_iou`` the IoU with that
    box; ``labels`` 1 positive, 0 negative, -1 ignored (IoU between the thresholds);
    ``sampled_positive``
    and ``sampled_negative`` what the sampler picked for the loss (seeded, so repeatable).
    Per target box (M,): ``box_best_iou`` the best IoU any anchor reaches; ``uncovered`` the
    indices of boxes whose best anchor stays below ``fg_iou_thresh`` (they get positives only
    through the low-quality rule: a sign the anchor sizes or ratios do not fit them).
    """

    best_iou: torch.Tensor
    matched_box: torch.Tensor
    labels: torch.Tensor
    sampled_positive: torch.Tensor
    sampled_negative: torch.Tensor
    box_best_iou: torch.Tensor
    uncovered: torch.Tensor
    fg_iou_thresh: float
    bg_iou_thresh: float


@dataclass
class ProposalTrace:
    """The RPN's proposals, from the pre-NMS top-k of every level to the final ones.

    Candidates (K,): the ``pre_nms_top_n`` best-scoring anchors of each level, decoded and
    clipped: ``boxes`` (K, 4), ``logits`` and ``scores`` (sigmoid), ``levels`` (the level's
    position), ``anchors`` (anchor index). Stages as masks (K,): ``valid`` (large enough and
    scoring at least ``score_thresh``), ``nms_kept``; ``suppressed_by`` (K,) the candidate that
    suppressed each one NMS removed (-1 for the others). ``final`` (P,) candidate indices of the
    proposals in decreasing score: the first ``post_nms_top_n`` NMS survivors.
    """

    boxes: torch.Tensor
    logits: torch.Tensor
    scores: torch.Tensor
    levels: torch.Tensor
    anchors: torch.Tensor
    valid: torch.Tensor
    nms_kept: torch.Tensor
    suppressed_by: torch.Tensor
    final: torch.Tensor
    pre_nms_top_n: int
    post_nms_top_n: int
    nms_thresh: float
    score_thresh: float
    min_size: float

    @property
    def proposals(self) -> torch.Tensor:
        """(P, 4) the proposals the box head receives (original-image pixels)."""
        return self.boxes[self.final]


@dataclass
class RoiLevels:
    """Which pooled FPN level each proposal (P,) is pooled from, by the FPN paper's equation
    ``k = floor(k0 + log2(sqrt(w * h) / canonical_size))`` clamped to [k_min, k_max].

    ``sqrt_area`` is in *resized*-image pixels (what the equation sees); ``raw_level`` the value
    before flooring and clamping; ``level`` the k used (stride 2^k); ``level_names`` the names of
    the pooled levels k_min..k_max in order.
    """

    sqrt_area: torch.Tensor
    raw_level: torch.Tensor
    level: torch.Tensor
    k_min: int
    k_max: int
    canonical_size: int
    canonical_level: int
    level_names: list[str]


@dataclass
class RoiSampling:
    """The box head's training targets for these proposals (present only with a target).

    Training adds the target boxes to the proposals: ``boxes`` (S, 4) are the P proposals then
    the M target boxes, ``is_target`` (S,) marks the latter. ``labels`` (S,): the matched box's
    class id for foreground (IoU >= ``fg_iou_thresh``), 0 background, -1 ignored;
    ``matched_box`` (S,) and ``best_iou`` (S,) the best target box; ``sampled`` (S,) what the
    sampler picked (seeded). Training uses the training proposal count, so this shows the
    labels, not the exact mini-batch of a training step.
    """

    boxes: torch.Tensor
    is_target: torch.Tensor
    labels: torch.Tensor
    matched_box: torch.Tensor
    best_iou: torch.Tensor
    sampled: torch.Tensor
    fg_iou_thresh: float
    bg_iou_thresh: float


@dataclass
class BoxHeadOutput:
    """Per proposal (P,): ``class_probs`` (P, C) softmax over classes, background first;
    ``class_boxes`` (P, C, 4) the proposal refined for each class, clipped to the image."""

    class_probs: torch.Tensor
    class_boxes: torch.Tensor


@dataclass
class PostprocessTrace:
    """From per-class candidates to detections.

    The candidates (K,) are the (proposal, foreground class) pairs scoring above
    ``score_thresh``: ``boxes`` (K, 4), ``scores``, ``labels`` (class ids), ``proposal``
    (proposal index). Masks (K,): ``large_enough`` (at least ``min_size`` wide and high),
    ``nms_kept`` (survived per-class NMS); ``suppressed_by`` (K,) the candidate that suppressed
    each one NMS removed (-1 for the others). ``final`` (D,) candidate indices of the
    detections, best first: the first ``detections_per_img`` NMS survivors.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    proposal: torch.Tensor
    large_enough: torch.Tensor
    nms_kept: torch.Tensor
    suppressed_by: torch.Tensor
    final: torch.Tensor
    score_thresh: float
    nms_thresh: float
    detections_per_img: int
    min_size: float


@dataclass
class Detections:
    """What the model returns for the image: ``boxes`` (D, 4), ``labels`` (D,), ``scores``."""

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor


@dataclass
class Trace:
    """One image through the whole detector. See the module docstring for the conventions.

    ``image_size`` and ``resized_size`` are (h, w); ``scale`` (sy, sx) = resized / original.
    ``target_boxes`` (M, 4) and ``target_labels`` (M,) are the ground truth when given;
    ``anchor_matching`` and ``roi_sampling`` exist only then. ``settings`` holds the
    overridable settings the run used (see :data:`engine.detector.inspection.OVERRIDES`).
    """

    image_size: tuple[int, int]
    resized_size: tuple[int, int]
    scale: tuple[float, float]
    backbone: str
    num_classes: int
    levels: list[LevelTrace]
    rpn: ProposalTrace
    roi_levels: RoiLevels
    box_head: BoxHeadOutput
    postprocess: PostprocessTrace
    detections: Detections
    settings: dict[str, float] = field(default_factory=dict)
    target_boxes: torch.Tensor | None = None
    target_labels: torch.Tensor | None = None
    anchor_matching: AnchorMatching | None = None
    roi_sampling: RoiSampling | None = None

    @property
    def num_anchors(self) -> int:
        return sum(level.num_anchors for level in self.levels)

    def summary(self) -> dict:
        """The counts at every stage, as JSON-ready numbers."""
        rpn, post = self.rpn, self.postprocess
        summary = {
            "image_size": list(self.image_size),
            "resized_size": list(self.resized_size),
            "backbone": self.backbone,
            "settings": dict(self.settings),
            "levels": [
                {
                    "name": level.name,
                    "stride": list(level.stride),
                    "feature_size": list(level.feature_size),
                    "anchors": level.num_anchors,
                    "proposals": int((self.rpn.levels[self.rpn.final] == index).sum()),
                }
                for index, level in enumerate(self.levels)
            ],
            "anchors": self.num_anchors,
            "rpn": {
                "pre_nms_candidates": int(rpn.boxes.shape[0]),
                "valid": int(rpn.valid.sum()),
                "after_nms": int(rpn.nms_kept.sum()),
                "suppressed": int((rpn.suppressed_by >= 0).sum()),
                "proposals": int(rpn.final.numel()),
            },
            "roi_levels": {
                name: int((self.roi_levels.level == k).sum())
                for k, name in zip(
                    range(self.roi_levels.k_min, self.roi_levels.k_max + 1),
                    self.roi_levels.level_names,
                )
            },
            "postprocess": {
                "above_score": int(post.boxes.shape[0]),
                "large_enough": int(post.large_enough.sum()),
                "after_nms": int(post.nms_kept.sum()),
                "detections": int(post.final.numel()),
            },
            "detections": int(self.detections.boxes.shape[0]),
        }
        if self.anchor_matching is not None:
            matching = self.anchor_matching
            summary["anchor_matching"] = {
                "positive": int((matching.labels == 1).sum()),
                "negative": int((matching.labels == 0).sum()),
                "ignored": int((matching.labels == -1).sum()),
                "sampled_positive": int(matching.sampled_positive.sum()),
                "sampled_negative": int(matching.sampled_negative.sum()),
                "uncovered_boxes": matching.uncovered.tolist(),
            }
        if self.roi_sampling is not None:
            sampling = self.roi_sampling
            summary["roi_sampling"] = {
                "foreground": int((sampling.labels > 0).sum()),
                "background": int((sampling.labels == 0).sum()),
                "sampled": int(sampling.sampled.sum()),
            }
        return summary


def trace_to_dict(trace: Trace) -> dict:
    """The Trace as nested dicts, lists, tensors and numbers (what :func:`save_trace` writes)."""
    return {"format_version": TRACE_FORMAT_VERSION, "trace": dataclasses.asdict(trace)}


def trace_from_dict(data: dict) -> Trace:
    """Inverse of :func:`trace_to_dict`."""
    version = data.get("format_version")
    if version != TRACE_FORMAT_VERSION:
        raise ValueError(
            f"this trace was written in format version {version}; this version of the program "
            f"reads version {TRACE_FORMAT_VERSION}"
        )
    return _build(Trace, data["trace"])


def save_trace(trace: Trace, path: str | os.PathLike) -> Path:
    """Write ``trace`` to ``path`` (a torch file holding only tensors and plain values)."""
    path = Path(path)
    torch.save(trace_to_dict(trace), path)
    return path


def load_trace(path: str | os.PathLike) -> Trace:
    """Read a trace written by :func:`save_trace`, with ``weights_only=True``."""
    from ..safe_load import load_torch_file

    return trace_from_dict(load_torch_file(path, what="trace"))


def _build(cls: type, data: dict):
    """Rebuild dataclass ``cls`` from ``dataclasses.asdict`` output, nested ones included."""
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        value = data[item.name]
        hint = hints[item.name]
        nested = _dataclass_in(hint)
        if nested is not None and value is not None:
            if typing.get_origin(hint) is list:
                value = [_build(nested, entry) for entry in value]
            else:
                value = _build(nested, value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[item.name] = value
    return cls(**values)


def _dataclass_in(hint) -> type | None:
    """The dataclass in ``X``, ``X | None`` or ``list[X]``, else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    for argument in typing.get_args(hint):
        if dataclasses.is_dataclass(argument):
            return argument
    return None
