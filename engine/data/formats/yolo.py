"""YOLO text labels: one ``.txt`` per image, a line ``class cx cy w h`` per box.

Coordinates: ``cx cy w h`` are the box centre and size divided by the displayed image's width
and height (after EXIF orientation, as Ultralytics measures it), so on a W x H image
``x0 = (cx - w/2) * W, y0 = (cy - h/2) * H, x1 = (cx + w/2) * W, y1 = (cy + h/2) * H``.
Converting needs the image's size, measured from the file's header: a label file whose image
is missing or unreadable cannot be converted, and its boxes are skipped with a report entry
(the image record is kept). Class ids are the category ids.

Reading accepts
- the Ultralytics layout: a ``data.yaml`` (the file, or a folder holding it) with ``names`` as
  a list or an ``{id: name}`` mapping, ``path`` (the dataset root, relative to the YAML's
  folder) and ``train``/``val``/``test`` naming image folders, image list files or lists of
  them; Roboflow's ``../train/images`` paths are found too. Labels are where Ultralytics looks:
  the last ``images`` folder of the image's path replaced by ``labels``, else beside the image.
  A folder listed under several splits gives its images no split.
- the flat layout of Label Studio and LabelImg: ``classes.txt`` (or ``obj.names``) with
  ``images/`` and ``labels/``, with images and labels side by side, or with split sub-folders
  (``images/train``, ``train/images``: the split is taken from the folder names).

``classes.txt`` has one name per line and the line number is the class id. Trailing blank
lines make no class; an interior blank line still takes its id (later names keep their ids)
and becomes a class named ``class_<id>``, with a note. Line endings may be CRLF; images may
have any of the usual suffixes in any case. A line with 6 values (a confidence at the end) is
read as a box with a note; more values in pairs (a YOLO segmentation polygon) give the
polygon's bounding box with a note; anything else is skipped with a report entry.

Writing produces the Ultralytics layout: ``data.yaml`` (``path`` absolute, ``train``/``val``/
``test`` for the splits present, ``names`` as an ``id: name`` mapping), ``images/<split>/`` and
``labels/<split>/``. Images are copied (or hard-linked, or left where they are); every image
gets a label file, empty when it has no boxes. YOLO ids are 0..K-1 in the order of the
category ids (identity when they already are 0..K-1). Images without a split go to ``train``
when other images have one; when none has a split, images go straight into ``images/`` and
``labels/`` and both ``train`` and ``val`` point there (Ultralytics needs both keys).

PyYAML is not a dependency: :func:`parse_yaml_subset` reads the part of YAML that data.yaml
files use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from ...text import count as count_of
from ..annotations import SPLITS, AnnotationSet, Category, ImageRecord, ReportEntry
from .common import (
    IMAGE_SUFFIXES,
    FormatError,
    UniqueNames,
    absolute,
    add_box,
    box_from_points,
    format_number,
    image_file,
    images_to_write,
    is_absolute_name,
    known_size,
    open_image_record,
    path_parts,
    place_image,
    report_unwritable,
    split_from_name,
    to_float,
    writable_boxes,
)

NAME_FILES = ("classes.txt", "obj.names")
YAML_SUFFIXES = (".yaml", ".yml")


# ---------------------------------------------------------------------------------------------
# Reading


def read_yolo(path: Path) -> AnnotationSet:
    """Read a data.yaml, a folder in the Ultralytics or flat layout, or a classes.txt's folder."""
    path = absolute(path)
    if path.is_file() and path.suffix.lower() in YAML_SUFFIXES:
        yaml_file: Path | None = path
    elif path.is_file():
        yaml_file, path = None, path.parent  # classes.txt (or a label file): its folder
    else:
        yaml_file = find_data_yaml(path)
    annotations = AnnotationSet(root=path.parent if path.is_file() else path)
    report = annotations.report
    if yaml_file is not None:
        names, splits = _yaml_layout(yaml_file, report)
    else:
        names = _names_file(path, report)
        splits = _flat_layout(path)
    if not splits:
        raise FormatError(yaml_file or path, "no images found for a YOLO dataset")
    used_labels: set[Path] = set()
    for image, split in splits.items():
        record = _read_image(image, names, used_labels, report)
        record.split = split
        annotations.images.append(record)
    _report_orphans(used_labels, set(splits), report)
    ids = sorted(names) if names is not None else sorted(
        {box.category_id for image in annotations.images for box in image.boxes})
    if names is None and ids:
        report.append(ReportEntry(str(path), "classes", "note",
                                  "no data.yaml names or classes.txt: classes named class_<id>"))
    annotations.categories = [
        Category(i, names[i] if names is not None else f"class_{i}") for i in ids]
    return annotations


