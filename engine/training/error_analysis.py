"""Where a detector goes wrong on a split: per image, its true positives, its false positives
(with the reason) and the ground-truth boxes it missed.

Matching follows COCO's rule at one IoU threshold: detections at or above the score threshold,
highest score first, each take the unmatched ground-truth box of their class they overlap most
(IoU >= ``iou_threshold``). A detection that takes none is a false positive, for the first of
these reasons that holds:

- ``duplicate``: it overlaps (IoU >= threshold) a box of its class that an earlier, higher
  scoring detection already took;
- ``wrong class``: it overlaps (IoU >= threshold) a box of another class;
- ``low IoU``: it overlaps a box of its class, but only with 0.1 <= IoU < threshold (found,
  badly placed);
- ``background``: none of the above (nothing of its class there).

A detection on a box marked difficult is neither right nor wrong (``ignored``), as pycocotools
treats crowd regions; difficult boxes are never counted as missed. Ground-truth boxes no
detection took are ``missed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torchvision.ops import box_iou

from ..detector.checkpoint import ClassInfo
from .evaluation import EvalResult, coco_evaluate, coco_ground_truth, coco_results

FP_REASONS = ("duplicate", "wrong class", "low IoU", "background")
LOW_IOU_FLOOR = 0.1  # below this a detection is not "near" a box at all
FILTERS = ("all", "errors", "false positives", "missed")


@dataclass(frozen=True)
class TruePositive:
    detection: int  # index into the image's detections
    ground_truth: int  # index into the image's ground-truth boxes
    iou: float


@dataclass(frozen=True)
class FalsePositive:
    """``ground_truth``: the box the reason is about (the one duplicated, the one of another
    class, the one overlapped too little), None for background; ``iou`` with it (0 for
    background)."""

    detection: int
    reason: str
    ground_truth: int | None
    iou: float


@dataclass
class ImageMatches:
    """One image's verdicts; detections below the score threshold appear in none of them."""

    true_positives: list[TruePositive] = field(default_factory=list)
    false_positives: list[FalsePositive] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)  # ground-truth indices
    ignored: list[int] = field(default_factory=list)  # detection indices on difficult boxes


def _best(overlap: torch.Tensor, mask: torch.Tensor) -> tuple[int, float] | None:
    """(index, IoU) of the box in ``mask`` that ``overlap`` (M,) is highest for, or None."""
    if not bool(mask.any()):
        return None
    index = int(torch.where(mask, overlap, torch.full_like(overlap, -1.0)).argmax())
    return index, float(overlap[index])


def match_detections(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    det_boxes: torch.Tensor,
    det_labels: torch.Tensor,
    det_scores: torch.Tensor,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    gt_difficult: torch.Tensor | None = None,
) -> ImageMatches:
    """Match one image's detections to its ground truth (see the module docstring).

    ``gt_boxes`` (M, 4) and ``det_boxes`` (N, 4) are x0 y0 x1 y1 pixels; ``gt_labels`` (M,),
    ``det_labels`` (N,) class ids; ``det_scores`` (N,); ``gt_difficult`` (M,) bool.
    """
    gt_boxes = gt_boxes.reshape(-1, 4).float()
    det_boxes = det_boxes.reshape(-1, 4).float()
    difficult = (gt_difficult.bool() if gt_difficult is not None
                 else torch.zeros(len(gt_boxes), dtype=torch.bool))
    ious = box_iou(det_boxes, gt_boxes)  # (N, M)
    kept = [int(i) for i in torch.nonzero(det_scores >= score_threshold).flatten()]
    # Highest score first; equal scores keep their order (a stable sort), as pycocotools does.
    order = sorted(kept, key=lambda i: -float(det_scores[i]))
    result = ImageMatches()
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for d in order:
        overlap = ious[d]
        same = gt_labels == det_labels[d]
        close = overlap >= iou_threshold
        if (hit := _best(overlap, same & close & ~difficult & ~taken)) is not None:
            taken[hit[0]] = True
            result.true_positives.append(TruePositive(d, *hit))
        elif _best(overlap, same & close & difficult) is not None:
            result.ignored.append(d)
        elif (hit := _best(overlap, same & close & ~difficult)) is not None:
            result.false_positives.append(FalsePositive(d, "duplicate", *hit))
        elif (hit := _best(overlap, ~same & close & ~difficult)) is not None:
            result.false_positives.append(FalsePositive(d, "wrong class", *hit))
        elif (hit := _best(overlap, same & (overlap >= LOW_IOU_FLOOR) & ~difficult)) is not None:
            result.false_positives.append(FalsePositive(d, "low IoU", *hit))
        else:
            result.false_positives.append(FalsePositive(d, "background", None, 0.0))
    result.missed = [int(i) for i in torch.nonzero(~taken & ~difficult).flatten()]
    return result


@dataclass
class ImageErrors:
    """One image: its ground truth (``gt_*``, class ids 1..K), every detection the model kept
    (``det_*``, scores >= the model's own box_score_thresh) and ``matches`` at the analysis'
    thresholds."""

    image_id: int
    path: str
    gt_boxes: torch.Tensor  # (M, 4)
    gt_labels: torch.Tensor  # (M,)
    gt_difficult: torch.Tensor  # (M,) bool
    det_boxes: torch.Tensor  # (N, 4)
    det_labels: torch.Tensor  # (N,)
    det_scores: torch.Tensor  # (N,)
    matches: ImageMatches = field(default_factory=ImageMatches)

    @property
    def has_errors(self) -> bool:
        return bool(self.matches.false_positives or self.matches.missed)

    def shown_by(self, kind: str) -> bool:
        """Whether the view's filter ``kind`` (one of :data:`FILTERS`) lists this image."""
        if kind == "all":
            return True
        if kind == "errors":
            return self.has_errors
        if kind == "false positives":
            return bool(self.matches.false_positives)
        if kind == "missed":
            return bool(self.matches.missed)
        raise ValueError(f"unknown filter {kind!r}; one of {', '.join(FILTERS)}")


