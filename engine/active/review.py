"""Labels that look wrong: a review queue from a model's predictions on images it did not
train on, scored by cleanlab's object-detection module (ObjectLab).

    queue = score_labels(images, predictions, category_ids)     # pure: labels + predictions
    queue.entries[0]          # the worst: kind, cleanlab score, the label, the model's proposal

Three kinds of entry, each scored per box by cleanlab (``cleanlab.object_detection.rank``):

- ``"missing box"`` (cleanlab's *overlooked*): a confident prediction (see below) that no
  label box overlaps at all. Score from :func:`compute_overlooked_box_scores`, one per
  prediction; the proposal is the predicted box and class ("add it").
- ``"badly placed box"`` (*badloc*): a label box whose best overlapping prediction of its own
  class (score > 0.5) fits it poorly. Score from :func:`compute_badloc_box_scores`, one per
  label box; the proposal is that prediction's box ("move the box there").
- ``"swapped class"`` (*swap*): a label box on which a confident prediction of
  another class sits. Score from :func:`compute_swap_box_scores`, one per label box; the
  proposal is that prediction's class ("change the class"); a box no such prediction overlaps
  is left out. A box labelled twice with two classes (cleanlab's overlapping-label check, IoU
  >= 0.95) scores lowest and has no proposal.

Scores are in [0, 1], lower meaning more likely wrong; cleanlab's box similarity behind them is
``0.9 * IoU + 0.1 * exp(-0.1 * distance between centres in pixels)``. A score of 1 (or none)
means no evidence of an error, and such boxes are left out of the queue. A label box scored
both badly placed and swapped appears once, as the kind of its lower score. The queue is sorted
by score, worst first; each entry also carries its image's label quality score
(:func:`get_label_quality_scores`) and whether cleanlab's :func:`find_label_issues` flags the
image. Source: Tkachenko, Thyagarajan and Mueller, "ObjectLab: Automated Diagnosis of
Mislabeled Images in Object Detection Data" (ICML 2023 workshop), cleanlab 2.9's
``cleanlab/object_detection/rank.py``.

"Confident" (missing boxes, swapped classes) is cleanlab's 0.95 unless ``confident`` says
otherwise; by default (``"auto"``) it is the model's own level, the lower quartile of its best
scores on the label boxes it finds (:func:`matched_score`), kept within cleanlab's 0.5..0.95:
a model trained for minutes on a CPU finds most objects at 0.85-0.95, and at a fixed 0.95
cleanlab would never call a box missing (``bench/inject_label_errors.py`` measures both).

Predictions should be all of a model's detections down to a low score
(:data:`engine.assist.SCORE_FLOOR`, 0.05): cleanlab weighs them itself. The model must not
have trained on the images reviewed, or its predictions repeat their labels, errors included:
:mod:`engine.active.held_out` gets such predictions (a model's val split, or k-fold).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.annotations import BoxRecord

MISSING = "missing box"
BADLOC = "badly placed box"
SWAP = "swapped class"
KINDS = (MISSING, BADLOC, SWAP)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in displayed-image pixels
Progress = Callable[[float, str], None]
# "auto" confidence: the score above which the model finds three of four label boxes it finds.
AUTO_QUANTILE = 0.25


class ReviewCancelledError(RuntimeError):
    """The caller's ``stop()`` returned true; nothing of the interrupted review is kept."""


@dataclass(frozen=True)
class ImageLabels:
    """One reviewed image's labels: ``boxes`` and ``category_ids`` (project ids) in the order
    the project lists the image's boxes (:meth:`Project.boxes`), so an index is a box's index
    in the editor too."""

    image_id: int
    path: str
    boxes: tuple[Box, ...]
    category_ids: tuple[int, ...]


