"""Annotations as plain records: what every file format reads into and writes from.

The format modules (COCO, Pascal VOC, YOLO, labelme) know nothing of the project store, and
the store knows nothing of file formats; both speak these records. Boxes follow the shared
convention: float ``x0, y0, x1, y1`` in pixel-edge coordinates of the image as displayed
(after EXIF orientation), so a box covering a whole W x H image is ``(0, 0, W, H)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")
STATUSES = ("unlabeled", "in_progress", "done", "skipped")
BOX_SOURCES = ("manual", "imported", "predicted")


@dataclass
class Category:
    """A class of object. ``id`` is the id in the source (file or project), stable there."""

    id: int
    name: str
    color: str | None = None  # "#rrggbb"; None lets the project pick one


@dataclass
class BoxRecord:
    """One box in displayed-image pixels; ``category_id`` refers to a :class:`Category`."""

    x0: float
    y0: float
    x1: float
    y1: float
    category_id: int
    difficult: bool = False
    truncated: bool = False
    source: str = "imported"  # one of BOX_SOURCES
    score: float | None = None  # set for source == "predicted"


@dataclass
class ImageRecord:
    """One image and its boxes.

    ``path`` is where the image file is (absolute, or relative to the annotation set's
    ``root``); the file may be missing, and then the record is still kept. ``width`` and
    ``height`` are the displayed size when known (declared by the file or measured), else None.
    ``split`` is one of SPLITS or None; ``status`` one of STATUSES or None (None lets the
    importer decide: "done" when the image has boxes or was marked verified).
    """

    path: Path
    width: int | None = None
    height: int | None = None
    boxes: list[BoxRecord] = field(default_factory=list)
    split: str | None = None
    status: str | None = None


@dataclass
class ReportEntry:
    """One thing an import or export did not take as it was: the file, the item, the reason.

    ``action`` says what happened to the item: "skipped" (left out), "clipped" (kept, changed
    to fit), "missing" (kept, the image file is absent) or "note" (kept unchanged, worth saying).
    """

    file: str
    item: str
    action: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.item}: {self.action}: {self.reason}"


@dataclass
class AnnotationSet:
    """What a reader returns and a writer takes: categories, images and the report so far."""

    categories: list[Category] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    report: list[ReportEntry] = field(default_factory=list)
    root: Path | None = None  # relative image paths are relative to this folder

    def category_names(self) -> dict[int, str]:
        return {category.id: category.name for category in self.categories}

    @property
    def box_count(self) -> int:
        return sum(len(image.boxes) for image in self.images)
