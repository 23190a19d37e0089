"""Importing an annotation file (or folder) into a project, in one transaction, with a report.

What happens to each part of an :class:`~engine.data.annotations.AnnotationSet`:

Categories are matched by name to the project's; a new name creates a category that keeps its
source id when that id is free in the project (so COCO -> new project -> COCO keeps ids), else
gets the next free id. A colour given by the source is kept, else a palette colour is chosen.

Images: each file is measured before the transaction (displayed size after EXIF orientation,
content hash). An image is "already there" only by its stored path: such an image (in the
project, or listed earlier in the same source) is not added again, its imported boxes are
*added* to the boxes it has, except boxes identical to one already there (same category,
coordinates equal to 6 decimals), which are left out and counted (one report entry sums up the
images that got nothing new). Merging never removes a box; its status goes from unlabeled to
the imported status, and a split is set only where it had none. A file under another path
with the same bytes (same content hash) as an image already there is added as an image of its
own, with its own boxes, and a "note" naming the other file: a duplicate the user may want to
look at (the raccoon dataset holds four such pairs, labelled slightly differently; whether to
train on both is the user's choice), never silently merged, so that VOC -> project -> VOC
gives back every file. A missing or unreadable image file keeps its record, its boxes and any
size the annotation file declares, flagged "missing" or "unreadable". A readable file's
measured size wins over a declared one (a note says when they differ).

A record the reader marked "done" without boxes (an empty YOLO label file, a COCO image
without annotations, a VOC file without objects) is a negative: added as done, counted in
``negatives`` and in the summary.

Boxes the store cannot hold (empty, not finite, unknown category) are left out with a report
entry; the readers already validated and clipped boxes, so this is a safety net. The report's
``boxes_skipped`` counts these and the boxes the reader left out (its "skipped" entries, see
:func:`engine.data.formats.common.skipped_box_count`).

Atomicity: everything is written inside one ``BEGIN IMMEDIATE`` transaction; an exception at
any point rolls back to the project exactly as it was before the import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..text import count
from .annotations import (
    SPLITS,
    STATUSES,
    AnnotationSet,
    BoxRecord,
    Category,
    ImageRecord,
    ReportEntry,
)
from .project import (
    INSERT_BOX_SQL,
    ImageMeasurement,
    Project,
    box_problem,
    box_row_values,
    measure_image,
    normalize_color,
)


@dataclass(frozen=True)
class ImportedFile:
    """What one image record of the source contributed: ``outcome`` "added" (a new image) or
    "merged" (its boxes went to the image already there under the same path), and how many
    boxes were added (identical and invalid ones not counted)."""

    path: str
    outcome: str
    boxes: int

    def __str__(self) -> str:
        return f"{self.outcome} {self.path}: {count(self.boxes, 'box')}"


@dataclass
class ImportReport:
    """What an import did, in counts, and every item it did not take as it was, and why.

    ``entries`` are the reader's report entries followed by the store's own; the store's name
    the source as ``file`` and the image's path (or ``<image path>: box <n>``) as ``item``, as
    the readers do. ``files`` has one :class:`ImportedFile` per image record, in the source's
    order: what was imported, not only what went wrong (``frcnn import --verbose`` prints it).
    """

    source: str
    format: str
    images_added: int = 0
    images_merged: int = 0  # records whose path is an image already there
    duplicates: int = 0  # images added whose content equals an image already there (notes)
    negatives: int = 0  # images added that the source says have no objects (status done)
    boxes_added: int = 0
    boxes_identical: int = 0  # left out: an identical box was already on the image
    boxes_skipped: int = 0  # left out: invalid in the source or not storable (see the entries)
    categories_created: list[str] = field(default_factory=list)
    categories_matched: list[str] = field(default_factory=list)
    missing: int = 0  # images kept without a file
    unreadable: int = 0  # images kept whose file cannot be read as an image
    entries: list[ReportEntry] = field(default_factory=list)
    files: list[ImportedFile] = field(default_factory=list)

    def summary(self) -> str:
        duplicates = (f" ({self.duplicates} with the same content as another image)"
                      if self.duplicates else "")
        negatives = (f" ({count(self.negatives, 'background image')} without objects, done: "
                     f"negatives to train on)" if self.negatives else "")
        return (
            f"imported {self.source} ({self.format}): {count(self.images_added, 'image')} "
            f"added{duplicates}{negatives}, {self.images_merged} merged into images already "
            f"there; "
            f"{count(self.boxes_added, 'box')} added, "
            f"{count(self.boxes_identical, 'identical box', 'identical boxes')} left out, "
            f"{count(self.boxes_skipped, 'invalid box', 'invalid boxes')} skipped; "
            f"{count(len(self.categories_created), 'new category', 'new categories')}, "
            f"{len(self.categories_matched)} matched; {count(self.missing, 'image')} "
            f"missing, {self.unreadable} unreadable; "
            f"{count(len(self.entries), 'report entry', 'report entries')}"
        )


def import_annotations(project: Project | str | os.PathLike, source: str | os.PathLike,
                       format: str = "auto") -> ImportReport:
    """Read ``source`` with :func:`engine.data.formats.read_annotations` and import it.

    ``project`` is an open :class:`Project`, or a folder: opened, or created when it holds no
    project yet (only after the source was read, so an unreadable source creates nothing).
    Raises the reader's ``FormatError`` (a ValueError) when the source cannot be read at all.
    """
    from .formats import detect_format, read_annotations

    annotations = read_annotations(source, format=format)
    format_name = detect_format(source) if format == "auto" else format
    if isinstance(project, Project):
        return import_annotation_set(project, annotations, source=str(source),
                                     format=format_name)
    with Project.open_or_create(project) as opened:
        return import_annotation_set(opened, annotations, source=str(source),
                                     format=format_name)


def import_annotation_set(project: Project, annotations: AnnotationSet, *, source: str = "",
                          format: str = "",
                          measure: Callable[[Path], ImageMeasurement] = measure_image,
                          ) -> ImportReport:
    """Import records already read (see the module docstring for the rules)."""
    from .formats.common import skipped_box_count

    report = ImportReport(source, format, entries=list(annotations.report),
                          boxes_skipped=skipped_box_count(annotations.report))
    # What the reader already said about each image file (item = its path), not to repeat it.
    reader_said: dict[str, list[ReportEntry]] = {}
    for entry in annotations.report:
        reader_said.setdefault(entry.item, []).append(entry)
    paths = [_absolute(image.path, annotations.root) for image in annotations.images]
    # Reading headers and hashing files happens before the write lock is taken, so a GUI
    # reading the project is not held up while we read files.
    measurements = [measure(path) for path in paths]

    with project.transaction() as db:
        category_ids = _map_categories(project, annotations.categories, report)
        by_path = dict(db.execute("SELECT path, id FROM images"))
        by_hash: dict[str, int] = {}
        for digest, image_id in db.execute(
                "SELECT hash, id FROM images WHERE hash IS NOT NULL ORDER BY id"):
            by_hash.setdefault(digest, image_id)
        stored_of = {image_id: path for path, image_id in by_path.items()}
        next_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM images").fetchone()[0]
        first_new_id = next_id
        # Box keys of every image that boxes were merged into, made when first needed (most
        # imports merge nothing, and 50k keys made for nothing cost a tenth of a second).
        known_boxes: dict[int, set[tuple]] = {}
        new_boxes: dict[int, list[BoxRecord]] = {}
        image_rows: list[tuple] = []
        box_rows: list[tuple[int, BoxRecord]] = []
        merged_updates: list[tuple] = []
        unchanged: list[str] = []  # images already in the project with all these boxes

        for record, path, measured in zip(annotations.images, paths, measurements):
            stored = project.stored_path(path)
            boxes = _storable_boxes(record.boxes, category_ids, str(path), report)
            status, split = _status_and_split(record, str(path), report)
            target = by_path.get(stored)
            if target is not None:
                keys = known_boxes.get(target)
                if keys is None:
                    earlier = new_boxes[target] if target in new_boxes else project.boxes(target)
                    keys = known_boxes[target] = {_box_key(box) for box in earlier}
                added = 0
                for box in boxes:
                    key = _box_key(box)
                    if key in keys:
                        report.boxes_identical += 1
                        continue
                    keys.add(key)
                    box_rows.append((target, box))
                    added += 1
                report.boxes_added += added
                report.images_merged += 1
                report.files.append(ImportedFile(str(path), "merged", added))
                if added or target >= first_new_id:
                    where = "earlier in this import" if target >= first_new_id else "in the project"
                    report.entries.append(ReportEntry(
                        report.source, str(path), "note",
                        f"already {where}: {count(added, 'box')} added, "
                        f"{count(len(boxes) - added, 'identical box', 'identical boxes')} "
                        f"left out"))
                else:
                    # Re-importing a file gives thousands of these: one entry says it all.
                    unchanged.append(str(path))
                if target < first_new_id:
                    merged_updates.append((status, split, target))
                continue

            width, height = record.width, record.height
            if measured.problem is None:
                if (width, height) not in ((None, None), (measured.width, measured.height)):
                    report.entries.append(ReportEntry(
                        report.source, str(path), "note",
                        f"the annotation file says {width}x{height}, the image file is "
                        f"{measured.width}x{measured.height} as displayed; keeping the latter"))
                width, height = measured.width, measured.height
            elif measured.problem == "missing":
                report.missing += 1
                said = reader_said.get(str(path), [])
                if not any(entry.action == "missing" for entry in said):
                    report.entries.append(ReportEntry(
                        report.source, str(path), "missing",
                        f"{measured.reason}; kept with its {count(len(boxes), 'box')}"))
            else:
                report.unreadable += 1
                said = reader_said.get(str(path), [])
                if not any(measured.reason in entry.reason for entry in said):
                    report.entries.append(ReportEntry(
                        report.source, str(path), "note",
                        f"{measured.reason}; kept with its {count(len(boxes), 'box')}, flagged "
                        f"unreadable"))
            image_id = next_id
            next_id += 1
            image_rows.append((image_id, stored, width, height, measured.hash, status, split,
                               measured.problem))
            by_path[stored] = image_id
            if measured.hash is not None:
                twin = by_hash.setdefault(measured.hash, image_id)
                if twin != image_id:
                    # Same bytes, another path: its own image with its own boxes, said once.
                    where = "earlier in this import" if twin >= first_new_id else "in the project"
                    report.duplicates += 1
                    report.entries.append(ReportEntry(
                        report.source, str(path), "note",
                        f"same content as {project.file(stored_of[twin])} ({where}); added as "
                        f"an image of its own with its {count(len(boxes), 'box')}: a duplicate "
                        f"you may want to look at"))
            stored_of[image_id] = stored
            new_boxes[image_id] = boxes
            box_rows.extend((image_id, box) for box in boxes)
            report.boxes_added += len(boxes)
            report.images_added += 1
            report.negatives += status == "done" and not boxes
            report.files.append(ImportedFile(str(path), "added", len(boxes)))

        if unchanged:
            report.entries.append(ReportEntry(
                report.source, count(len(unchanged), "image"), "note",
                f"already in the project with all their boxes, nothing added (the first: "
                f"{unchanged[0]})"))
        db.executemany(
            "INSERT INTO images (id, path, width, height, hash, status, split, problem) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", image_rows)
        # A generator: rows are made as SQLite takes them (no second list of 50k tuples).
        db.executemany(INSERT_BOX_SQL,
                       (box_row_values(image_id, box) for image_id, box in box_rows))
        db.executemany(
            "UPDATE images SET status = CASE WHEN status = 'unlabeled' THEN ? ELSE status END, "
            "split = coalesce(split, ?) WHERE id = ?", merged_updates)
    return report


def _absolute(path: Path, root: Path | None) -> Path:
    path = Path(path)
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    return Path(os.path.abspath(path))


def _map_categories(project: Project, categories: list[Category],
                    report: ImportReport) -> dict[int, int]:
    """Source category id -> project category id, creating categories for new names.

    Two passes, so that every new category whose source id is free keeps it, and only the
    others are numbered after the highest id.
    """
    db = project.connection
    existing = {category.name: category.id for category in project.categories()}
    taken = set(existing.values())
    mapping: dict[int, int] = {}
    new: list[tuple[Category, str, int | None]] = []
    new_names: dict[str, int] = {}
    for category in categories:
        name = category.name.strip() if isinstance(category.name, str) else ""
        if not name:
            report.entries.append(ReportEntry(
                report.source, f"category {category.id}", "skipped",
                "no name; its boxes are left out"))
            continue
        if name in existing:
            mapping[category.id] = existing[name]
            report.categories_matched.append(name)
        elif name in new_names:
            report.entries.append(ReportEntry(
                report.source, f"category {category.id} {name!r}", "note",
                f"same name as category {new_names[name]}; merged into it"))
        else:
            new_names[name] = category.id
            keep = category.id if category.id >= 0 and category.id not in taken else None
            if keep is not None:
                taken.add(keep)
            new.append((category, name, keep))
    renumber = max(taken, default=0) + 1
    sequence = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'categories'").fetchone()
    if sequence is not None:
        # Ids freed by deleted categories are not handed out again.
        renumber = max(renumber, sequence[0] + 1)
    for category, name, keep in new:
        if keep is None:
            keep, renumber = renumber, renumber + 1
        color = None
        if category.color is not None:
            try:
                color = normalize_color(category.color)
            except ValueError as error:
                report.entries.append(ReportEntry(
                    report.source, f"category {category.id} {name!r}", "note",
                    f"{error}; a palette colour is used"))
        db.execute("INSERT INTO categories (id, name, color) VALUES (?, ?, ?)",
                   (keep, name, color or project.next_color()))
        mapping[category.id] = keep
        report.categories_created.append(name)
    for category in categories:
        name = category.name.strip() if isinstance(category.name, str) else ""
        if category.id not in mapping and name in new_names:
            mapping[category.id] = mapping[new_names[name]]
    return mapping


def _status_and_split(record: ImageRecord, file: str,
                      report: ImportReport) -> tuple[str, str | None]:
    """The record's status (decided from its boxes when None) and split, checked."""
    status = record.status or ("done" if record.boxes else "unlabeled")
    if status not in STATUSES:
        report.entries.append(ReportEntry(report.source, file, "note",
                                          f"unknown status {status!r}; imported as unlabeled"))
        status = "unlabeled"
    split = record.split
    if split not in (*SPLITS, None):
        report.entries.append(ReportEntry(report.source, file, "note",
                                          f"unknown split {split!r}; imported without a split"))
        split = None
    return status, split


def _storable_boxes(boxes: list[BoxRecord], category_ids: dict[int, int], file: str,
                    report: ImportReport) -> list[BoxRecord]:
    """The boxes with project category ids; the ones the store cannot hold are reported."""
    kept = []
    for index, box in enumerate(boxes):
        problem = box_problem(box)
        if problem is None and box.category_id not in category_ids:
            problem = f"category id {box.category_id} is not among the file's categories"
        if problem is not None:
            report.boxes_skipped += 1
            report.entries.append(ReportEntry(report.source, f"{file}: box {index}", "skipped",
                                              problem))
            continue
        kept.append(BoxRecord(box.x0, box.y0, box.x1, box.y1, category_ids[box.category_id],
                              difficult=box.difficult, truncated=box.truncated,
                              source=box.source, score=box.score))
    return kept


def _box_key(box: BoxRecord | object) -> tuple:
    """What makes two boxes of an image "identical": category and coordinates to 6 decimals."""
    return (box.category_id, round(box.x0, 6), round(box.y0, 6), round(box.x1, 6),
            round(box.y1, 6))
