"""Exporting a project's annotations: store -> AnnotationSet -> a format's writer.

Every image of the chosen split (all images when none is chosen) is exported, with its boxes
in project category ids and the project's categories ordered by id; image paths are absolute
and ``root`` is the project folder. Missing images are exported too (their records and boxes
are the user's work); the writer decides what a format can say about them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .annotations import AnnotationSet, Category, ImageRecord, ReportEntry
from .project import Project, box_from_row


def project_annotations(project: Project, split: str | None = None) -> AnnotationSet:
    """The project (or one split of it: train, val, test or "none") as plain records."""
    annotations = AnnotationSet(
        categories=[Category(c.id, c.name, c.color) for c in project.categories()],
        root=project.folder)
    boxes: dict[int, list] = {}
    for row in project.connection.execute(
            "SELECT id, image_id, category_id, x0, y0, x1, y1, difficult, truncated, source, "
            "score FROM boxes ORDER BY image_id, id"):
        boxes.setdefault(row[1], []).append(row)
    for image in project.images(split=split):
        annotations.images.append(ImageRecord(
            path=image.file, width=image.width, height=image.height,
            boxes=[box_from_row(row).to_record() for row in boxes.get(image.id, ())],
            split=image.split, status=image.status))
    return annotations


def export_annotations(project: Project | str | os.PathLike, format: str,
                       out: str | os.PathLike, split: str | None = None, *,
                       images: str = "copy") -> tuple[list[Path], list[ReportEntry]]:
    """Write the project's annotations (or one split's) in ``format`` to ``out``.

    ``project`` is an open :class:`Project` or its folder. ``images`` says whether VOC and YOLO
    exports copy the image files into their layout ("copy"), hard-link them ("link") or leave
    them out ("none"). Returns the files written and what the writer could not write (e.g.
    YOLO boxes of an image whose size is unknown), as :class:`ReportEntry`.
    """
    from .formats import write_annotations

    if not isinstance(project, Project):
        with Project.open(project) as opened:
            return export_annotations(opened, format, out, split, images=images)
    annotations = project_annotations(project, split)
    written = write_annotations(annotations, format, Path(out), split=split, images=images)
    return written, annotations.report

