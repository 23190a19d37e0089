"""COCO object-detection JSON: ``images``, ``annotations`` and ``categories`` in one file.

Coordinates: ``bbox`` is ``[x, y, w, h]`` in the shared pixel-edge space of the displayed
image, so the box is ``(x, y, x + w, y + h)`` and a full W x H image is ``[0, 0, W, H]``.

Reading accepts one JSON file, or a folder holding COCO files (itself or its ``annotations/``
sub-folder; several files are merged, e.g. ``instances_train.json`` + ``instances_val.json``).
A file's name states its images' split when it contains train/val/test as a word
("instances_val2017.json" -> "val"). Exports of CVAT (``licenses``, ``info``, ``attributes``,
ids from 1, RLE segmentations on crowd annotations) and Label Studio (ids from 0,
``file_name`` such as ``images/\\\\abc.jpg`` with backslashes, an ``ignore`` key) read as they
are; unknown keys are ignored.

- Category ids are kept as the file has them (from 0 or 1, gaps allowed); a category without a
  name is named ``class_<id>``. A duplicate category id is reported and skipped; two files
  giving one id two names raise FormatError.
- ``file_name`` (either separator, sub-folders allowed) is looked for relative to the JSON's
  folder, then in its ``images/`` sub-folder (and, for a JSON in ``annotations/``, beside that
  folder), then by its base name anywhere under the dataset folder; an image not found is kept
  with a "missing" entry. A duplicate image id is reported and the second image skipped.
- An annotation uses its ``bbox``; without one, the bounding box of its segmentation (polygons,
  or RLE through pycocotools). Unknown image or category ids are reported and skipped.
- ``iscrowd: 1`` (and Label Studio's ``ignore: 1``) annotations are imported as *difficult*
  boxes, with one note per file: the project's evaluation treats difficult boxes as COCO crowd
  regions (a detection there is neither right nor wrong), and the writer writes them back as
  ``iscrowd: 1``. ``attributes: {"truncated": true}`` (CVAT-style attributes) marks a box
  truncated; other attributes (occluded, rotation) are ignored.

Writing produces one JSON file (``out`` itself when it ends in .json, else
``out/annotations.json``, or ``out/instances_<split>.json`` for a split) that pycocotools
loads: categories with the records' ids as they are, images numbered 1..N with ``file_name``
relative to the JSON's folder when the image is inside it or beside it (``images/x.jpg``,
``../images/x.jpg``), else absolute,
annotations numbered 1..M with ``bbox``, ``area = w * h``, ``iscrowd`` (1 for difficult
boxes), the box as a 4-point polygon ``segmentation`` and, for truncated boxes,
``attributes: {"truncated": true}``. Images are not copied.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..annotations import AnnotationSet, Category, ImageRecord, ReportEntry
from .common import (
    FolderIndex,
    FormatError,
    absolute,
    add_box,
    box_from_points,
    image_file,
    images_to_write,
    is_absolute_name,
    json_kind,
    json_number,
    known_size,
    load_json,
    locate_image,
    open_image_record,
    path_parts,
    relative_name,
    report_unwritable,
    split_from_name,
    to_float,
    to_int,
    unique_folders,
    writable_boxes,
)

# ---------------------------------------------------------------------------------------------
# Reading


def read_coco(path: Path) -> AnnotationSet:
    """Read one COCO JSON file, or every COCO JSON file of a folder (merged)."""
    path = absolute(path)
    files = coco_files(path) if path.is_dir() else [path]
    if not files:
        raise FormatError(path, "no COCO JSON file (with an \"images\" list) in the folder or "
                                "its annotations/ sub-folder")
    annotations = AnnotationSet(root=path if path.is_dir() else path.parent)
    categories: dict[int, tuple[Category, Path]] = {}
    for json_file in files:
        for category in _read_file(json_file, annotations):
            earlier = categories.setdefault(category.id, (category, json_file))
            if earlier[0].name != category.name:
                raise FormatError(json_file, f"category id {category.id} is "
                                             f"{category.name!r} here but {earlier[0].name!r} "
                                             f"in {earlier[1]}")
    annotations.categories = [category for category, _ in categories.values()]
    return annotations


def coco_files(folder: Path) -> list[Path]:
    """The COCO JSON files in ``folder`` and its ``annotations/`` sub-folder."""
    found = []
    for where in (folder, folder / "annotations"):
        if where.is_dir():
            found += [p for p in sorted(where.iterdir())
                      if p.suffix.lower() == ".json" and p.is_file() and json_kind(p) == "coco"]
    return found


def _read_file(json_file: Path, annotations: AnnotationSet) -> list[Category]:
    """Add one file's images and boxes to ``annotations``; return its categories."""
    data = load_json(json_file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FormatError(json_file, 'not a COCO file: no "images" list')
    file, report = str(json_file), annotations.report
    categories = _categories(data.get("categories"), file, report)
    images = _images(data["images"], json_file, annotations)
    crowd = 0
    annotated: set[int] = set()  # records some annotation entry points at
    for number, ann in enumerate(_list(data.get("annotations"), file, "annotations", report)):
        if not isinstance(ann, dict):
            report.append(ReportEntry(file, f"annotation #{number + 1}", "skipped",
                                      "not a JSON object"))
            continue
        item = f"annotation {ann.get('id', f'#{number + 1}')}"
        target = images.get(_key(ann.get("image_id")))
        if target is None:
            report.append(ReportEntry(file, item, "skipped",
                                      f"unknown image id {ann.get('image_id')!r}"))
            continue
        annotated.add(id(target[0]))
        category_id = to_int(ann.get("category_id"))
        if category_id not in categories:
            report.append(ReportEntry(file, item, "skipped",
                                      f"unknown category id {ann.get('category_id')!r}"))
            continue
        box = _box(ann)
        if box is None:
            report.append(ReportEntry(file, item, "skipped",
                                      "no usable bbox and no polygon or RLE segmentation"))
            continue
        is_crowd = _truthy(ann.get("iscrowd")) or _truthy(ann.get("ignore"))
        attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
        added = add_box(target[0], box, category_id, file=file, item=item, report=report,
                        orientation=target[1], difficult=is_crowd,
                        truncated=_truthy(attributes.get("truncated")))
        crowd += bool(added and is_crowd)
    for record, _ in images.values():
        if id(record) not in annotated:
            record.status = "done"  # no annotation at all: a negative (COCO's own convention)
    if crowd:
        report.append(ReportEntry(file, "iscrowd", "note",
                                  f"{crowd} crowd (iscrowd or ignore = 1) annotations imported "
                                  f"as difficult boxes"))
    return list(categories.values())


def _list(value: object, file: str, key: str, report: list[ReportEntry]) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        report.append(ReportEntry(file, key, "skipped", f'"{key}" is not a list'))
        return []
    return value


def _categories(value: object, file: str, report: list[ReportEntry]) -> dict[int, Category]:
    categories: dict[int, Category] = {}
    for number, entry in enumerate(_list(value, file, "categories", report), start=1):
        category_id = to_int(entry.get("id")) if isinstance(entry, dict) else None
        if category_id is None:
            report.append(ReportEntry(file, f"category #{number}", "skipped",
                                      "no integer id"))
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            name = f"class_{category_id}"
            report.append(ReportEntry(file, f"category {category_id}", "note",
                                      f"no name; named {name}"))
        if category_id in categories:
            report.append(ReportEntry(file, f"category {category_id}", "skipped",
                                      f"duplicate category id (first: "
                                      f"{categories[category_id].name!r})"))
            continue
        categories[category_id] = Category(category_id, name.strip())
    return categories


def _images(entries: list, json_file: Path, annotations: AnnotationSet,
            ) -> dict[object, tuple[ImageRecord, int]]:
    """Image id -> (record, EXIF orientation to apply to its boxes), records added."""
    file, report = str(json_file), annotations.report
    locator = _ImageLocator(json_file)
    split = split_from_name(json_file.stem)
    images: dict[object, tuple[ImageRecord, int]] = {}
    for number, entry in enumerate(entries, start=1):
        image_id = _key(entry.get("id")) if isinstance(entry, dict) else None
        item = f"image {image_id!r}" if image_id is not None else f"image #{number}"
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if image_id is None or not isinstance(file_name, str) or not file_name.strip():
            report.append(ReportEntry(file, item, "skipped", "no id or no file_name"))
            continue
        if image_id in images:
            report.append(ReportEntry(
                file, item, "skipped",
                f"duplicate image id ({file_name}); the first image "
                f"{images[image_id][0].path.name} keeps the id and its annotations"))
            continue
        found = locator.find(file_name)
        declared = (to_int(entry.get("width")), to_int(entry.get("height")))
        record, orientation = open_image_record(
            found or locator.expected(file_name), declared, file=file, report=report,
            exists=found is not None)
        record.split = split
        annotations.images.append(record)
        images[image_id] = (record, orientation)
    return images


class _ImageLocator:
    """Finds a ``file_name`` (see the module docstring for the order)."""

    def __init__(self, json_file: Path):
        here = json_file.parent
        # A JSON in annotations/ describes the dataset folder above it (the COCO layout).
        self.dataset = here.parent if here.name.lower() == "annotations" else here
        self.folders = unique_folders([here, here / "images", self.dataset,
                                       self.dataset / "images"])
        self.here = here
        self.index = FolderIndex()
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, file_name: str) -> Path | None:
        if is_absolute_name(file_name) and Path(file_name).is_file():
            return Path(file_name)
        parts = path_parts(file_name)
        found = locate_image(self.folders, [file_name, parts[-1]], [], self.index)
        if found is None:
            matches = self._names().get(parts[-1].lower(), [])
            found = matches[0] if len(matches) == 1 else None
        return found

    def expected(self, file_name: str) -> Path:
        """Where a missing image should be: ``file_name`` relative to the JSON's folder, or as
        written when absolute here (a Windows path read elsewhere: beside the JSON)."""
        parts = path_parts(file_name)
        if is_absolute_name(file_name):
            return Path(file_name) if Path(file_name).is_absolute() else self.here / parts[-1]
        return self.here.joinpath(*parts)

    def _names(self) -> dict[str, list[Path]]:
        """Every file under the dataset folder by lower-case name (made on first need)."""
        if self._by_name is None:
            self._by_name = {}
            for candidate in sorted(self.dataset.rglob("*")):
                if candidate.is_file():
                    self._by_name.setdefault(candidate.name.lower(), []).append(candidate)
        return self._by_name