@dataclass(frozen=True)
class ReviewEntry:
    """One label that looks wrong. ``kind``: one of :data:`KINDS`; ``score``: cleanlab's
    per-box quality score in [0, 1] (lower: more likely wrong); ``box_index``/``box``/
    ``category_id``: the label box (None for a missing box); ``proposal``/
    ``proposal_category_id``/``proposal_score``: the model's box, class and confidence (None
    where it proposes nothing); ``image_score``: cleanlab's label quality score of the whole
    image; ``image_flagged``: whether :func:`find_label_issues` flags the image."""

    kind: str
    score: float
    image_id: int
    path: str
    box_index: int | None
    box: Box | None
    category_id: int | None
    proposal: Box | None
    proposal_category_id: int | None
    proposal_score: float | None
    image_score: float
    image_flagged: bool

    @property
    def can_accept(self) -> bool:
        """Whether there is a correction to accept (a box to add or move, a class to give)."""
        return self.proposal is not None and self.proposal_category_id is not None

    def corrected(self, boxes: Sequence[BoxRecord]) -> tuple[BoxRecord, ...] | None:
        """The image's ``boxes`` (as the editor holds them) with this entry's correction
        applied: the missing box added (source "predicted", with the model's score), the box
        moved to the proposal, or given the proposed class. None when the label box is no longer
        there as reviewed (edited since) or there is nothing to accept."""
        if not self.can_accept:
            return None
        if self.kind == MISSING:
            x0, y0, x1, y1 = self.proposal
            return (*boxes, BoxRecord(x0, y0, x1, y1, self.proposal_category_id,
                                      source="predicted", score=self.proposal_score))
        if self.box_index is None or self.box_index >= len(boxes):
            return None
        old = boxes[self.box_index]
        if (old.x0, old.y0, old.x1, old.y1) != self.box or old.category_id != self.category_id:
            return None
        if self.kind == BADLOC:
            x0, y0, x1, y1 = self.proposal
            new = BoxRecord(x0, y0, x1, y1, old.category_id, old.difficult, old.truncated,
                            old.source, old.score)
        else:
            new = BoxRecord(old.x0, old.y0, old.x1, old.y1, self.proposal_category_id,
                            old.difficult, old.truncated, old.source, old.score)
        return (*boxes[:self.box_index], new, *boxes[self.box_index + 1:])

    def to_dict(self, names: Mapping[int, str] | None = None) -> dict:
        """Plain data for JSON; classes by name where ``names`` (category id -> name) has them."""
        names = names or {}

        def name(category_id: int | None) -> str | None:
            return None if category_id is None else names.get(category_id, str(category_id))

        def rounded(box: Box | None) -> list[float] | None:
            return None if box is None else [round(v, 2) for v in box]

        return {"kind": self.kind, "score": round(self.score, 6), "image_id": self.image_id,
                "path": self.path, "box_index": self.box_index, "box": rounded(self.box),
                "class": name(self.category_id), "proposal": rounded(self.proposal),
                "proposal_class": name(self.proposal_category_id),
                "proposal_score": None if self.proposal_score is None
                else round(self.proposal_score, 4),
                "image_score": round(self.image_score, 6), "image_flagged": self.image_flagged}


@dataclass
class ReviewQueue:
    """The review: ``entries`` worst first; ``image_scores`` image id -> cleanlab's label
    quality score; ``flagged`` the image ids :func:`find_label_issues` flags; ``skipped``
    (path, reason) of images left out; ``notes`` what else was left out and why; ``source``
    where the predictions came from, in words."""

    entries: list[ReviewEntry] = field(default_factory=list)
    image_scores: dict[int, float] = field(default_factory=dict)
    flagged: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    confident: float | None = None  # the score from which a prediction counted as confident
    # What it was scored from (images, predictions, category ids), for :meth:`rescored`.
    inputs: tuple | None = field(default=None, repr=False)

    def rescored(self, confident: float | str | None) -> ReviewQueue:
        """The same predictions scored with another ``confident`` level (no model runs)."""
        if self.inputs is None:
            raise ValueError("this queue keeps no predictions to score again")
        queue = score_labels(*self.inputs, confident=confident)
        queue.skipped, queue.notes, queue.source = self.skipped, self.notes, self.source
        return queue

    def top(self, n: int | None) -> list[ReviewEntry]:
        return list(self.entries if n is None else self.entries[:max(n, 0)])

    def to_dict(self, names: Mapping[int, str] | None = None, top: int | None = None) -> dict:
        return {"source": self.source, "confident": self.confident,
                "images": len(self.image_scores),
                "flagged_images": len(self.flagged), "entries": len(self.entries),
                "queue": [e.to_dict(names) for e in self.top(top)],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "notes": list(self.notes)}


# ---------------------------------------------------------------------- cleanlab's inputs

