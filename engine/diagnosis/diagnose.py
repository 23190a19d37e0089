"""A diagnosis of a checkpoint on a project's split, from files to a :class:`Diagnosis`.

    session = DiagnosisSession.open(checkpoint, project_folder, split="val")
    diagnosis = session.run(progress=..., stop=...)          # funnel, AP, TIDE, anchor fit
    other = session.what_if(rpn_nms_thresh=0.6)              # reuses every image's outputs

The classes are matched to the project's categories as ``frcnn eval`` does
(:func:`engine.detector.class_map.map_classes`); boxes of categories the model was not trained
on are left out. The anchor fit is reported on the split's boxes; the anchor search runs on
every labelled box of the project (all splits), since the anchors must fit what the model is
trained on as much as what it is tested on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from ..data.project import Project, TrainingRecord
from ..detector.backbones import BACKBONES
from ..detector.checkpoint import LoadedDetector, load_detector
from ..detector.class_map import ClassInfo, map_classes
from ..training.data import DetectionDataset
from .advice import AnchorAdvice, anchor_advice
from .anchor_fit import (
    AnchorFit,
    AnchorSettings,
    AnchorSuggestion,
    FitBoxes,
    anchor_fit,
    suggest_anchors,
)
from .split import PassResult, Progress, SplitRunner

# Detector settings a preset carries over from the checkpoint besides the anchors.
PRESET_FIELDS = ("backbone", "min_size", "max_size", "rpn_batch_size_per_image",
                 "box_batch_size_per_image", "trainable_backbone_layers")


@dataclass
class Diagnosis:
    """Everything found: ``base`` the split under the checkpoint's own settings, ``fit`` the
    anchors' fit to the split's boxes, ``suggestion`` the anchor search on the project's boxes,
    ``preset`` the training preset it suggests, ``what_ifs`` later re-evaluations, ``seconds``
    the time of each part, ``notes`` what was left out and why."""

    checkpoint: str
    project: str
    split: str
    classes: list[ClassInfo]
    base: PassResult
    fit: AnchorFit
    suggestion: AnchorSuggestion
    preset: dict
    what_ifs: list[PassResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def advice(self) -> AnchorAdvice:
        """Whether retraining with the suggested anchors is worth it on this split."""
        return anchor_advice(self.base.funnel, self.base.tide, self.suggestion)

    def boxes(self) -> list[dict]:
        """Every box of the split with its fate, as plain data (for lists and JSON)."""
        names = {c.class_id: c.name for c in self.classes}
        return [{"image_id": image.image_id, "path": image.path, "box_index": f.index,
                 "box": [round(v, 2) for v in f.box], "class": names.get(f.label, str(f.label)),
                 "size": f.size, "fate": f.fate, "stage": f.stage, "reason": f.reason,
                 "best_anchor_iou": round(f.best_anchor_iou, 4),
                 "best_proposal_iou": round(f.best_proposal_iou, 4)}
                for image in self.base.images for f in image.fates]


class DiagnosisSession:
    """A loaded checkpoint and a split's images, ready to diagnose and re-evaluate. Not
    thread-safe: one call at a time (the app runs them on one worker thread)."""

    def __init__(self, detector: LoadedDetector, records: list[TrainingRecord],
                 all_records: list[TrainingRecord], classes: list[ClassInfo], *,
                 checkpoint: str = "", project: str = "", split: str = "val",
                 notes: list[str] | None = None) -> None:
        self.detector = detector
        self.classes = classes
        self.checkpoint, self.project, self.split = checkpoint, project, split
        self.notes = list(notes or [])
        self.dataset = DetectionDataset(records, classes)
        self.all_records = all_records
        self.runner = SplitRunner(detector.model, self.dataset)
        self.diagnosis: Diagnosis | None = None

    @classmethod
    def open(cls, checkpoint: str | os.PathLike, project: str | os.PathLike,
             split: str = "val", device: str | torch.device = "cpu") -> DiagnosisSession:
        """Load ``checkpoint`` and the labelled images of ``split`` in ``project``. Raises
        ValueError (naming the split) when it has no labelled image."""
        detector = load_detector(checkpoint, device)
        with Project.open(project, read_only=True) as store:
            records = store.dataset(split)
            all_records = store.dataset(None)
            categories = store.categories()
        if not records:
            raise ValueError(f"{project}: the {split} split has no labelled images to diagnose")
        class_map = map_classes(detector.classes, categories)
        notes = []
        names = {c.id: c.name for c in categories}
        unknown = class_map.unknown_categories(c for r in records for c in r.category_ids)
        if unknown:
            notes.append("the model was not trained on "
                         f"{', '.join(sorted(names.get(c, str(c)) for c in unknown))}; "
                         "those boxes are left out")
        if class_map.unmapped:
            notes.append("no category of the project has the name of the model's class "
                         f"{', '.join(class_map.unmapped_notes())}")
        known = set(class_map.to_category.values())
        return cls(detector, [_only(r, known) for r in records],
                   [_only(r, known) for r in all_records], class_map.project_classes(),
                   checkpoint=str(checkpoint), project=str(project), split=split, notes=notes)

    # ------------------------------------------------------------------ running

    def run(self, *, progress: Progress | None = None,
            stop: Callable[[], bool] | None = None) -> Diagnosis:
        """The whole diagnosis (the model over the split once). Raises
        :class:`~engine.diagnosis.split.DiagnosisCancelledError` when ``stop()`` turns true."""
        progress = progress or (lambda _f, _t: None)
        start = time.perf_counter()
        base = self.runner.run(progress=lambda f, t: progress(0.9 * f, t), stop=stop)
        evaluated = time.perf_counter()
        progress(0.9, "fitting anchors")
        config = self.detector.model.config
        spec = BACKBONES[config.backbone]
        model_spec = self.detector.model.anchor_spec
        current = AnchorSettings(int(_eval_min_size(config.min_size)), int(config.max_size),
                                 tuple(tuple(s) for s in model_spec.sizes),
                                 tuple(tuple(r) for r in model_spec.aspect_ratios))
        fg_iou = self.detector.model.rpn.matcher.high_threshold
        fit = anchor_fit(self._fit_boxes(self.dataset.records), current, spec.strides,
                         spec.level_names, fg_iou)
        suggestion = suggest_anchors(self._fit_boxes(self.all_records), current, spec.strides,
                                     spec.level_names, fg_iou)
        config_dict = config.to_dict()
        detector_preset = {k: config_dict[k] for k in PRESET_FIELDS
                           if config_dict.get(k) is not None}
        preset = suggestion.preset(detector_preset)
        fitted = time.perf_counter()
        progress(1.0, "done")
        notes = self.notes + [f"{u.path}: left out, {u.reason}" for u in self.runner.unreadable]
        self.diagnosis = Diagnosis(
            self.checkpoint, self.project, self.split, self.classes, base, fit, suggestion,
            preset, seconds={"model_and_funnel": evaluated - start,
                             "anchor_fit_and_search": fitted - evaluated}, notes=notes)
        return self.diagnosis

    def what_if(self, *, progress: Progress | None = None,
                stop: Callable[[], bool] | None = None, **overrides: float) -> PassResult:
        """Re-evaluate the split with ``overrides`` (RPN and box-head settings, see
        :data:`engine.detector.inspection.OVERRIDES`) from the kept outputs; after
        :meth:`run`. The result is also added to the diagnosis's ``what_ifs``."""
        if self.diagnosis is None:
            raise RuntimeError("run the diagnosis first: a what-if reuses its outputs")
        result = self.runner.run(progress=progress, stop=stop, **overrides)
        self.diagnosis.what_ifs.append(result)
        return result

    def _fit_boxes(self, records: list[TrainingRecord]) -> FitBoxes:
        class_of = self.dataset.class_of
        rows = []
        for record in records:
            if not (record.width and record.height):
                continue
            keep = [i for i, d in enumerate(record.difficult) if not d]
            rows.append((record.image_id, (record.height, record.width),
                         torch.tensor([record.boxes[i] for i in keep],
                                      dtype=torch.float64).reshape(-1, 4),
                         torch.tensor([class_of[record.category_ids[i]] for i in keep],
                                      dtype=torch.int64)))
        return FitBoxes.from_images(rows)


def _eval_min_size(min_size) -> float:
    """The short side evaluation resizes to (the last of several training sizes)."""
    return min_size[-1] if isinstance(min_size, tuple | list) else min_size


def _only(record: TrainingRecord, category_ids: set[int]) -> TrainingRecord:
    keep = [i for i, c in enumerate(record.category_ids) if c in category_ids]
    return replace(record, boxes=tuple(record.boxes[i] for i in keep),
                   category_ids=tuple(record.category_ids[i] for i in keep),
                   difficult=tuple(record.difficult[i] for i in keep))