@dataclass
class ClassCounts:
    """At the analysis' thresholds: ground-truth boxes (difficult ones excluded), true and
    false positives, missed boxes."""

    ground_truth: int = 0
    true_positives: int = 0
    false_positives: int = 0
    missed: int = 0


@dataclass
class ErrorAnalysis:
    """A model's matches on a split; ``evaluation``: pycocotools' AP on the same detections
    (independent of the thresholds here)."""

    classes: list[ClassInfo]
    images: list[ImageErrors]
    evaluation: EvalResult
    iou_threshold: float = 0.5
    score_threshold: float = 0.5

    def rematch(self, iou_threshold: float, score_threshold: float) -> None:
        """Match again at other thresholds (the model does not run again)."""
        self.iou_threshold, self.score_threshold = iou_threshold, score_threshold
        for image in self.images:
            image.matches = match_detections(
                image.gt_boxes, image.gt_labels, image.det_boxes, image.det_labels,
                image.det_scores, iou_threshold=iou_threshold, score_threshold=score_threshold,
                gt_difficult=image.gt_difficult)

    def filtered(self, kind: str) -> list[ImageErrors]:
        return [image for image in self.images if image.shown_by(kind)]

    def class_counts(self) -> dict[str, ClassCounts]:
        counts = {c.name: ClassCounts() for c in self.classes}
        name_of = {c.class_id: c.name for c in self.classes}
        for image in self.images:
            for label, difficult in zip(image.gt_labels.tolist(), image.gt_difficult.tolist()):
                if not difficult:
                    counts[name_of[label]].ground_truth += 1
            matches = image.matches
            for tp in matches.true_positives:
                counts[name_of[int(image.det_labels[tp.detection])]].true_positives += 1
            for fp in matches.false_positives:
                counts[name_of[int(image.det_labels[fp.detection])]].false_positives += 1
            for gt in matches.missed:
                counts[name_of[int(image.gt_labels[gt])]].missed += 1
        return counts


Progress = Callable[[int, int], None]


@torch.inference_mode()
def analyse_errors(
    model: torch.nn.Module,
    dataset,
    classes: Sequence[ClassInfo],
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    device: torch.device | str = "cpu",
    batch_size: int = 2,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ErrorAnalysis | None:
    """Run ``model`` over a :class:`~engine.training.data.DetectionDataset` and match.

    ``progress(done, total)`` is called after every batch; when ``cancelled()`` turns true the
    run ends early and returns None.
    """
    model.eval()
    images: list[ImageErrors] = []
    shapes, targets = [], []
    for start in range(0, len(dataset), batch_size):
        if cancelled is not None and cancelled():
            return None
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        outputs = model([s.image.to(device) for s in samples])
        for index, (sample, output) in enumerate(zip(samples, outputs), start=start):
            found = {k: v.cpu() for k, v in output.items()}
            target = sample.target
            height, width = sample.image.shape[-2:]
            shapes.append((sample.image_id, int(height), int(width)))
            targets.append(target)
            images.append(ImageErrors(
                image_id=sample.image_id, path=str(dataset.records[index].path),
                gt_boxes=target["boxes"], gt_labels=target["labels"],
                gt_difficult=target["iscrowd"].bool(), det_boxes=found["boxes"],
                det_labels=found["labels"], det_scores=found["scores"]))
        if progress is not None:
            progress(len(images), len(dataset))
    evaluation = coco_evaluate(
        coco_ground_truth(shapes, targets, classes),
        coco_results([i.image_id for i in images],
                     [{"boxes": i.det_boxes, "labels": i.det_labels, "scores": i.det_scores}
                      for i in images]),
        classes)
    analysis = ErrorAnalysis(list(classes), images, evaluation)
    analysis.rematch(iou_threshold, score_threshold)
    return analysis


def analyse_checkpoint(
    checkpoint: str | os.PathLike,
    project_folder: str | os.PathLike,
    split: str = "val",
    **options,
) -> ErrorAnalysis | None:
    """:func:`analyse_errors` of a saved detector on a project split (its "done" images).

    Raises ValueError when the split has no such images or holds boxes of a category the
    detector was not trained on.
    """
    from ..data.project import Project
    from ..detector.checkpoint import load_detector
    from ..detector.class_map import map_classes
    from .data import DetectionDataset

    detector = load_detector(checkpoint, options.get("device", "cpu"))
    with Project.open(project_folder) as project:
        records = project.dataset(split)
        categories = project.categories()
    if not records:
        raise ValueError(f"the {split} split has no labeled images (status done) to evaluate on")
    class_map = map_classes(detector.classes, categories)
    names = {c.id: c.name for c in categories}
    unknown = class_map.unknown_categories(c for r in records for c in r.category_ids)
    if unknown:
        raise ValueError(
            f"{Path(checkpoint).name} was not trained on "
            f"{', '.join(names.get(c, str(c)) for c in unknown)}; train a new model to "
            "evaluate on them")
    classes = class_map.project_classes()
    dataset = DetectionDataset(records, classes)
    return analyse_errors(detector.model, dataset, classes, **options)

