"""Model-assisted labeling: a trained checkpoint's detections as suggestions for a project.

A checkpoint knows its classes by name and by the project category id each one was trained
from (:class:`~engine.detector.checkpoint.ClassInfo`). :func:`map_classes` maps them onto the
categories of the project being labeled: by id when the project still has that id under the same
name (the checkpoint was trained on this project), else by name (another project with the same
class names), else not at all (the class is reported and its detections left out).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data.annotations import BoxRecord
from .data.images import load_image_tensor
from .data.project import CategoryRow
from .detector.checkpoint import ClassInfo, load_detector

# Suggestions below this score are not kept at all: the GUI's slider starts higher.
SCORE_FLOOR = 0.05


@dataclass
class ClassMapping:
    """Detector class id (1..K) -> project category id; ``unmapped``: the names of the
    checkpoint's classes the project has no category for."""

    to_category: dict[int, int] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)


def map_classes(classes: list[ClassInfo], categories: list[CategoryRow]) -> ClassMapping:
    by_id = {category.id: category for category in categories}
    by_name = {category.name: category for category in categories}
    mapping = ClassMapping()
    for info in classes:
        same = by_id.get(info.category_id) if info.category_id is not None else None
        if same is not None and same.name == info.name:
            mapping.to_category[info.class_id] = same.id
        elif info.name in by_name:
            mapping.to_category[info.class_id] = by_name[info.name].id
        else:
            mapping.unmapped.append(info.name)
    return mapping


class Predictor:
    """One checkpoint, loaded once, turning image files into suggested boxes (source
    "predicted", with a score, in project category ids). Not thread-safe: use it from one
    thread at a time."""

    def __init__(self, checkpoint: str | os.PathLike, categories: list[CategoryRow], *,
                 device: str | torch.device = "cpu", score_floor: float = SCORE_FLOOR) -> None:
        self.checkpoint = Path(checkpoint)
        self.detector = load_detector(self.checkpoint, device)
        self.device = torch.device(device)
        self.mapping = map_classes(self.detector.classes, categories)
        self.score_floor = score_floor

    def predict(self, path: str | os.PathLike) -> list[BoxRecord]:
        """The suggestions for one image, best first. Raises ImageLoadError for a bad file."""
        image = load_image_tensor(path).to(self.device)
        with torch.inference_mode():
            found = self.detector.model([image])[0]
        suggestions = []
        for box, label, score in zip(found["boxes"].tolist(), found["labels"].tolist(),
                                     found["scores"].tolist()):
            category_id = self.mapping.to_category.get(label)
            x0, y0, x1, y1 = box
            if category_id is None or score < self.score_floor or not (x0 < x1 and y0 < y1):
                continue
            suggestions.append(BoxRecord(x0, y0, x1, y1, category_id, source="predicted",
                                         score=min(max(score, 0.0), 1.0)))
        return suggestions
