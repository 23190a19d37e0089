"""Error types as TIDE defines them, each with its dAP: the AP gained if it were fixed.

Bolya, Foley, Hays and Hoffman, "TIDE: A General Toolbox for Identifying Object Detection
Errors", ECCV 2020, and its reference implementation (the ``tidecv`` package, ``quantify.py``),
whose rules this follows step by step so that the numbers agree (a test compares them).

AP here is TIDE's: at one IoU threshold (``fg_iou``, 0.5), per class, the precision envelope
read at COCO's 101 recall points, averaged over the classes that have ground truth or
detections; in **AP points (0-100)** like TIDE's tables. Per image, detections (best 100 by
score) are matched greedily by decreasing score to the unmatched box of their class they overlap
most, from IoU ``fg_iou`` on. Each unmatched detection gets the first error that holds:

1. ``loc`` (localization): its best IoU with a box of its class is in [``bg_iou``, ``fg_iou``];
2. ``cls`` (classification): IoU >= ``fg_iou`` with a box of another class;
3. ``dupe`` (duplicate): IoU >= ``fg_iou`` with a box of its class that a higher-scoring
   detection already matched;
4. ``bkg`` (background): IoU <= ``bg_iou`` with every box;
5. ``both`` (classification and localization): the rest - near a box of another class only.

Every box no detection matched is ``missed``, unless a ``cls`` or ``loc`` error's fix would take
it. Fixing an error type (the others left as they are) means: ``cls``/``loc`` - the
highest-scoring such detection of a box not already matched becomes its true positive (with the
box's class for ``cls``), the others of that box are dropped; ``dupe``, ``bkg``, ``both`` - the
detection is dropped; ``missed`` - the box no longer counts as ground truth. ``dAP`` is the AP
after the fix minus before, floored at 0 (as TIDE does). Ground-truth boxes marked ``ignore``
(difficult / crowd) are neither matched nor missed, and a detection on one (IoU > ``fg_iou``)
counts in no AP and no error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import box_iou

ERROR_TYPES = ("cls", "loc", "both", "dupe", "bkg", "missed")
ERROR_TITLES = {"cls": "classification", "loc": "localization", "both": "both cls and loc",
                "dupe": "duplicate", "bkg": "background", "missed": "missed"}
FG_IOU, BG_IOU, MAX_DETS = 0.5, 0.1, 100
RECALL_POINTS = 101  # COCO's recall grid 0, 0.01, ..., 1


@dataclass
class ImageEval:
    """One image's ground truth and detections, in the same pixels.

    ``gt_boxes`` (M, 4) x0 y0 x1 y1, ``gt_labels`` (M,) class ids, ``gt_ignore`` (M,) bool
    (difficult / crowd); ``boxes`` (D, 4), ``labels`` (D,), ``scores`` (D,) the detections."""

    image_id: int
    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    gt_ignore: torch.Tensor | None = None


@dataclass(frozen=True)
class TideError:
    """One error: ``kind`` in :data:`ERROR_TYPES`; ``image_id``; ``detection`` the index into
    the image's detections (-1 for ``missed``); ``ground_truth`` the box it is about (-1 for
    ``bkg`` and ``both``); ``label`` the detection's class (the box's for ``missed``);
    ``score`` the detection's (0 for ``missed``); ``iou`` with that box."""

    kind: str
    image_id: int
    detection: int
    ground_truth: int
    label: int
    score: float
    iou: float


@dataclass
class TideResult:
    """``ap`` TIDE's AP at ``fg_iou`` in points (0-100); ``dap`` error type -> AP points gained
    by fixing it; ``counts`` error type -> how many; ``errors`` every error."""

    ap: float
    dap: dict[str, float]
    counts: dict[str, int]
    errors: list[TideError] = field(default_factory=list)
    fg_iou: float = FG_IOU
    bg_iou: float = BG_IOU

    def to_dict(self) -> dict:
        return {"ap_points": round(self.ap, 4), "fg_iou": self.fg_iou, "bg_iou": self.bg_iou,
                "dap_points": {k: round(v, 4) for k, v in self.dap.items()},
                "counts": self.counts}


# ------------------------------------------------------------------- AP at one threshold


