"""A checkpoint over a split, once: every image's stage outputs kept, then summed up; and
re-evaluations with other settings from those outputs (what-if) without the backbone.

    runner = SplitRunner(model, dataset)          # a DetectionDataset of the split
    base = runner.run()                           # PassResult: fates, AP, TIDE
    other = runner.run(rpn_nms_thresh=0.6)        # the same images, from the kept outputs

Each image is an :class:`~engine.detector.inspection.Inspection` (the inspector's own), run
with the image's non-difficult boxes as its target, so a box's stage here is the inspector's
for that box (:func:`engine.diagnosis.funnel.box_fates`). A rerun calls
:meth:`Inspection.run` with the overrides: only the stages downstream of a changed setting run
again, and the box head runs only for proposals it has not seen. Difficult boxes are left out
of the funnel and ignored by the evaluation (pycocotools' crowd rule), as ``frcnn eval`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..detector.inspection import ROI_OVERRIDES, RPN_OVERRIDES, Inspection
from ..detector.model import DetectorOutputs, FasterRCNN
from ..detector.trace import Detections
from ..training.data import DetectionDataset, UnreadableImage
from ..training.evaluation import EvalResult, coco_evaluate, coco_ground_truth, coco_results
from .explained import best_anchor_ious, decoded_boxes, explainable_trace
from .funnel import BoxFate, FunnelCounts, box_fates, count_fates
from .tide import ImageEval, TideResult, tide

Progress = Callable[[float, str], None]


class DiagnosisCancelledError(RuntimeError):
    """The caller's ``stop()`` returned true; nothing was kept of the interrupted pass."""


@dataclass
class ImageOutcome:
    """One image under one set of settings: ``fates`` of its non-difficult boxes (``index``
    into the image's boxes as the project lists them), its ``detections`` (original pixels)."""

    image_id: int
    path: str
    image_size: tuple[int, int]
    fates: list[BoxFate]
    detections: Detections


@dataclass
class PassResult:
    """The split under one set of ``settings`` (the overridable ones, all of them):
    per image outcomes, the funnel counts, pycocotools' evaluation, TIDE's errors, and the
    wall time of the pass in seconds."""

    settings: dict[str, float]
    images: list[ImageOutcome]
    funnel: FunnelCounts
    evaluation: EvalResult
    tide: TideResult
    seconds: float

    def to_dict(self) -> dict:
        return {"settings": self.settings, "AP": round(self.evaluation.ap, 6),
                "AP50": round(self.evaluation.ap50, 6), "funnel": self.funnel.to_dict(),
                "tide": self.tide.to_dict(), "seconds": round(self.seconds, 3)}


class SplitRunner:
    """Runs ``model`` over ``dataset`` (see the module docstring); keeps every image's
    :class:`Inspection` between passes. Not thread-safe: one pass at a time."""

    def __init__(self, model: FasterRCNN, dataset: DetectionDataset) -> None:
        self.model = model
        self.dataset = dataset
        self.class_names = {c.class_id: c.name for c in dataset.classes}
        self.unreadable: list[UnreadableImage] = []
        self._inspections: list[tuple[int, Inspection, torch.Tensor, dict]] | None = None
        self._anchor_ious: dict[int, torch.Tensor] = {}
        matcher = model.rpn.matcher
        self._fg_iou, self._bg_iou = matcher.high_threshold, matcher.low_threshold

    @property
    def loaded(self) -> bool:
        """True once the first pass kept every image's outputs."""
        return self._inspections is not None

    def run(self, *, progress: Progress | None = None, stop: Callable[[], bool] | None = None,
            **overrides: float) -> PassResult:
        """One pass over the split with ``overrides`` (see
        :data:`engine.detector.inspection.OVERRIDES`); the first pass runs the whole model,
        later ones only what the overrides change. Raises :class:`DiagnosisCancelledError` when
        ``stop()`` turns true."""
        start = time.perf_counter()
        progress = progress or (lambda _f, _t: None)
        stop = stop or (lambda: False)
        first = self._inspections is None
        inspections = [] if first else self._inspections
        count = len(self.dataset) if first else len(inspections)
        outcomes, evals, targets, sizes = [], [], [], []
        settings: dict[str, float] = {}
        for position in range(count):
            if stop():
                raise DiagnosisCancelledError("diagnosis stopped")
            if first:
                loaded = self.dataset.load(position)
                if isinstance(loaded, UnreadableImage):
                    self.unreadable.append(loaded)
                    continue
                keep = loaded.target["iscrowd"] == 0
                target = {"boxes": loaded.target["boxes"][keep],
                          "labels": loaded.target["labels"][keep]}
                entry = (loaded.image_id, Inspection(self.model, loaded.image, target),
                         torch.where(keep)[0], loaded.target)
                inspections.append(entry)
            image_id, inspection, kept_index, full_target = inspections[-1] if first else \
                inspections[position]
            outputs = inspection.run_outputs(**overrides)
            if first:
                self._anchor_ious[image_id] = best_anchor_ious(outputs, inspection.target["boxes"])
            settings = _settings(outputs)
            trace = explainable_trace(outputs, inspection.target, self._anchor_ious[image_id],
                                      self._fg_iou, self._bg_iou, settings)
            fates = [replace(f, index=int(kept_index[f.index]))
                     for f in box_fates(trace, lambda outputs=outputs: decoded_boxes(outputs))]
            record = self.dataset.records[self._record_position(image_id)]
            outcomes.append(ImageOutcome(image_id, str(record.path), tuple(trace.image_size),
                                         fates, trace.detections))
            evals.append(ImageEval(image_id, full_target["boxes"], full_target["labels"],
                                   trace.detections.boxes, trace.detections.labels,
                                   trace.detections.scores, full_target["iscrowd"] == 1))
            targets.append(full_target)
            sizes.append((image_id, *trace.image_size))
            what = "running the model" if first else "re-evaluating"
            progress((position + 1) / max(count, 1), f"{what}: image {position + 1} of {count}")
        if first:
            self._inspections = inspections
        classes = self.dataset.classes
        evaluation = coco_evaluate(
            coco_ground_truth(sizes, targets, classes),
            coco_results([o.image_id for o in outcomes],
                         [{"boxes": o.detections.boxes, "labels": o.detections.labels,
                           "scores": o.detections.scores} for o in outcomes]),
            classes)
        funnel = count_fates((f for o in outcomes for f in o.fates), self.class_names)
        return PassResult(settings, outcomes, funnel, evaluation, tide(evals),
                          time.perf_counter() - start)

    def _record_position(self, image_id: int) -> int:
        if not hasattr(self, "_positions"):
            self._positions = {r.image_id: i for i, r in enumerate(self.dataset.records)}
        return self._positions[image_id]


def _settings(outputs: DetectorOutputs) -> dict[str, float]:
    """The overridable settings ``outputs`` were made with, by their override names."""
    values = {name: getattr(outputs.rpn.settings, field)
              for name, field in RPN_OVERRIDES.items()}
    values.update({name: getattr(outputs.roi.settings, field)
                   for name, field in ROI_OVERRIDES.items()})
    return values