def cleanlab_inputs(images: Sequence[ImageLabels], predictions: Sequence[Sequence[BoxRecord]],
                    category_ids: Sequence[int]) -> tuple[list[dict], list[list[np.ndarray]]]:
    """``labels`` and ``predictions`` as cleanlab's object-detection functions take them:
    per image ``{"bboxes": (L, 4) float x1 y1 x2 y2, "labels": (L,) int class index}``, and per
    image a list of K arrays, array k of shape (M_k, 5) ``[x1, y1, x2, y2, score]`` of class
    index k, where class index k is ``category_ids[k]``. Label boxes and predictions of other
    categories are left out (the caller says so)."""
    index = {c: k for k, c in enumerate(category_ids)}
    labels, preds = [], []
    for image, found in zip(images, predictions):
        keep = [i for i, c in enumerate(image.category_ids) if c in index]
        labels.append({
            "bboxes": np.array([image.boxes[i] for i in keep], dtype=np.float64).reshape(-1, 4),
            "labels": np.array([index[image.category_ids[i]] for i in keep], dtype=np.int64)})
        per_class: list[list[list[float]]] = [[] for _ in category_ids]
        for box in found:
            if box.category_id in index:
                per_class[index[box.category_id]].append(
                    [box.x0, box.y0, box.x1, box.y1, 1.0 if box.score is None else box.score])
        preds.append([np.array(rows, dtype=np.float64).reshape(-1, 5) for rows in per_class])
    return labels, preds


def _similarity(labels: np.ndarray, predicted: np.ndarray, alpha: float,
                euclid_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(L, M) IoU and cleanlab's similarity ``alpha * IoU + (1 - alpha) * exp(-factor *
    centre distance)`` between label boxes (L, 4) and predicted boxes (M, 4)."""
    if len(labels) == 0 or len(predicted) == 0:
        empty = np.zeros((len(labels), len(predicted)))
        return empty, empty
    a, b = labels[:, None, :], predicted[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0,
                     None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / np.clip(area_a + area_b - inter, 1e-6, None)
    centre_a = (a[..., :2] + a[..., 2:]) / 2
    centre_b = (b[..., :2] + b[..., 2:]) / 2
    distance = np.linalg.norm(centre_a - centre_b, axis=-1)
    return iou, alpha * iou + (1 - alpha) * np.exp(-distance * euclid_factor)


# ---------------------------------------------------------------------- the queue

def matched_score(images: Sequence[ImageLabels], predictions: Sequence[Sequence[BoxRecord]],
                  *, quantile: float = AUTO_QUANTILE, iou_threshold: float = 0.5
                  ) -> float | None:
    """How sure the model is when it is right: for each label box, the best score among the
    predictions of its class at IoU >= ``iou_threshold``; of those, the ``quantile`` (by
    default the lower quartile: three of four boxes the model finds, it finds at least this
    sure). None when it finds no label box. The level of :func:`confident_level`'s "auto"."""
    found = []
    for image, boxes in zip(images, predictions):
        for box, category_id in zip(image.boxes, image.category_ids):
            best = [p.score for p in boxes if p.category_id == category_id
                    and p.score is not None and _iou(box, (p.x0, p.y0, p.x1, p.y1))
                    >= iou_threshold]
            if best:
                found.append(max(best))
    return float(np.quantile(found, quantile)) if found else None


def _iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def confident_level(confident: float | str | None, images: Sequence[ImageLabels],
                    predictions: Sequence[Sequence[BoxRecord]]) -> float:
    """The score from which a prediction counts as confident (missing boxes, swapped classes):
    ``None``, cleanlab's own 0.95; a number, that; ``"auto"``, the model's
    :func:`matched_score`, at most 0.95 and at least 0.5 (cleanlab's level for badly placed
    boxes). Raises ValueError for anything else."""
    from cleanlab.internal.constants import (
        HIGH_PROBABILITY_THRESHOLD,
        LOW_PROBABILITY_THRESHOLD,
    )

    if confident is None:
        return HIGH_PROBABILITY_THRESHOLD
    if confident == "auto":
        level = matched_score(images, predictions)
        return HIGH_PROBABILITY_THRESHOLD if level is None else \
            min(max(level, LOW_PROBABILITY_THRESHOLD), HIGH_PROBABILITY_THRESHOLD)
    if isinstance(confident, (int, float)) and 0 < confident < 1:
        return float(confident)
    raise ValueError(f"confident: give a score between 0 and 1 or 'auto', not {confident!r}")