def average_precision(points: Sequence[tuple[float, bool]], num_gt: int) -> float:
    """TIDE's AP (0-100) of one class: ``points`` (score, is true positive) of its detections,
    ``num_gt`` its ground-truth boxes. 0 without ground truth."""
    if num_gt == 0:
        return 0.0
    ordered = sorted(points, key=lambda p: -p[0])
    if not ordered:
        return 0.0
    true = np.cumsum([1.0 if tp else 0.0 for _, tp in ordered])
    precision = true / np.arange(1, len(ordered) + 1)
    recall = true / num_gt
    # The envelope: precision at recall r is the best precision at any recall >= r.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, np.arange(RECALL_POINTS) / (RECALL_POINTS - 1), side="left")
    values = np.array([precision[i] if i < len(precision) else 0.0 for i in at])
    return float(values.sum() / RECALL_POINTS * 100)


class _APData:
    """Per class: detection points by id, and the number of ground-truth boxes."""

    def __init__(self) -> None:
        self.points: dict[int, dict[int, tuple[float, bool]]] = {}
        self.num_gt: dict[int, int] = {}

    def push(self, label: int, point_id: int, score: float, tp: bool) -> None:
        self.points.setdefault(label, {})[point_id] = (score, tp)
        self.num_gt.setdefault(label, 0)

    def add_gt(self, label: int, count: int) -> None:
        self.num_gt[label] = self.num_gt.get(label, 0) + count
        self.points.setdefault(label, {})

    def mean_ap(self) -> float:
        aps = [average_precision(list(self.points[c].values()), self.num_gt[c])
               for c in self.points if self.points[c] or self.num_gt[c]]
        return sum(aps) / len(aps) if aps else 0.0


# ------------------------------------------------------------------- errors


@dataclass
class _Record:
    """An error with what it does to the AP data: ``original`` / ``fixed`` as (class, point)
    or None (absent), or for ``missed`` the fixed one is (class, -1): one box fewer."""

    error: TideError
    point_id: int
    original: tuple | None
    fixed: tuple | None


def tide(
    images: Sequence[ImageEval],
    fg_iou: float = FG_IOU,
    bg_iou: float = BG_IOU,
    max_dets: int = MAX_DETS,
) -> TideResult:
    """TIDE's main errors of detections against ground truth; see the module docstring."""
    data = _APData()
    records: list[_Record] = []
    next_id = 0
    for image in images:
        records_image, next_id = _evaluate_image(image, data, next_id, fg_iou, bg_iou, max_dets)
        records.extend(records_image)
    base = data.mean_ap()
    dap, counts = {}, {}
    for kind in ERROR_TYPES:
        counts[kind] = sum(1 for r in records if r.error.kind == kind)
        dap[kind] = max(_fixed(data, records, kind).mean_ap() - base, 0.0)
    return TideResult(base, dap, counts, [r.error for r in records], fg_iou, bg_iou)


def _fixed(data: _APData, records: list[_Record], kind: str) -> _APData:
    """The AP data with every error of ``kind`` fixed (TIDE's ``fix_errors``)."""
    fixed = _APData()
    num_gt = dict(data.num_gt)
    for record in records:
        point = record.fixed if record.error.kind == kind else record.original
        if point is not None and point[1] == -1:
            num_gt[point[0]] -= 1
            continue
        if point is not None:
            label, (score, tp) = point
            fixed.push(label, record.point_id, score, tp)
    for label, points in data.points.items():
        for point_id, (score, tp) in points.items():
            if tp:
                fixed.push(label, point_id, score, tp)
    for label, count in num_gt.items():
        fixed.add_gt(label, count)
    return fixed