def find_data_yaml(folder: Path) -> Path | None:
    """The folder's dataset YAML: data.yaml, else the one *.yaml/*.yml with a ``names`` key."""
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (folder / name).is_file():
            return folder / name
    candidates = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in YAML_SUFFIXES
                  and p.is_file() and "names" in parse_yaml_subset(_read_text(p))]
    return candidates[0] if len(candidates) == 1 else None


def _read_text(path: Path) -> str:
    # utf-8-sig drops a byte-order mark; universal newlines turn CRLF into "\n".
    return path.read_text(encoding="utf-8-sig", errors="replace")


def _names_file(folder: Path, report: list[ReportEntry]) -> dict[int, str] | None:
    """Class names from classes.txt / obj.names in the folder or its labels/ folder."""
    for where in (folder, folder / "labels"):
        for name in NAME_FILES:
            if (where / name).is_file():
                return _class_lines(where / name, report)
    return None


def _class_lines(path: Path, report: list[ReportEntry]) -> dict[int, str]:
    lines = [line.strip() for line in _read_text(path).splitlines()]
    while lines and not lines[-1]:
        lines.pop()  # trailing blank lines (a final newline, an editor's extra) make no class
    names: dict[int, str] = {}
    for class_id, line in enumerate(lines):
        if not line:
            report.append(ReportEntry(
                str(path), f"line {class_id + 1}", "note",
                f"blank line: class id {class_id} kept as 'class_{class_id}' so that later "
                f"names keep their ids"))
        names[class_id] = line or f"class_{class_id}"
    return names


def _yaml_layout(yaml_file: Path, report: list[ReportEntry],
                 ) -> tuple[dict[int, str] | None, dict[Path, str | None]]:
    """Names and {image: split} of an Ultralytics data.yaml (in the YAML's order)."""
    data = parse_yaml_subset(_read_text(yaml_file))
    names = _yaml_names(data.get("names"), yaml_file, report)
    if names is None:
        names = _names_file(yaml_file.parent, report)
    base = yaml_file.parent
    root = base
    declared_root = data.get("path")
    if isinstance(declared_root, str) and declared_root:
        candidate = _find_path([declared_root], [base])
        if candidate is None:
            report.append(ReportEntry(str(yaml_file), "path", "note",
                                      f"{declared_root!r} not found; using the YAML's folder"))
        root = candidate or base
    splits: dict[Path, str | None] = {}
    for split in SPLITS:
        entries = data.get(split)
        if entries in (None, ""):
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            images = _split_images(str(entry), root, base)
            if images is None:
                report.append(ReportEntry(str(yaml_file), split, "note",
                                          f"{entry!r} not found; no images read from it"))
                continue
            for image in images:
                # An image listed under two splits (train: images, val: images) has none.
                splits[image] = split if splits.get(image, split) == split else None
    return names, splits


def _yaml_names(value: object, yaml_file: Path, report: list[ReportEntry]
                ) -> dict[int, str] | None:
    if isinstance(value, list):
        return {i: str(name) for i, name in enumerate(value)}
    if isinstance(value, dict):
        names: dict[int, str] = {}
        for key, name in value.items():
            try:
                names[int(key)] = str(name)
            except (TypeError, ValueError):
                report.append(ReportEntry(str(yaml_file), f"names: {key}", "skipped",
                                          "class id is not an integer"))
        return names
    if value is not None:
        report.append(ReportEntry(str(yaml_file), "names", "note",
                                  "names is neither a list nor a mapping; ignored"))
    return None


def _find_path(names: Iterable[str], bases: Iterable[Path]) -> Path | None:
    """The first existing path among each base joined with each name (a name starting with
    "../" is also tried without it: Roboflow writes paths relative to a folder it imagines)."""
    bases = list(bases)
    for name in names:
        parts = path_parts(name)
        if is_absolute_name(name) and Path(name).exists():
            return absolute(name)
        stripped = parts
        while stripped and stripped[0] == "..":
            stripped = stripped[1:]
        for candidate_parts in (parts, stripped):
            for base in bases:
                candidate = base.joinpath(*candidate_parts)
                if candidate.exists():
                    return absolute(candidate)
    return None


