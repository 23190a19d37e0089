"""Detector classes and project categories: the one place where they meet.

The detector numbers its classes 1..K (0 is the background, as in torchvision). A project gives
each category a stable id and a unique name. Training makes the classes from the project's
categories in id order (:func:`classes_for`), and the checkpoint saves them as
:class:`ClassInfo` records: class id, name, the category id it was trained from, colour.

Whoever uses a checkpoint on a project (training data, ``frcnn eval``, suggestions, the
inspector's ground truth) matches its classes to the project's categories by one rule,
:func:`map_classes`. A class stands for

1. the category with the class's saved category id, when that category still has the class's
   name (the checkpoint was trained on this project);
2. else the category with the class's name (a project with the same class names under other
   ids, or a category deleted and made again);
3. else no category: the class is *unmapped*. Its detections are not suggested, boxes of
   categories no class stands for are not targets, and both are reported by name.

The name decides, the id never alone: ids of different projects collide (each starts at 1),
so a class is never silently taken for whatever category has its id. A category renamed
since training therefore no longer matches its class; :meth:`ClassMap.unmapped_notes` says
what it is called now, and training again (or renaming it back) brings it back. Names compare
exactly (case and spaces count), as the project keeps them unique.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol


@dataclass
class ClassInfo:
    """Detector class ``class_id`` (1..K) is project category ``category_id`` named ``name``."""

    class_id: int
    name: str
    category_id: int | None = None
    color: str | None = None


class Category(Protocol):
    """A project category as the class map reads it (``engine.data.project.CategoryRow``)."""

    id: int
    name: str


@dataclass(frozen=True)
class _SavedCategory:
    id: int
    name: str


def classes_for(categories: Iterable) -> list[ClassInfo]:
    """Detector classes 1..K for project categories (with ``id``, ``name``, ``color``),
    ordered by category id: what training makes and its checkpoints save."""
    ordered = sorted(categories, key=lambda c: c.id)
    return [ClassInfo(class_id=i, name=c.name, category_id=c.id, color=c.color)
            for i, c in enumerate(ordered, start=1)]


@dataclass
class ClassMap:
    """A detector's classes matched to one project's categories by :func:`map_classes`.

    ``classes`` the detector's classes 1..K as its checkpoint saved them; ``to_category``
    detector class id -> project category id, for the classes that stand for one;
    ``unmapped`` the names of the other classes, in class order; ``renamed`` for those of them
    whose saved category id is a category of this project under another name: class id -> that
    name.
    """

    classes: list[ClassInfo] = field(default_factory=list)
    to_category: dict[int, int] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    renamed: dict[int, str] = field(default_factory=dict)

    def category_of(self, class_id: int) -> int | None:
        """The project category detector class ``class_id`` stands for; None when unmapped."""
        return self.to_category.get(class_id)

    def class_of(self, category_id: int) -> int | None:
        """The detector class for project category ``category_id`` (the first, should two
        classes share a name); None when no class stands for it."""
        return self._to_class().get(category_id)

    def class_info(self, category_id: int) -> ClassInfo | None:
        """The :class:`ClassInfo` of :meth:`class_of`."""
        class_id = self.class_of(category_id)
        return None if class_id is None else next(
            c for c in self.classes if c.class_id == class_id)

    def project_classes(self) -> list[ClassInfo]:
        """The detector's classes 1..K with ``category_id`` this project's (None for the
        unmapped ones): what :class:`~engine.training.data.DetectionDataset` and the
        evaluation take."""
        return [replace(c, category_id=self.to_category.get(c.class_id)) for c in self.classes]

    def unknown_categories(self, category_ids: Iterable[int]) -> list[int]:
        """Those of ``category_ids`` no class stands for, each once, in increasing order."""
        known = self._to_class()
        return sorted({c for c in category_ids if c not in known})

    def unmapped_notes(self) -> list[str]:
        """One line per unmapped class: its name, and what the category with its saved id is
        called here when there is one (a category renamed since training)."""
        notes = []
        for info in self.classes:
            if info.class_id in self.to_category:
                continue
            now = self.renamed.get(info.class_id)
            notes.append(info.name if now is None else
                         f"{info.name} (category {info.category_id} is called {now!r} here)")
        return notes

    def _to_class(self) -> dict[int, int]:
        return class_ids_by_category(self.project_classes())


def map_classes(
    classes: Sequence[ClassInfo], categories: Iterable[Category] | None = None
) -> ClassMap:
    """Match the detector's ``classes`` to a project's ``categories`` by the module's rule.

    ``categories`` None: the categories the classes were trained from, as the checkpoint saved
    them (each class with a saved category id stands for it; for a caller that knows no
    project).
    """
    if categories is None:
        categories = [_SavedCategory(c.category_id, c.name) for c in classes
                      if c.category_id is not None]
    categories = list(categories)
    by_id = {category.id: category for category in categories}
    by_name = {category.name: category for category in categories}
    mapping = ClassMap(classes=list(classes))
    for info in classes:
        same = by_id.get(info.category_id) if info.category_id is not None else None
        if same is not None and same.name == info.name:
            mapping.to_category[info.class_id] = same.id
        elif info.name in by_name:
            mapping.to_category[info.class_id] = by_name[info.name].id
        else:
            mapping.unmapped.append(info.name)
            if same is not None:
                mapping.renamed[info.class_id] = same.name
    return mapping


def class_ids_by_category(classes: Iterable[ClassInfo]) -> dict[int, int]:
    """Category id -> class id for classes whose ``category_id`` is in the project's ids
    (from :func:`classes_for` or :meth:`ClassMap.project_classes`): the first class of a
    category; unmapped classes skipped."""
    ids: dict[int, int] = {}
    for c in classes:
        if c.category_id is not None:
            ids.setdefault(c.category_id, c.class_id)
    return ids
