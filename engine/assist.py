"""Model-assisted labeling: a trained checkpoint's detections as suggestions for a project.

A checkpoint's classes are matched to the categories of the project being labeled by the rule
of :mod:`engine.detector.class_map` (by saved id and name, else by name); a class that matches
no category is reported by name and its detections are left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .box_validity import box_problem
from .data.annotations import BoxRecord
from .data.images import ImageLoadError, load_image_tensor
from .data.project import CategoryRow
from .detector.checkpoint import load_detector
from .detector.class_map import map_classes

# Suggestions below this score are not kept at all: the GUI's slider starts higher.
SCORE_FLOOR = 0.05


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
        """The suggestions for one image, best first. Raises ImageLoadError for a bad file or
        one the model cannot take (naming it), so that a batch goes on with the others."""
        image = load_image_tensor(path).to(self.device)
        problem = self.detector.model.input_problem(image)
        if problem is not None:
            raise ImageLoadError(f"{path}: {problem}")
        with torch.inference_mode():
            found = self.detector.model([image])[0]
        suggestions = []
        for box, label, score in zip(found["boxes"].tolist(), found["labels"].tolist(),
                                     found["scores"].tolist()):
            category_id = self.mapping.category_of(label)
            x0, y0, x1, y1 = box
            if (category_id is None or score < self.score_floor
                    or box_problem(box, tolerance=0.0) is not None):
                continue
            suggestions.append(BoxRecord(x0, y0, x1, y1, category_id, source="predicted",
                                         score=min(max(score, 0.0), 1.0)))
        return suggestions