def _box(ann: dict) -> tuple[object, object, object, object] | None:
    """The annotation's (x0, y0, x1, y1): from a numeric bbox, else from its segmentation,
    else the bad bbox as it is (for :func:`add_box` to report), else None."""
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4:
        x, y, w, h = (to_float(value) for value in bbox)
        if None not in (x, y, w, h):
            return x, y, x + w, y + h  # type: ignore[operator]
    from_segmentation = _segmentation_box(ann.get("segmentation"))
    if from_segmentation is not None:
        return from_segmentation
    if isinstance(bbox, list) and len(bbox) == 4:
        return tuple(bbox)  # type: ignore[return-value]
    return None


def _segmentation_box(segmentation: object) -> tuple[float, float, float, float] | None:
    """The bounding box of polygons (``[[x, y, x, y, ...], ...]``) or of an RLE mask."""
    if isinstance(segmentation, list) and segmentation:
        polygons = segmentation if isinstance(segmentation[0], list) else [segmentation]
        points = [pair for polygon in polygons if isinstance(polygon, list)
                  for pair in zip(polygon[0::2], polygon[1::2])]
        return box_from_points(points)
    if isinstance(segmentation, dict):
        return _rle_box(segmentation)
    return None


def _rle_box(rle: dict) -> tuple[float, float, float, float] | None:
    """The bounding box of an RLE mask (compressed or not), through pycocotools."""
    from pycocotools import mask as mask_utils

    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        return None
    try:
        encoded = rle
        if isinstance(rle.get("counts"), list):
            encoded = mask_utils.frPyObjects(rle, int(size[0]), int(size[1]))
        x, y, w, h = (float(v) for v in mask_utils.toBbox(encoded))
    except (TypeError, ValueError, KeyError, OverflowError):
        return None
    return x, y, x + w, y + h


