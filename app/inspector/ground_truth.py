"""An image's labelled boxes (project category ids) -> the detector's target (class ids).

Categories become classes by the one rule of :mod:`engine.detector.class_map`. Boxes the
detector cannot take (a category no class of the checkpoint stands for, zero size, outside the
image) are kept for display and left out of the target, each with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.box_validity import TARGET_TOLERANCE, box_problem
from engine.detector.class_map import Category, ClassInfo, map_classes


@dataclass
class GroundTruthBox:
    """One labelled box: ``class_id`` is the detector's class (None when left out, with
    ``note`` saying why); ``target_index`` its row in the target (-1 when left out)."""

    box: tuple[float, float, float, float]
    category_id: int
    name: str
    class_id: int | None
    target_index: int = -1
    note: str = ""


@dataclass
class GroundTruth:
    """All the image's boxes, and the target made of those the detector can use."""

    boxes: list[GroundTruthBox] = field(default_factory=list)

    @property
    def used(self) -> list[GroundTruthBox]:
        return [box for box in self.boxes if box.class_id is not None]

    @property
    def left_out(self) -> list[GroundTruthBox]:
        return [box for box in self.boxes if box.class_id is None]

    def target(self) -> dict[str, torch.Tensor] | None:
        """``{"boxes": (M, 4), "labels": (M,)}`` of the usable boxes; None when the image has
        no boxes at all (no matching stage); an empty target when all were left out."""
        if not self.boxes:
            return None
        used = self.used
        return {
            "boxes": torch.tensor([box.box for box in used], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([box.class_id for box in used], dtype=torch.int64),
        }

    def notes(self) -> list[str]:
        return [f"box {index} ({box.name}): {box.note}" for index, box in enumerate(self.boxes)
                if box.note]


def ground_truth(
    boxes: list[tuple[float, float, float, float]],
    category_ids: list[int],
    classes: list[ClassInfo],
    image_size: tuple[int, int] | None,
    categories: list[Category] | None = None,
) -> GroundTruth:
    """Map ``boxes`` with project ``category_ids`` to the checkpoint's ``classes`` matched to
    the project's ``categories`` (None: to the categories the checkpoint was trained from);
    ``image_size`` (width, height) checks that boxes lie inside (None skips the check)."""
    if len(boxes) != len(category_ids):
        raise ValueError(f"{len(boxes)} boxes but {len(category_ids)} category ids")
    class_map = map_classes(classes, categories)
    names = {c.id: c.name for c in categories or []}
    result = GroundTruth()
    for box, category in zip(boxes, category_ids):
        box = tuple(float(v) for v in box)
        info = class_map.class_info(category)
        name = names.get(category) or (info.name if info is not None else f"category {category}")
        entry = GroundTruthBox(box, category, name, None)
        problem = _problem(box, image_size)
        if info is None:
            entry.note = "not a class of this checkpoint: shown, not used as a target"
        elif problem:
            entry.note = f"{problem}: shown, not used as a target"
        else:
            entry.class_id = info.class_id
            entry.target_index = len(result.used)
        result.boxes.append(entry)
    return result


def _problem(box: tuple[float, ...], image_size: tuple[int, int] | None) -> str | None:
    """Why ``box`` cannot be a target: the training targets check's rule (policy "reject",
    half a pixel of tolerance; see :mod:`engine.box_validity`)."""
    width, height = image_size if image_size is not None else (None, None)
    return box_problem(box, width, height, tolerance=TARGET_TOLERANCE)