def score_labels(images: Sequence[ImageLabels], predictions: Sequence[Sequence[BoxRecord]],
                 category_ids: Sequence[int], *, confident: float | str | None = "auto",
                 overlapping_label_check: bool = True) -> ReviewQueue:
    """The review queue of ``images`` (labels) against ``predictions`` (per image, the model's
    boxes with their scores, project category ids) over the classes ``category_ids``; see the
    module docstring. ``confident``: the score from which a prediction is confident enough to
    say a box is missing or of another class (:func:`confident_level`: ``"auto"``, this model's
    own level, by default; None for cleanlab's 0.95; cleanlab's image scores keep 0.95).
    Raises ValueError when the lists differ in length."""
    if len(images) != len(predictions):
        raise ValueError(f"{len(images)} images but {len(predictions)} prediction lists")
    queue = ReviewQueue(inputs=(list(images), list(predictions), list(category_ids)))
    if not images or not category_ids:
        return queue
    from cleanlab.internal.constants import ALPHA, EUC_FACTOR, LOW_PROBABILITY_THRESHOLD
    from cleanlab.object_detection import filter as cl_filter
    from cleanlab.object_detection import rank

    high = confident_level(confident, images, predictions)
    labels, preds = cleanlab_inputs(images, predictions, category_ids)
    overlooked = rank.compute_overlooked_box_scores(labels=labels, predictions=preds,
                                                    high_probability_threshold=high)
    badloc = rank.compute_badloc_box_scores(labels=labels, predictions=preds)
    swap = rank.compute_swap_box_scores(labels=labels, predictions=preds,
                                        high_probability_threshold=high,
                                        overlapping_label_check=overlapping_label_check)
    image_scores = rank.get_label_quality_scores(
        labels, preds, overlapping_label_check=overlapping_label_check, verbose=False)
    flagged = cl_filter.find_label_issues(labels, preds,
                                          overlapping_label_check=overlapping_label_check)
    entries: list[ReviewEntry] = []
    reviewed = set(category_ids)
    for n, image in enumerate(images):
        known = [i for i, c in enumerate(image.category_ids) if c in reviewed]
        lab_boxes, lab_classes = labels[n]["bboxes"], labels[n]["labels"]
        pred_rows = np.concatenate(preds[n], axis=0) if preds[n] else np.zeros((0, 5))
        pred_classes = np.concatenate([np.full(len(p), k) for k, p in enumerate(preds[n])])
        iou, similarity = _similarity(lab_boxes, pred_rows[:, :4], ALPHA, EUC_FACTOR)
        image_score, image_flagged = float(image_scores[n]), bool(flagged[n])

        def entry(kind: str, score: float, label: int | None, pred: int | None,
                  image=image, image_score=image_score, image_flagged=image_flagged,
                  pred_rows=pred_rows, pred_classes=pred_classes, known=known) -> ReviewEntry:
            box_index = None if label is None else known[label]
            return ReviewEntry(
                kind, float(score), image.image_id, image.path, box_index,
                None if box_index is None else tuple(image.boxes[box_index]),
                None if box_index is None else image.category_ids[box_index],
                None if pred is None else tuple(float(v) for v in pred_rows[pred, :4]),
                None if pred is None else int(category_ids[int(pred_classes[pred])]),
                None if pred is None else float(pred_rows[pred, 4]), image_score, image_flagged)

        for m, score in enumerate(overlooked[n]):
            if np.isfinite(score) and score < 1.0:
                entries.append(entry(MISSING, score, None, m))
        for i in range(len(lab_boxes)):
            candidates = []
            same = np.where((pred_classes == lab_classes[i])
                            & (pred_rows[:, 4] > LOW_PROBABILITY_THRESHOLD) & (iou[i] > 0))[0]
            if np.isfinite(badloc[n][i]) and badloc[n][i] < 1.0:
                best = int(same[np.argmax(similarity[i, same])]) if len(same) else None
                candidates.append(entry(BADLOC, badloc[n][i], i, best))
            other = np.where((pred_classes != lab_classes[i])
                             & (pred_rows[:, 4] > high))[0]
            if np.isfinite(swap[n][i]) and swap[n][i] < 1.0:
                best = int(other[np.argmax(similarity[i, other])]) if len(other) else None
                # A prediction of another class nowhere on the box is no evidence (its score
                # is then above 0.9): only one that overlaps it, or a box labelled twice.
                if best is None or iou[i, best] > 0:
                    candidates.append(entry(SWAP, swap[n][i], i, best))
            if candidates:
                entries.append(min(candidates, key=lambda e: e.score))
    entries.sort(key=lambda e: (e.score, e.image_score, e.image_id,
                                -1 if e.box_index is None else e.box_index))
    queue.entries = entries
    queue.image_scores = {image.image_id: float(s) for image, s in zip(images, image_scores)}
    queue.flagged = [image.image_id for image, f in zip(images, flagged) if f]
    queue.confident = high
    return queue