def _evaluate_image(image: ImageEval, data: _APData, next_id: int, fg_iou: float,
                    bg_iou: float, max_dets: int) -> tuple[list[_Record], int]:
    ignore = (image.gt_ignore.bool() if image.gt_ignore is not None
              else torch.zeros(image.gt_labels.shape[0], dtype=torch.bool))
    keep = ~ignore
    gt_boxes = image.gt_boxes.reshape(-1, 4)[keep].double()
    gt_labels = image.gt_labels.reshape(-1)[keep].long()
    gt_index = torch.where(keep)[0]  # back to the image's box numbering
    ignore_boxes = image.gt_boxes.reshape(-1, 4)[ignore].double()
    ignore_labels = image.gt_labels.reshape(-1)[ignore].long()
    for label in gt_labels.tolist():
        data.add_gt(label, 1)
    num_dets = image.scores.numel()
    det_ids = list(range(next_id, next_id + num_dets))
    next_id += num_dets
    gt_ids = list(range(next_id, next_id + gt_labels.numel()))
    next_id += gt_labels.numel()
    records: list[_Record] = []
    if num_dets == 0:
        for j, label in enumerate(gt_labels.tolist()):
            records.append(_missed(image, int(gt_index[j]), label, gt_ids[j]))
        return records, next_id
    # Best max_dets by score; a stable sort keeps the given order among equal scores.
    order = sorted(range(num_dets), key=lambda i: -float(image.scores[i]))[:max_dets]
    boxes = image.boxes.reshape(-1, 4)[order].double()
    labels = image.labels.reshape(-1)[order].long()
    scores = image.scores.reshape(-1)[order].double()
    num_gt = gt_labels.numel()
    iou = box_iou(boxes, gt_boxes).numpy() if num_gt else np.zeros((len(order), 0))
    same = (labels[:, None] == gt_labels[None, :]).numpy() if num_gt else np.zeros(iou.shape,
                                                                                   bool)
    cls_iou = iou * same
    buffer = cls_iou.copy()
    used = [False] * len(order)
    matched_det = [-1] * num_gt  # the detection that matched each box
    for p in range(len(order)):
        if num_gt == 0:
            break
        g = int(np.argmax(buffer[p]))
        if buffer[p, g] >= fg_iou:
            used[p], matched_det[g] = True, p
            buffer[:, g] = 0
    ignored = [False] * len(order)
    if ignore_boxes.shape[0]:
        # pycocotools' crowd IoU: the overlap over the detection's own area.
        crowd = _crowd_iou(boxes, ignore_boxes)
        for p in range(len(order)):
            if not used[p] and any(crowd[p, k] > fg_iou and int(ignore_labels[k]) ==
                                   int(labels[p]) for k in range(ignore_boxes.shape[0])):
                ignored[p] = True
    for p in range(len(order)):
        if ignored[p]:
            continue
        data.push(int(labels[p]), det_ids[p], float(scores[p]), used[p])
    gt_used = np.array([m >= 0 for m in matched_det], dtype=bool)
    # TIDE's BestGTMatch: among cls / loc errors on an unmatched box, the best-scoring is fixed.
    best_fix: dict[int, tuple[float, int]] = {}
    pending: list[tuple[str, int, int]] = []  # (kind, detection row, box)
    for p in range(len(order)):
        if used[p] or ignored[p]:
            continue
        if num_gt == 0:
            pending.append(("bkg", p, -1))
            continue
        g = int(np.argmax(cls_iou[p]))
        if bg_iou <= cls_iou[p, g] <= fg_iou:
            pending.append(("loc", p, g))
        else:
            other = iou[p] * ~same[p]
            g = int(np.argmax(other))
            if other[g] >= fg_iou:
                pending.append(("cls", p, g))
            else:
                used_cls = cls_iou[p] * gt_used
                g = int(np.argmax(used_cls))
                if used_cls[g] >= fg_iou:
                    pending.append(("dupe", p, g))
                elif iou[p].max() <= bg_iou:
                    pending.append(("bkg", p, -1))
                else:
                    pending.append(("both", p, -1))
        kind, _, g = pending[-1]
        if kind in ("cls", "loc") and not gt_used[g]:
            score = float(scores[p])
            if g not in best_fix or best_fix[g][0] < score:
                best_fix[g] = (score, p)
    for kind, p, g in pending:
        label, score = int(labels[p]), float(scores[p])
        original = (label, (score, False))
        fixed = None
        if kind in ("cls", "loc") and not gt_used[g] and best_fix[g][1] == p:
            fixed = (int(gt_labels[g]) if kind == "cls" else label, (score, True))
        records.append(_Record(
            TideError(kind, image.image_id, order[p], int(gt_index[g]) if g >= 0 else -1,
                      label, score, float(iou[p, g]) if g >= 0 else float(iou[p].max(initial=0))),
            det_ids[p], original, fixed))
    for g in range(num_gt):
        if not gt_used[g] and g not in best_fix:
            records.append(_missed(image, int(gt_index[g]), int(gt_labels[g]), gt_ids[g]))
    return records, next_id


def _missed(image: ImageEval, index: int, label: int, point_id: int) -> _Record:
    return _Record(TideError("missed", image.image_id, -1, index, label, 0.0, 0.0), point_id,
                   None, (label, -1))


def _crowd_iou(boxes: torch.Tensor, crowd: torch.Tensor) -> np.ndarray:
    """(D, K) intersection over the detection's area (pycocotools' iscrowd IoU)."""
    lt = torch.max(boxes[:, None, :2], crowd[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], crowd[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-12)
    return (inter / area[:, None]).numpy()
