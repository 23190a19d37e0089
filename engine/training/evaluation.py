"""COCO evaluation with pycocotools: the numbers people compare detectors by.

Ground truth and detections are handed to pycocotools' own ``COCO`` and ``COCOeval``; we only
build their inputs and read their outputs. Boxes marked difficult become ``iscrowd`` regions:
a detection on one is neither a true nor a false positive (as Pascal VOC treats difficult).
pycocotools prints progress to stdout; that is captured and dropped (stdout may be the
training worker's protocol channel), and only its table of twelve numbers is kept.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..detector.checkpoint import ClassInfo
from ..detector.precision import autocast
from .data import UnreadableImage

# The twelve numbers COCOeval.summarize() prints, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


@dataclass
class EvalResult:
    """``stats`` by name (-1 where pycocotools has nothing to measure, e.g. no small boxes);
    ``per_class`` AP at IoU 0.5:0.95 and ``per_class_ap50`` by class name; ``summary`` the table
    pycocotools' ``summarize()`` printed."""

    stats: dict[str, float]
    per_class: dict[str, float] = field(default_factory=dict)
    per_class_ap50: dict[str, float] = field(default_factory=dict)
    images: int = 0
    detections: int = 0
    summary: str = ""

    @property
    def ap(self) -> float:
        return self.stats["AP"]

    @property
    def ap50(self) -> float:
        return self.stats["AP50"]

    def to_dict(self) -> dict:
        return {**{k: round(v, 6) for k, v in self.stats.items()},
                "per_class": {k: round(v, 6) for k, v in self.per_class.items()},
                "per_class_AP50": {k: round(v, 6) for k, v in self.per_class_ap50.items()},
                "images": self.images, "detections": self.detections}


def coco_ground_truth(
    images: Sequence[tuple[int, int, int]],
    targets: Sequence[dict[str, torch.Tensor]],
    classes: Sequence[ClassInfo],
) -> dict:
    """A COCO dataset dict: ``images`` as (image id, height, width), ``targets`` with ``boxes``
    (M, 4) x0 y0 x1 y1, ``labels`` (M,) class ids and optional ``iscrowd`` (M,)."""
    annotations = []
    for (image_id, _, _), target in zip(images, targets):
        crowd = target.get("iscrowd", torch.zeros(len(target["labels"]), dtype=torch.int64))
        for box, label, is_crowd in zip(target["boxes"].tolist(), target["labels"].tolist(),
                                        crowd.tolist()):
            x0, y0, x1, y1 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                "iscrowd": int(is_crowd),
            })
    return {
        "images": [{"id": i, "height": h, "width": w} for i, h, w in images],
        "annotations": annotations,
        "categories": [{"id": c.class_id, "name": c.name} for c in classes],
    }


def coco_results(
    image_ids: Sequence[int], detections: Sequence[dict[str, torch.Tensor]]
) -> list[dict]:
    """Detections as COCO results: one dict per box with ``bbox`` [x, y, w, h]."""
    results = []
    for image_id, found in zip(image_ids, detections):
        for box, label, score in zip(found["boxes"].tolist(), found["labels"].tolist(),
                                     found["scores"].tolist()):
            x0, y0, x1, y1 = box
            results.append({"image_id": image_id, "category_id": label,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    return results


def coco_evaluate(ground_truth: dict, results: list[dict], classes: Sequence[ClassInfo]
                  ) -> EvalResult:
    """pycocotools' box evaluation of ``results`` against ``ground_truth``."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        coco = COCO()
        coco.dataset = ground_truth
        coco.createIndex()
        if not results:
            # pycocotools cannot load an empty result list; nothing found scores zero.
            return EvalResult(dict.fromkeys(STAT_NAMES, 0.0),
                              {c.name: 0.0 for c in classes}, {c.name: 0.0 for c in classes},
                              images=len(ground_truth["images"]))
        evaluation = COCOeval(coco, coco.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    # The twelve-line table alone; the progress chatter above ("creating index...",
    # "DONE (t=0.01s)") is dropped.
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluation.summarize()
    # precision: (IoU thresholds, recall points, classes, area ranges, max detections)
    precision = evaluation.eval["precision"]
    per_class, per_class_ap50 = {}, {}
    for k, category_id in enumerate(evaluation.params.catIds):
        name = next(c.name for c in classes if c.class_id == category_id)
        everything = precision[:, :, k, 0, -1]
        at_50 = precision[0, :, k, 0, -1]
        per_class[name] = float(everything[everything > -1].mean()) if (everything > -1).any() \
            else -1.0
        per_class_ap50[name] = float(at_50[at_50 > -1].mean()) if (at_50 > -1).any() else -1.0
    return EvalResult(
        {name: float(value) for name, value in zip(STAT_NAMES, evaluation.stats)},
        per_class, per_class_ap50, images=len(ground_truth["images"]),
        detections=len(results), summary=table.getvalue(),
    )


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module,
    dataset,
    classes: Sequence[ClassInfo],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 2,
    skipped: list | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Run ``model`` (in evaluation mode) over a :class:`DetectionDataset` and evaluate.

    An image that cannot be read, or that the model cannot take, is left out of the
    evaluation (the others still count) and appended to ``skipped`` as an
    :class:`~engine.training.data.UnreadableImage` naming the file and the reason.
    ``autocast_dtype``: run the model under autocast in this type (see
    :mod:`engine.detector.precision`; None: float32); ``progress(done)`` is called with the
    number of images of ``dataset`` done (run or left out) after each batch."""
    was_training = model.training
    model.eval()
    images, targets, image_ids, detections = [], [], [], []
    try:
        for start in range(0, len(dataset), batch_size):
            end = min(start + batch_size, len(dataset))
            samples = []
            for i in range(start, end):
                loaded = dataset.load(i)
                if isinstance(loaded, UnreadableImage):
                    if skipped is not None:
                        skipped.append(loaded)
                    continue
                samples.append(loaded)
            outputs = []
            if samples:
                with autocast(device, autocast_dtype):
                    outputs = model([s.image.to(device) for s in samples])
            for sample, output in zip(samples, outputs):
                height, width = sample.image.shape[-2:]
                images.append((sample.image_id, int(height), int(width)))
                targets.append(sample.target)
                image_ids.append(sample.image_id)
                detections.append({k: v.cpu() for k, v in output.items()})
            if progress is not None:
                progress(end)
    finally:
        model.train(was_training)
    return coco_evaluate(coco_ground_truth(images, targets, classes),
                         coco_results(image_ids, detections), classes)
