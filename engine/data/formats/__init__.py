"""Dataset file formats: COCO JSON, Pascal VOC XML, YOLO (Ultralytics layout) and labelme JSON.

Readers turn files into :class:`~engine.data.annotations.AnnotationSet` records and writers
turn records into files; neither knows the project store. Boxes in the records are float
``x0, y0, x1, y1`` in pixel-edge coordinates of the displayed (EXIF-rotated) image; each format
module's docstring says how its own coordinates convert, and docs/formats.md says it all for
users.

What readers promise:

- ``ImageRecord.path`` is the absolute path of the image file as found (normalized, links not
  resolved); for a missing image, the absolute path where the file says it should be. The
  set's ``root`` is the folder that was read (or the file's folder).
- A source that cannot be read at all (malformed single file, a folder with nothing
  recognizable, an ambiguous folder) raises :class:`FormatError` naming the file. Anything
  smaller (a malformed file among many, a bad box, an unknown category, a missing image) is
  kept where possible and reported in ``AnnotationSet.report``; nothing is dropped silently.

What writers promise: they return every file they wrote, and append to
``annotations.report`` what they could not write (a box of an unknown category, a YOLO label
without an image size).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..annotations import SPLITS, AnnotationSet
from ..store_files import is_store_file
from .coco import read_coco, write_coco
from .common import FormatError
from .detect import detect_format
from .labelme import read_labelme, write_labelme
from .voc import read_voc, write_voc
from .yolo import read_yolo, write_yolo

__all__ = ["FORMATS", "IMAGE_MODES", "FormatError", "detect_format", "read_annotations",
           "write_annotations"]

FORMATS = ("coco", "voc", "yolo", "labelme")
# How VOC and YOLO exports place the images in their layout (COCO and labelme refer to them).
IMAGE_MODES = ("copy", "link", "none")

_READERS = {"coco": read_coco, "voc": read_voc, "yolo": read_yolo, "labelme": read_labelme}


def read_annotations(path: str | os.PathLike, format: str = "auto") -> AnnotationSet:
    """Read the annotation file or folder ``path`` in ``format`` (one of :data:`FORMATS`, or
    "auto" to :func:`detect_format` it). Raises :class:`FormatError` when nothing can be read."""
    path = Path(path)
    if format != "auto" and format not in _READERS:
        raise FormatError(path, f"unknown format {format!r}; one of {', '.join(FORMATS)}")
    if not path.exists():
        raise FormatError(path, "no such file or folder")
    if is_store_file(path):
        # Opening it other than through SQLite would drop this process's locks on it.
        raise FormatError(path, "a project's database, not annotations: import from the "
                                "annotation files, or open it as a project")
    if format == "auto":
        format = detect_format(path)
    try:
        return _READERS[format](path)
    except OSError as error:  # a folder that cannot be listed, a file that cannot be opened
        raise FormatError(path, f"cannot read it as {format}: {error}") from error


def write_annotations(annotations: AnnotationSet, format: str, out: str | os.PathLike, *,
                      split: str | None = None, images: str = "copy") -> list[Path]:
    """Write ``annotations`` (only the images of ``split`` when given; "none" for images
    without a split) in ``format`` to ``out`` and return the files written.

    ``out`` is a folder (created if needed); for COCO it may also be the .json file.
    ``images`` says how VOC and YOLO put the images into their layout: "copy" (default),
    "link" (hard links, copies where that fails) or "none" (labels only).
    """
    if split not in (None, *SPLITS, "none"):
        raise ValueError(f"split must be one of {SPLITS} or 'none', not {split!r}")
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, not {images!r}")
    out = Path(out)
    folder = out.parent if format == "coco" and out.suffix.lower() == ".json" else out
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: is a file; the {format} export needs a folder there"
                         + (" (or a .json file name)" if format == "coco" else ""))
    if format == "coco":
        return write_coco(annotations, out, split=split)
    if format == "labelme":
        return write_labelme(annotations, out, split=split)
    if format == "voc":
        return write_voc(annotations, out, split=split, images=images)
    if format == "yolo":
        return write_yolo(annotations, out, split=split, images=images)
    raise ValueError(f"unknown format {format!r}; one of {', '.join(FORMATS)}")