def _key(value: object) -> object:
    """An id as a dict key: ints (also 3.0 and "3") as int, other strings as they are."""
    as_int = to_int(value)
    if as_int is not None:
        return as_int
    return value if isinstance(value, str) and value else None


def _truthy(value: object) -> bool:
    return value not in (None, 0, False, "0", "false", "")


# ---------------------------------------------------------------------------------------------
# Writing


def write_coco(annotations: AnnotationSet, out: Path, *, split: str | None = None) -> list[Path]:
    """Write one COCO JSON file (see the module docstring for its name and contents)."""
    out = absolute(out)
    if out.suffix.lower() == ".json":
        json_file = out
    else:
        json_file = out / (f"instances_{split}.json" if split not in (None, "none")
                           else "annotations.json")
    folder = json_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    images, boxes = [], []
    for image_id, image in enumerate(images_to_write(annotations, split), start=1):
        path = image_file(annotations, image)
        size = known_size(image, path)
        if size is None:
            report_unwritable(annotations, str(json_file), str(path),
                              "image size unknown (missing or unreadable image): width and "
                              "height written as null")
        images.append({"id": image_id, "file_name": relative_name(path, folder),
                       "width": size[0] if size else None, "height": size[1] if size else None})
        for box in writable_boxes(annotations, image, str(json_file)):
            boxes.append(_annotation(len(boxes) + 1, image_id, box))
    data = {
        "info": {"description": "exported by Faster R-CNN Workbench", "version": "1.0"},
        "licenses": [],
        "categories": [{"id": c.id, "name": c.name, "supercategory": ""}
                       for c in sorted(annotations.categories, key=lambda c: c.id)],
        "images": images,
        "annotations": boxes,
    }
    json_file.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return [json_file]


def _annotation(annotation_id: int, image_id: int, box) -> dict:
    x0, y0, x1, y1 = (json_number(v) for v in (box.x0, box.y0, box.x1, box.y1))
    width, height = json_number(box.x1 - box.x0), json_number(box.y1 - box.y0)
    annotation = {
        "id": annotation_id, "image_id": image_id, "category_id": box.category_id,
        "bbox": [x0, y0, width, height], "area": json_number(width * height),
        "iscrowd": int(bool(box.difficult)),
        # The box as a polygon: tools that build masks from every annotation need one.
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}
    if box.truncated:  # COCO has no such field; CVAT keeps flags like it in "attributes"
        annotation["attributes"] = {"truncated": True}
    return annotation
