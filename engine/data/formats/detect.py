"""Telling which annotation format a file or folder holds.

A file: ``.json`` is COCO (an "images" list) or labelme (a "shapes" list), ``.xml`` is Pascal
VOC (an ``<annotation>`` root), ``.yaml``/``.yml``, ``classes.txt`` and ``obj.names`` are YOLO.
A folder is looked at for every format at once:

- coco: a COCO JSON file in it or in its ``annotations/`` sub-folder;
- labelme: a labelme JSON file in it or one folder down;
- voc: ``<annotation>`` XML files in it, in its ``Annotations/`` (devkit), or one folder down;
- yolo: a data.yaml with ``names``, a ``classes.txt``/``obj.names``, or label files (lines of
  ``class cx cy w h``) in ``labels/`` or beside the images.

Exactly one match is the answer; none, or more than one (a folder holding a COCO file and VOC
XML files), raises :class:`FormatError` saying what was seen, and the caller names the format.
Only the first kilobytes of a few files are read, so detection is quick on large datasets.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

from .coco import coco_files
from .common import (
    IMAGE_SUFFIXES,
    FormatError,
    absolute,
    json_kind,
    xml_root_tag,
)
from .voc import xml_files
from .yolo import NAME_FILES, YAML_SUFFIXES, find_data_yaml, is_yolo_label_line

# How many files of one kind are opened before giving up on a folder (keeps detection quick).
_PEEK = 8


def detect_format(path: str | os.PathLike) -> str:
    """"coco", "voc", "yolo" or "labelme" for a file or folder; FormatError when unsure."""
    path = absolute(path)
    if not path.exists():
        raise FormatError(path, "no such file or folder")
    kinds = _file_kinds(path) if path.is_file() else _folder_kinds(path)
    if len(kinds) == 1:
        return kinds[0]
    if not kinds:
        raise FormatError(path, "no recognizable annotations: expected a COCO or labelme JSON "
                                "file, Pascal VOC XML files, or YOLO labels with data.yaml or "
                                "classes.txt")
    raise FormatError(path, f"ambiguous: it looks like {' and '.join(kinds)}; "
                            f"name the format explicitly")


def _file_kinds(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        kind = json_kind(path)
        return [kind] if kind else []
    if suffix == ".xml":
        return ["voc"] if xml_root_tag(path) == "annotation" else []
    if suffix in YAML_SUFFIXES or path.name.lower() in NAME_FILES:
        return ["yolo"]
    return []


def _folder_kinds(folder: Path) -> list[str]:
    kinds = []
    if coco_files(folder):
        kinds.append("coco")
    if _has_labelme(folder):
        kinds.append("labelme")
    if any(xml_root_tag(xml) == "annotation" for xml, _ in islice(xml_files(folder), _PEEK)):
        kinds.append("voc")
    if _has_yolo(folder):
        kinds.append("yolo")
    return kinds


def _has_labelme(folder: Path) -> bool:
    candidates = [p for p in sorted(folder.glob("*.json")) + sorted(folder.glob("*/*.json"))
                  if p.is_file()]
    return any(json_kind(p) == "labelme" for p in candidates[:_PEEK])


def _has_yolo(folder: Path) -> bool:
    if find_data_yaml(folder) is not None:
        return True
    if any((where / name).is_file() for where in (folder, folder / "labels")
           for name in NAME_FILES):
        return True
    # Label files without class names: labels/ (Ultralytics) or .txt beside the images.
    labels = folder / "labels"
    candidates = sorted(labels.rglob("*.txt")) if labels.is_dir() else [
        p for p in sorted(folder.glob("*.txt"))
        if any(p.with_suffix(s).is_file() for s in IMAGE_SUFFIXES)]
    return any(_looks_like_labels(p) for p in candidates[:_PEEK])


def _looks_like_labels(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            lines = [line for line in islice(stream, 20) if line.strip()]
    except OSError:
        return False
    return bool(lines) and all(is_yolo_label_line(line) for line in lines)
