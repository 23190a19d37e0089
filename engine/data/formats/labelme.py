"""labelme JSON: one file per image with ``shapes``, ``imagePath`` and optional ``imageData``.

Coordinates: labelme points are continuous pixel positions on the displayed image (labelme
applies EXIF orientation when it opens a photo), the same pixel-edge space as the project's
boxes, so a rectangle's two corner points become the box unchanged after ordering them
(``x0 = min(xa, xb)`` ...): labelme keeps the corners in the order they were dragged.

Reading accepts one JSON file or a folder (searched recursively; JSON files that are not
labelme files are reported and skipped, and so is a malformed one).

- ``rectangle`` shapes become boxes (the bounding box when a tool wrote more than two points);
  every other shape (polygon, circle, point, line, linestrip, mask, and shapes without a
  ``shape_type``, which labelme treats as polygons) is skipped and counted in one report entry
  per file. A shape's ``flags`` ``difficult`` / ``truncated`` become the box's flags.
- ``imagePath`` (either separator) is relative to the JSON; the image is looked for there,
  then beside the JSON by its base name, then by the JSON's stem with any image suffix.
- When no image file is found but ``imageData`` is embedded, the image is written out once
  beside the JSON, named after ``imagePath`` (else the JSON's stem and the suffix its bytes
  call for), never over an existing different file; a note says so. The record then points at
  that real file.
- ``imageWidth`` / ``imageHeight`` are the declared size. Categories (labels) get ids 1..K in
  alphabetical order.

Writing produces one JSON per image, ``<stem>.json`` in ``out``, labelme 5 style: rectangles
with two points ``[[x0, y0], [x1, y1]]``, ``imagePath`` relative to the JSON (absolute for an
image further away than the JSON folder's parent), ``imageData``
null (the image stays where it is), ``imageWidth`` / ``imageHeight``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from pathlib import Path

from ...text import count
from ..annotations import AnnotationSet, ImageRecord, ReportEntry
from .common import (
    FolderIndex,
    FormatError,
    NamedCategories,
    UniqueNames,
    absolute,
    add_box,
    box_from_points,
    image_file,
    images_to_write,
    is_absolute_name,
    json_number,
    known_size,
    load_json,
    locate_image,
    open_image_record,
    path_parts,
    relative_name,
    to_int,
    writable_boxes,
)

LABELME_VERSION = "5.5.0"
# The suffix an embedded image's bytes call for, by their first bytes (no decoding).
_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"BM", ".bmp"),
          (b"GIF8", ".gif"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


# ---------------------------------------------------------------------------------------------
# Reading


def read_labelme(path: Path) -> AnnotationSet:
    """Read one labelme JSON file or every labelme JSON file under a folder."""
    path = absolute(path)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FormatError(path, "no labelme JSON files (*.json) in the folder")
    annotations = AnnotationSet(root=path if path.is_dir() else path.parent)
    names = NamedCategories()
    index = FolderIndex()
    for json_file in files:
        try:
            data = load_json(json_file)
        except FormatError as error:
            if path.is_file():
                raise
            annotations.report.append(ReportEntry(str(json_file), "file", "skipped",
                                                  error.reason))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
            reason = 'not a labelme file (no "shapes" list)'
            if path.is_file():
                raise FormatError(json_file, reason)
            annotations.report.append(ReportEntry(str(json_file), "file", "skipped", reason))
            continue
        annotations.images.append(_read_file(json_file, data, index, names, annotations.report))
    if not annotations.images and annotations.report:
        raise FormatError(path, "no readable labelme JSON file in the folder "
                                f"({count(len(annotations.report), 'file')} skipped)")
    annotations.categories = names.categories()
    return annotations


def _read_file(json_file: Path, data: dict, index: FolderIndex, names: NamedCategories,
               report: list[ReportEntry]) -> ImageRecord:
    file = str(json_file)
    image_path = _image_path(json_file, data, index, report)
    declared = (to_int(data.get("imageWidth")), to_int(data.get("imageHeight")))
    record, orientation = open_image_record(image_path, declared, file=file, report=report)
    if not data["shapes"]:
        record.status = "done"  # a file listing no shape: the image has no objects, a negative
    other_shapes: Counter[str] = Counter()
    for number, shape in enumerate(data["shapes"], start=1):
        if not isinstance(shape, dict):
            report.append(ReportEntry(file, f"shape {number}", "skipped", "not a JSON object"))
            continue
        kind = shape.get("shape_type") or "polygon"  # labelme's default for a missing type
        label = shape.get("label")
        item = f"shape {number}" + (f" ({label})" if isinstance(label, str) else "")
        if kind != "rectangle":
            other_shapes[str(kind)] += 1
            continue
        if not isinstance(label, str) or not label.strip():
            report.append(ReportEntry(file, item, "skipped", "rectangle without a label"))
            continue
        points = shape.get("points")
        corners = box_from_points(points) if isinstance(points, list) and len(points) >= 2 \
            else None
        if corners is None:
            report.append(ReportEntry(file, item, "skipped",
                                      f"rectangle points are not two (x, y) numbers: {points}"))
            continue
        flags = shape.get("flags") if isinstance(shape.get("flags"), dict) else {}
        box = add_box(record, corners, 0, file=file, item=item, report=report,
                      orientation=orientation, difficult=bool(flags.get("difficult")),
                      truncated=bool(flags.get("truncated")))
        names.add(box, label.strip())
    if other_shapes:
        counts = ", ".join(f"{count} {kind}" for kind, count in sorted(other_shapes.items()))
        report.append(ReportEntry(file, "shapes", "skipped",
                                  f"{counts} shapes skipped: only rectangles become boxes"))
    return record


def _image_path(json_file: Path, data: dict, index: FolderIndex,
                report: list[ReportEntry]) -> Path:
    """The image file of a labelme JSON (written out from imageData when only that exists)."""
    here = json_file.parent
    image_name = data.get("imagePath") if isinstance(data.get("imagePath"), str) else ""
    parts = path_parts(image_name)
    if is_absolute_name(image_name) and Path(image_name).is_file():
        return Path(image_name)
    found = locate_image([here], [image_name, parts[-1]] if parts else [], [json_file.stem],
                         index)
    if found is not None:
        return found
    target = here / (parts[-1] if parts else json_file.stem)
    # A missing image is expected at imagePath, or beside the JSON when that is absolute (a
    # path on the annotator's machine).
    expected = here.joinpath(*parts) if parts and not is_absolute_name(image_name) else target
    embedded = data.get("imageData")
    if not isinstance(embedded, str) or not embedded:
        return expected
    try:
        content = base64.b64decode(embedded, validate=True)
    except (binascii.Error, ValueError) as error:
        report.append(ReportEntry(str(json_file), "imageData", "skipped",
                                  f"embedded image is not valid base64: {error}"))
        return expected
    if not parts:
        target = target.with_name(target.name + _suffix(content))
    target = _free_name(target, content)
    if not target.exists():
        target.write_bytes(content)
    report.append(ReportEntry(str(json_file), str(target), "note",
                              "image file written from the embedded imageData"))
    return target


def _suffix(content: bytes) -> str:
    return next((suffix for magic, suffix in _MAGIC if content.startswith(magic)), ".png")


def _free_name(target: Path, content: bytes) -> Path:
    """``target``, or ``stem_2.ext`` ... when a different file already has that name (a file
    with the same bytes is used as it is)."""
    candidate, number = target, 1
    while candidate.exists() and not (candidate.is_file()
                                      and candidate.read_bytes() == content):
        number += 1
        candidate = target.with_name(f"{target.stem}_{number}{target.suffix}")
    return candidate


# ---------------------------------------------------------------------------------------------
# Writing


def write_labelme(annotations: AnnotationSet, out: Path, *, split: str | None = None,
                  ) -> list[Path]:
    """Write ``out/<stem>.json`` for every image (see the module docstring)."""
    out = absolute(out)
    out.mkdir(parents=True, exist_ok=True)
    names = annotations.category_names()
    stems = UniqueNames()
    written = []
    for image in images_to_write(annotations, split):
        source = image_file(annotations, image)
        json_file = out / f"{stems.take(source.stem)}.json"
        size = known_size(image, source)
        shapes = []
        for box in writable_boxes(annotations, image, str(json_file)):
            flags = {key: True for key in ("difficult", "truncated") if getattr(box, key)}
            shapes.append({
                "label": names[box.category_id],
                "points": [[json_number(box.x0), json_number(box.y0)],
                           [json_number(box.x1), json_number(box.y1)]],
                "group_id": None, "description": "", "shape_type": "rectangle",
                "flags": flags})
        data = {"version": LABELME_VERSION, "flags": {}, "shapes": shapes,
                "imagePath": relative_name(source, out), "imageData": None,
                "imageHeight": size[1] if size else None,
                "imageWidth": size[0] if size else None}
        json_file.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        written.append(json_file)
    return written