def _split_images(entry: str, root: Path, base: Path) -> list[Path] | None:
    """The images a train/val/test entry names: a folder (searched recursively) or a text file
    listing images; None when it does not exist."""
    found = _find_path([entry], [root, base])
    if found is None:
        return None
    if found.is_dir():
        return _images_under(found)
    images = []
    for line in _read_text(found).splitlines():
        line = line.strip()
        if line:
            image = _find_path([line], [found.parent, root])
            if image is not None and image.is_file():
                images.append(image)
    return images


def _images_under(folder: Path) -> list[Path]:
    return sorted(absolute(p) for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _flat_layout(folder: Path) -> dict[Path, str | None]:
    """{image: split} of a folder without data.yaml (see the module docstring)."""
    roots = [folder / "images"] if (folder / "images").is_dir() else [
        sub / "images" for sub in sorted(folder.iterdir()) if (sub / "images").is_dir()]
    if not roots:
        return {absolute(p): None for p in sorted(folder.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    splits: dict[Path, str | None] = {}
    for images_root in roots:
        for image in _images_under(images_root):
            relative = image.relative_to(folder).parts[:-1]
            splits[image] = next((s for s in map(split_from_name, relative) if s), None)
    return splits


def label_path(image: Path) -> Path:
    """Where Ultralytics looks for an image's labels: the last ``images`` folder of the path
    replaced by ``labels``, the suffix by ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _read_image(image: Path, names: dict[int, str] | None, used_labels: set[Path],
                report: list[ReportEntry]) -> ImageRecord:
    labels = label_path(image)
    if not labels.is_file():
        labels = image.with_suffix(".txt")
    record, _ = open_image_record(image, (None, None), file=str(image), report=report,
                                  exists=True)
    if not labels.is_file():
        return record  # no label file: an image without boxes (Ultralytics: a background)
    used_labels.add(labels)
    file = str(labels)
    try:
        lines = _read_text(labels).splitlines()
    except OSError as error:
        report.append(ReportEntry(file, "file", "skipped", f"cannot read the file: {error}"))
        return record
    rows = [(n, line.split()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        record.status = "done"  # an empty label file: a background image (Ultralytics)
        return record
    if rows and (record.width is None or record.height is None):
        report.append(ReportEntry(file, "file", "skipped",
                                  f"{count_of(len(rows), 'box')} skipped: the size of "
                                  f"{image} is unknown (missing or unreadable), so "
                                  f"normalized boxes cannot be converted"))
        return record
    for number, values in rows:
        _read_line(record, number, values, names, file, report)
    return record


def _read_line(record: ImageRecord, number: int, values: list[str],
               names: dict[int, str] | None, file: str, report: list[ReportEntry]) -> None:
    item = f"line {number}"
    class_value = to_float(values[0])
    if class_value is None or not class_value.is_integer() or class_value < 0:
        report.append(ReportEntry(file, item, "skipped", f"class id {values[0]!r} is not a "
                                                         f"non-negative integer"))
        return
    class_id = int(class_value)
    if names is not None and class_id not in names:
        report.append(ReportEntry(file, item, "skipped",
                                  f"class id {class_id} is not among the {len(names)} names"))
        return
    width, height = record.width, record.height
    assert width is not None and height is not None  # checked by the caller
    if len(values) in (5, 6):
        numbers = [to_float(v) for v in values[1:5]]
        if None in numbers:
            report.append(ReportEntry(file, item, "skipped", f"not numbers: {values[1:5]}"))
            return
        cx, cy, w, h = numbers  # type: ignore[misc]
        box = ((cx - w / 2) * width, (cy - h / 2) * height,
               (cx + w / 2) * width, (cy + h / 2) * height)
        if len(values) == 6:
            report.append(ReportEntry(file, item, "note",
                                      "6 values: the last (a confidence) is ignored"))
    elif len(values) >= 7 and len(values) % 2 == 1:
        pairs = list(zip(values[1::2], values[2::2]))
        points = box_from_points(pairs)
        if points is None:
            report.append(ReportEntry(file, item, "skipped", "polygon values are not numbers"))
            return
        box = (points[0] * width, points[1] * height, points[2] * width, points[3] * height)
        report.append(ReportEntry(file, item, "note",
                                  "segmentation polygon: its bounding box is used"))
    else:
        report.append(ReportEntry(file, item, "skipped",
                                  f"{len(values)} values; expected class cx cy w h"))
        return
    add_box(record, box, class_id, file=file, item=item, report=report)


def _report_orphans(used_labels: set[Path], images: set[Path],
                    report: list[ReportEntry]) -> None:
    """Label files in labels/ folders that no image claimed: nothing to convert them with.

    Only folders of their own are searched: beside the images, other .txt files (image lists,
    notes) are not labels.
    """
    folders = {label_path(image).parent for image in images} - {i.parent for i in images}
    for folder in sorted(f for f in folders if f.is_dir()):
        for label in sorted(folder.glob("*.txt")):
            if label not in used_labels and label.name not in NAME_FILES:
                try:
                    count = sum(1 for line in _read_text(label).splitlines() if line.strip())
                except OSError:
                    count = 0
                report.append(ReportEntry(str(label), "file", "skipped",
                                          f"{count_of(count, 'box')} skipped: no image "
                                          f"with this name to convert against"))


# ---------------------------------------------------------------------------------------------
# The YAML subset of data.yaml files


def parse_yaml_subset(text: str) -> dict[str, object]:
    """The top-level keys of a YAML document in the subset data.yaml files use.

    Values may be plain or quoted scalars, flow lists and mappings (``[a, b]``, ``{0: a}``,
    possibly over several lines), or block lists and mappings indented under their key. Block
    scalars (``download: |``) and deeper nesting are skipped. Integers become ints.
    """
    data: dict[str, object] = {}
    lines = [_strip_comment(line) for line in text.splitlines()]
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        match = re.match(r"^([^\s#\-][^:]*?)\s*:(?:\s+(.*))?$", line)
        if match is None:
            continue
        key, value = _scalar(match.group(1)), (match.group(2) or "").strip()
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i][0] in " \t-"):
            block.append(lines[i])
            i += 1
        if value.startswith(("[", "{")):
            value = " ".join([value, *block])
            data[str(key)] = _Flow(value).value()
        elif value in ("|", ">", "|-", ">-"):
            data[str(key)] = "\n".join(line.strip() for line in block)
        elif value:
            data[str(key)] = _scalar(value)
        else:
            data[str(key)] = _block(block)
    return data


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` inside quotes is kept)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _block(lines: list[str]) -> object:
    """A block list (``- a``) or mapping (``0: a``) of scalars; None when empty."""
    items = [line.strip() for line in lines if line.strip()]
    if not items:
        return None
    if all(item.startswith("-") for item in items):
        return [_scalar(item[1:]) for item in items]
    mapping: dict[object, object] = {}
    for item in items:
        key, _, value = item.partition(":")
        mapping[_scalar(key)] = _scalar(value)
    return mapping


def _scalar(text: str) -> object:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    return text


class _Flow:
    """A flow collection (``[a, 'b', {0: c}]``) read character by character."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def value(self) -> object:
        self._space()
        char = self.text[self.pos:self.pos + 1]
        if char == "[":
            return self._sequence()
        if char == "{":
            return self._mapping()
        return self._plain()

    def _sequence(self) -> list[object]:
        self.pos += 1
        items: list[object] = []
        while not self._close("]"):
            start = self.pos
            items.append(self.value())
            self._comma()
            self._advance_from(start)
        return items

    def _mapping(self) -> dict[object, object]:
        self.pos += 1
        mapping: dict[object, object] = {}
        while not self._close("}"):
            start = self.pos
            key = self.value()
            self._space()
            if self.text[self.pos:self.pos + 1] == ":":
                self.pos += 1
                mapping[key] = self.value()
            else:
                mapping[key] = None
            self._comma()
            self._advance_from(start)
        return mapping

    def _advance_from(self, start: int) -> None:
        """Step over a character nothing could read ("[a}"), so that reading always ends."""
        if self.pos == start:
            self.pos += 1

    def _plain(self) -> object:
        start = self.pos
        if self.text[start:start + 1] in ("'", '"'):
            quote = self.text[start]
            end = start + 1
            while end < len(self.text):
                if self.text[end] == "\\" and quote == '"':
                    end += 2
                    continue
                if self.text[end] == quote:
                    if quote == "'" and self.text[end + 1:end + 2] == "'":
                        end += 2
                        continue
                    break
                end += 1
            self.pos = end + 1
            return _scalar(self.text[start:self.pos])
        match = re.compile(r"(?:[^,\[\]{}:]|:(?!\s|$|[,\]}]))*").match(self.text, start)
        self.pos = match.end() if match else start
        return _scalar(self.text[start:self.pos])

    def _space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n":
            self.pos += 1

    def _close(self, char: str) -> bool:
        self._space()
        if self.pos >= len(self.text) or self.text[self.pos] == char:
            self.pos += 1
            return True
        return False

    def _comma(self) -> None:
        self._space()
        if self.text[self.pos:self.pos + 1] == ",":
            self.pos += 1


# ---------------------------------------------------------------------------------------------
# Writing


def write_yolo(annotations: AnnotationSet, out: Path, *, split: str | None = None,
               images: str = "copy") -> list[Path]:
    """Write the Ultralytics layout under the folder ``out`` (see the module docstring)."""
    out = absolute(out)
    categories = sorted(annotations.categories, key=lambda c: c.id)
    yolo_ids = {category.id: index for index, category in enumerate(categories)}
    chosen = images_to_write(annotations, split)
    any_split = any(image.split in SPLITS for image in chosen)
    stems = UniqueNames()
    written: list[Path] = []
    folders: set[str] = set()
    for image in chosen:
        folder = (image.split if image.split in SPLITS else "train") if any_split else ""
        folders.add(folder)
        source = image_file(annotations, image)
        stem = stems.take(source.stem)
        target = out / "images" / folder / (stem + source.suffix)
        labels = out / "labels" / folder / f"{stem}.txt"
        if place_image(annotations, source, target, images, str(labels)):
            written.append(target)
        lines = _label_lines(annotations, image, source, yolo_ids, str(labels))
        if lines is not None:
            labels.parent.mkdir(parents=True, exist_ok=True)
            labels.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            written.append(labels)
    yaml_file = out / "data.yaml"
    out.mkdir(parents=True, exist_ok=True)
    yaml_file.write_text(_data_yaml(out, sorted(folders), categories), encoding="utf-8")
    written.append(yaml_file)
    return written


def _label_lines(annotations: AnnotationSet, image: ImageRecord, source: Path,
                 yolo_ids: dict[int, int], file: str) -> list[str] | None:
    """The label lines of one image; None (reported) when its size is unknown."""
    boxes = writable_boxes(annotations, image, file)
    if not boxes:
        return []
    size = known_size(image, source)
    if size is None:
        report_unwritable(annotations, file, str(source), f"{count_of(len(boxes), 'box')} not "
                          f"written: the image size is unknown (missing or unreadable image)")
        return None
    width, height = size
    lines = []
    for box in boxes:
        values = ((box.x0 + box.x1) / 2 / width, (box.y0 + box.y1) / 2 / height,
                  (box.x1 - box.x0) / width, (box.y1 - box.y0) / height)
        lines.append(" ".join([str(yolo_ids[box.category_id]),
                               *(format_number(v) for v in values)]))
    return lines


def _data_yaml(out: Path, folders: list[str], categories: list[Category]) -> str:
    # Strings are written as JSON strings, which YAML reads as double-quoted scalars.
    lines = ["# Ultralytics YOLO dataset written by Faster R-CNN Workbench",
             f"path: {json.dumps(str(out), ensure_ascii=False)}"]
    if folders == [""]:
        lines += ["train: images", "val: images"]
    else:
        lines += [f"{split}: images/{split}" for split in SPLITS if split in folders]
    lines.append("names:")
    lines += [f"  {index}: {json.dumps(category.name, ensure_ascii=False)}"
              for index, category in enumerate(categories)]
    return "\n".join(lines) + "\n"


def is_yolo_label_line(line: str) -> bool:
    """True for a line that reads as ``class cx cy w h`` (used by format detection)."""
    values = line.split()
    return len(values) >= 5 and re.fullmatch(r"\d+", values[0]) is not None and all(
        to_float(v) is not None for v in values[1:])

