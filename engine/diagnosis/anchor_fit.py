"""Do the anchors fit the boxes? The best anchor IoU of every box, and a search for better anchors.

The RPN learns to propose a box from the anchors that overlap it by IoU >= 0.7
(``rpn_fg_iou_thresh``, Faster R-CNN's positive rule); a box no anchor reaches gets positives
only through the low-quality rule (its best anchors, however poor), and is found far less often.
So the figure that matters is each box's **best anchor IoU at the scale the model sees**: the
image resized by ``min_size`` / ``max_size`` (:func:`engine.detector.transform.resize_scale`)
and padded to a multiple of 32, with the anchors of every FPN level on the grid the model lays
(:func:`engine.detector.anchors.anchors_for_features`).

The best anchor of a shape at a level is the one on the grid point nearest to the box's centre
(IoU falls as either centre offset grows), so a box's best IoU is found from one grid point per
cell anchor instead of all anchors: exact, and fast enough to search over thousands of settings
(a test compares it with IoU against every anchor).

:func:`suggest_anchors` searches anchor sizes (a base size doubling per level, with 1 to 3
sizes per octave), aspect ratios (the default's and k-means centres of the boxes' log aspect
ratios) and the input size, for the largest share of boxes at IoU >= 0.7 that lowers the share
of no COCO size bucket and no class; among settings within half a point of the best it takes
the current input size, then the fewest anchors per location, then the highest mean IoU. This
is a search on IoU, as the RPN's matcher uses, not YOLOv5's width/height ratio rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..detector.anchors import cell_anchors
from ..detector.transform import SIZE_DIVISIBLE, resize_scale
from .funnel import SIZE_BUCKETS, size_bucket

POSITIVE_IOU, HALF_IOU = 0.7, 0.5
HISTOGRAM_BINS = 20  # IoU 0-1 in steps of 0.05
BASE_SIZES = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64)
SIZES_PER_OCTAVE = (1, 2, 3)
INPUT_FACTORS = (1.0, 0.75, 1.25, 1.5)
TIE = 0.005  # settings within half a point of the best share count as equally good


@dataclass(frozen=True)
class AnchorSettings:
    """What decides the anchors a box meets: the input size (``min_size`` short side,
    ``max_size`` long side at most) and per FPN level the anchor ``sizes`` (pixels of the
    resized image, sqrt of the area) and ``aspect_ratios`` (height / width)."""

    min_size: int
    max_size: int
    sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]

    @property
    def anchors_per_location(self) -> int:
        return len(self.sizes[0]) * len(self.aspect_ratios[0])

    def to_dict(self) -> dict:
        return {"min_size": self.min_size, "max_size": self.max_size,
                "anchor_sizes": [list(level) for level in self.sizes],
                "aspect_ratios": [list(level) for level in self.aspect_ratios]}


@dataclass
class FitBoxes:
    """Boxes to fit, one row each: ``boxes`` (N, 4) in the original image's pixels,
    ``image_sizes`` (N, 2) their image's (h, w), ``labels`` (N,) class ids, ``image_ids`` (N,)
    and ``indices`` (N,) the box's index in its image (to open it)."""

    boxes: torch.Tensor
    image_sizes: torch.Tensor
    labels: torch.Tensor
    image_ids: torch.Tensor
    indices: torch.Tensor

    @classmethod
    def from_images(cls, images: Sequence[tuple[int, tuple[int, int], torch.Tensor,
                                                torch.Tensor]]) -> FitBoxes:
        """From (image id, (h, w), boxes (M, 4), labels (M,)) per image."""
        rows = [(image_id, size, box, int(label), index)
                for image_id, size, boxes, labels in images
                for index, (box, label) in enumerate(zip(boxes.reshape(-1, 4).tolist(),
                                                         labels.reshape(-1).tolist()))]
        if not rows:
            empty = torch.zeros(0, dtype=torch.int64)
            return cls(torch.zeros((0, 4)), torch.zeros((0, 2), dtype=torch.int64), empty,
                       empty, empty)
        return cls(
            boxes=torch.tensor([r[2] for r in rows], dtype=torch.float64),
            image_sizes=torch.tensor([list(r[1]) for r in rows], dtype=torch.int64),
            labels=torch.tensor([r[3] for r in rows], dtype=torch.int64),
            image_ids=torch.tensor([r[0] for r in rows], dtype=torch.int64),
            indices=torch.tensor([r[4] for r in rows], dtype=torch.int64),
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def buckets(self) -> list[str]:
        return [size_bucket(box) for box in self.boxes.tolist()]


# ------------------------------------------------------------------ the scale the model sees


def resized_boxes(boxes: FitBoxes, min_size: int, max_size: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (N, 4) in resized-image pixels and each image's padded size (N, 2) (h, w), as the
    model's transform makes them (floor of the scaled size; padding to a multiple of 32)."""
    if len(boxes) == 0:
        return torch.zeros((0, 4), dtype=torch.float64), torch.zeros((0, 2), dtype=torch.int64)
    sizes = boxes.image_sizes.tolist()
    resized = torch.tensor(
        [[math.floor(h * resize_scale(h, w, min_size, max_size)),
          math.floor(w * resize_scale(h, w, min_size, max_size))] for h, w in sizes],
        dtype=torch.float64)
    original = boxes.image_sizes.to(torch.float64)
    ratio_y, ratio_x = (resized / original).unbind(1)
    scaled = boxes.boxes * torch.stack([ratio_x, ratio_y, ratio_x, ratio_y], dim=1)
    padded = (torch.ceil(resized / SIZE_DIVISIBLE) * SIZE_DIVISIBLE).to(torch.int64)
    return scaled, padded


def best_anchor_iou(
    boxes: torch.Tensor,
    padded: torch.Tensor,
    sizes: tuple[float, ...],
    aspect_ratios: tuple[float, ...],
    stride: int,
) -> torch.Tensor:
    """(N,) each resized box's best IoU with the anchors of one level; see
    :func:`cell_anchor_ious`."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64)
    return cell_anchor_ious(boxes, padded, sizes, aspect_ratios, stride).max(dim=1).values


def cell_anchor_ious(
    boxes: torch.Tensor,
    padded: torch.Tensor,
    sizes: tuple[float, ...],
    aspect_ratios: tuple[float, ...],
    stride: int,
) -> torch.Tensor:
    """(N, A) each resized box's best IoU with each of the level's A cell anchor shapes
    (ordered as :func:`~engine.detector.anchors.cell_anchors`: ratio-major, then size).

    ``boxes`` (N, 4) resized pixels; ``padded`` (N, 2) the padded image (h, w) each lies in;
    the level's feature map is ceil(padded / ``stride``) cells and its anchors sit at
    ``cell * (padded // cells)`` as :func:`~engine.detector.anchors.anchors_for_features` lays
    them. For each cell anchor, the grid point nearest the box's centre gives its best IoU.
    """
    cell = cell_anchors(sizes, aspect_ratios).to(torch.float64)  # (A, 4) around (0, 0)
    cells = torch.ceil(padded.to(torch.float64) / stride)  # (N, 2) feature map (h, w)
    step = torch.div(padded.to(torch.float64), cells, rounding_mode="floor")  # (N, 2)
    offset_x = (cell[:, 0] + cell[:, 2]) / 2  # (A,) the anchor's centre off its grid point
    offset_y = (cell[:, 1] + cell[:, 3]) / 2
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    # (N, A): the nearest grid column / row for each cell anchor, kept inside the map.
    col = torch.floor((cx[:, None] - offset_x[None]) / step[:, 1:2] + 0.5)
    col = torch.minimum(col.clamp(min=0), cells[:, 1:2] - 1)
    row = torch.floor((cy[:, None] - offset_y[None]) / step[:, 0:1] + 0.5)
    row = torch.minimum(row.clamp(min=0), cells[:, 0:1] - 1)
    gx, gy = col * step[:, 1:2], row * step[:, 0:1]
    ax0, ay0 = gx + cell[None, :, 0], gy + cell[None, :, 1]
    ax1, ay1 = gx + cell[None, :, 2], gy + cell[None, :, 3]
    bx0, by0, bx1, by1 = (boxes[:, k:k + 1] for k in range(4))
    inter = ((torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp(min=0)
             * (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp(min=0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union.clamp(min=1e-12)


def level_ious(boxes: FitBoxes, settings: AnchorSettings, strides: Sequence[int]
               ) -> torch.Tensor:
    """(N, L) each box's best anchor IoU at each of the L levels."""
    resized, padded = resized_boxes(boxes, settings.min_size, settings.max_size)
    if len(boxes) == 0:
        return torch.zeros((0, len(strides)), dtype=torch.float64)
    return torch.stack([
        best_anchor_iou(resized, padded, sizes, ratios, stride)
        for sizes, ratios, stride in zip(settings.sizes, settings.aspect_ratios, strides)
    ], dim=1)


# ------------------------------------------------------------------ the report


@dataclass
class AnchorFit:
    """The anchors' fit to ``boxes`` under ``settings``: ``level_iou`` (N, L) each box's best
    IoU per level (``level_names``), ``best_iou`` (N,) over all levels."""

    settings: AnchorSettings
    boxes: FitBoxes
    level_names: list[str]
    level_iou: torch.Tensor
    fg_iou: float = POSITIVE_IOU
    buckets: list[str] = field(default_factory=list)

    @property
    def best_iou(self) -> torch.Tensor:
        if self.level_iou.shape[0] == 0:
            return torch.zeros(0, dtype=torch.float64)
        return self.level_iou.max(dim=1).values

    def share(self, threshold: float, mask: torch.Tensor | None = None) -> float:
        """The share of boxes (those in ``mask``) whose best anchor reaches ``threshold``;
        1.0 without boxes."""
        best = self.best_iou if mask is None else self.best_iou[mask]
        return float((best >= threshold).double().mean()) if best.numel() else 1.0

    def bucket_mask(self, bucket: str) -> torch.Tensor:
        return torch.tensor([b == bucket for b in self.buckets], dtype=torch.bool)

    def class_mask(self, label: int) -> torch.Tensor:
        return self.boxes.labels == label

    def unreached(self) -> list[dict]:
        """The boxes no anchor reaches at ``fg_iou``, worst first."""
        best = self.best_iou
        order = torch.argsort(best)
        return [{"image_id": int(self.boxes.image_ids[i]), "box_index": int(self.boxes.indices[i]),
                 "label": int(self.boxes.labels[i]),
                 "box": [round(v, 2) for v in self.boxes.boxes[i].tolist()],
                 "best_iou": round(float(best[i]), 4)}
                for i in order.tolist() if float(best[i]) < self.fg_iou]

    def histogram(self, level: int | None = None, bins: int = HISTOGRAM_BINS) -> list[int]:
        """Counts of boxes by best IoU in ``bins`` equal bins over [0, 1] (at one level, or
        over all levels)."""
        values = self.best_iou if level is None else self.level_iou[:, level]
        index = (values * bins).floor().clamp(0, bins - 1).to(torch.int64)
        return torch.bincount(index, minlength=bins).tolist()

    def table(self) -> dict:
        """Per level (and ``"all"``) and per size bucket (and ``"all"``): boxes, the share at
        0.7 and at 0.5, and the mean best IoU."""
        result = {}
        columns = [(name, self.level_iou[:, i]) for i, name in enumerate(self.level_names)]
        columns.append(("all", self.best_iou))
        for name, values in columns:
            row = {}
            for bucket in (*SIZE_BUCKETS, "all"):
                mask = (self.bucket_mask(bucket) if bucket != "all"
                        else torch.ones(len(self.boxes), dtype=torch.bool))
                picked = values[mask] if values.numel() else values
                row[bucket] = {
                    "boxes": int(picked.numel()),
                    "share_at_0.7": round(float((picked >= POSITIVE_IOU).double().mean()), 4)
                    if picked.numel() else None,
                    "share_at_0.5": round(float((picked >= HALF_IOU).double().mean()), 4)
                    if picked.numel() else None,
                    "mean_iou": round(float(picked.mean()), 4) if picked.numel() else None,
                }
            result[name] = row
        return result

    def to_dict(self) -> dict:
        return {
            "settings": self.settings.to_dict(), "boxes": len(self.boxes),
            "share_at_0.7": round(self.share(POSITIVE_IOU), 4),
            "share_at_0.5": round(self.share(HALF_IOU), 4),
            "table": self.table(),
            "histograms": {name: self.histogram(i) for i, name in enumerate(self.level_names)}
            | {"all": self.histogram()},
            "unreached": self.unreached(),
        }


def anchor_fit(boxes: FitBoxes, settings: AnchorSettings, strides: Sequence[int],
               level_names: Sequence[str], fg_iou: float = POSITIVE_IOU) -> AnchorFit:
    """How well the anchors of ``settings`` fit ``boxes``; see :class:`AnchorFit`."""
    return AnchorFit(settings, boxes, list(level_names), level_ious(boxes, settings, strides),
                     fg_iou, boxes.buckets)


# ------------------------------------------------------------------ the search


@dataclass
class AnchorSuggestion:
    """The search's answer: ``before`` the fit of the current settings, ``after`` the fit of
    the suggested ones (``after.settings``); ``changed`` False when nothing beat the current
    settings; ``tried`` how many settings were compared."""

    before: AnchorFit
    after: AnchorFit
    changed: bool
    tried: int

    def preset(self, detector: dict | None = None, training: dict | None = None) -> dict:
        """A training preset (``frcnn train --config`` and the Train tab take it):
        ``{"detector": {...}, "training": {...}}`` with the suggested input size and anchors
        over ``detector`` (e.g. the checkpoint's backbone and batch sizes)."""
        settings = self.after.settings.to_dict()
        return {"detector": {**(detector or {}), **settings}, "training": dict(training or {})}

    def to_dict(self) -> dict:
        return {
            "changed": self.changed, "tried": self.tried,
            "current": self.before.settings.to_dict(),
            "suggested": self.after.settings.to_dict(),
            "share_at_0.7": {"current": round(self.before.share(POSITIVE_IOU), 4),
                             "suggested": round(self.after.share(POSITIVE_IOU), 4)},
            "share_at_0.5": {"current": round(self.before.share(HALF_IOU), 4),
                             "suggested": round(self.after.share(HALF_IOU), 4)},
            "by_bucket_at_0.7": {
                bucket: {"current": round(self.before.share(POSITIVE_IOU,
                                                            self.before.bucket_mask(bucket)), 4),
                         "suggested": round(self.after.share(POSITIVE_IOU,
                                                             self.after.bucket_mask(bucket)), 4)}
                for bucket in SIZE_BUCKETS},
        }


def ratio_candidates(boxes: FitBoxes, current: tuple[float, ...]) -> list[tuple[float, ...]]:
    """Aspect-ratio sets to try: the current one, and k-means centres (k = 3, 4, 5) of the boxes'
    log(height / width), rounded to two decimals."""
    candidates = [tuple(current)]
    if len(boxes) == 0:
        return candidates
    widths = (boxes.boxes[:, 2] - boxes.boxes[:, 0]).clamp(min=1e-6)
    heights = (boxes.boxes[:, 3] - boxes.boxes[:, 1]).clamp(min=1e-6)
    logs = torch.log(heights / widths)
    for k in (3, 4, 5):
        centres = _kmeans_1d(logs, k)
        ratios = tuple(sorted({round(math.exp(c), 2) for c in centres}))
        if ratios not in candidates:
            candidates.append(ratios)
    return candidates


def _kmeans_1d(values: torch.Tensor, k: int, steps: int = 50) -> list[float]:
    """Lloyd's k-means on (N,) values, started at the quantiles (deterministic)."""
    quantiles = torch.linspace(0, 1, k + 2, dtype=torch.float64)[1:-1]
    centres = torch.quantile(values.double(), quantiles)
    for _ in range(steps):
        nearest = (values[:, None] - centres[None]).abs().argmin(dim=1)
        updated = torch.stack([values[nearest == j].mean() if bool((nearest == j).any())
                               else centres[j] for j in range(k)])
        if torch.allclose(updated, centres):
            break
        centres = updated
    return centres.tolist()


def size_candidates(strides: Sequence[int]) -> list[tuple[tuple[float, ...], ...]]:
    """Per-level size sets: a base size at the finest level growing with the stride, and 1 to 3
    sizes per octave at every level."""
    candidates = []
    for base in BASE_SIZES:
        for per_octave in SIZES_PER_OCTAVE:
            candidates.append(tuple(
                tuple(round(base * stride / strides[0] * 2 ** (k / per_octave), 1)
                      for k in range(per_octave))
                for stride in strides))
    return candidates


def suggest_anchors(
    boxes: FitBoxes,
    current: AnchorSettings,
    strides: Sequence[int],
    level_names: Sequence[str],
    fg_iou: float = POSITIVE_IOU,
    input_factors: Sequence[float] = INPUT_FACTORS,
) -> AnchorSuggestion:
    """Search anchor sizes, aspect ratios and input sizes for the best share of ``boxes`` at
    ``fg_iou`` that lowers no size bucket's and no class's share; see the module docstring."""
    before = anchor_fit(boxes, current, strides, level_names, fg_iou)
    if len(boxes) == 0:
        return AnchorSuggestion(before, before, False, 0)
    groups = [before.bucket_mask(b) for b in SIZE_BUCKETS] + [
        boxes.labels == label for label in boxes.labels.unique().tolist()]
    floors = [before.share(fg_iou, mask) for mask in groups]
    ratio_sets = ratio_candidates(boxes, current.aspect_ratios[0])
    size_sets = [current.sizes, *size_candidates(strides)]
    results = []  # (share, mean iou, settings)
    for factor in input_factors:
        min_size, max_size = ((current.min_size, current.max_size) if factor == 1.0 else
                              (_round_size(current.min_size * factor),
                               _round_size(current.max_size * factor)))
        resized, padded = resized_boxes(boxes, min_size, max_size)
        for ratios in ratio_sets:
            # Every size any candidate uses at a level, at once: (N, R * S_l) per level.
            level_sizes = [sorted({v for sizes in size_sets for v in sizes[level]})
                           for level in range(len(strides))]
            columns = [cell_anchor_ious(resized, padded, tuple(all_sizes), tuple(ratios), stride)
                       for all_sizes, stride in zip(level_sizes, strides)]
            for sizes in size_sets:
                if factor == 1.0 and sizes == current.sizes and \
                        ratios == tuple(current.aspect_ratios[0]):
                    continue
                best = torch.stack([
                    ious[:, [r * len(all_sizes) + all_sizes.index(v)
                             for r in range(len(ratios)) for v in level]].max(dim=1).values
                    for ious, all_sizes, level in zip(columns, level_sizes, sizes)
                ], dim=1).max(dim=1).values
                reached = best >= fg_iou
                if any(float(reached[mask].double().mean()) < floor - 1e-9
                       for mask, floor in zip(groups, floors) if bool(mask.any())):
                    continue
                level_ratios = tuple(tuple(ratios) for _ in strides)
                settings = AnchorSettings(min_size, max_size, tuple(sizes), level_ratios)
                results.append((float(reached.double().mean()), float(best.mean()), settings))
    tried = len(results)
    if not results:
        return AnchorSuggestion(before, before, False, 0)
    top = max(share for share, _, _ in results)
    if top <= before.share(fg_iou) + 1e-9:
        return AnchorSuggestion(before, before, False, tried)
    near = [r for r in results if r[0] >= top - TIE]
    _, _, chosen = min(near, key=lambda r: (r[2].min_size != current.min_size,
                                            r[2].anchors_per_location, -r[1]))
    return AnchorSuggestion(before, anchor_fit(boxes, chosen, strides, level_names, fg_iou),
                            True, tried)


def _round_size(value: float) -> int:
    """An input size rounded to a multiple of 32 (at least 32)."""
    return max(SIZE_DIVISIBLE, round(value / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
