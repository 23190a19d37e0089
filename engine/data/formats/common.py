"""What every format reader and writer shares: errors, image lookup, box checks, numbers, names.

Box checks (one place for all formats): a reader converts a file's box into the shared
convention (float ``x0, y0, x1, y1``, pixel edges of the displayed image) and hands it to
:func:`add_box`, which applies :func:`engine.box_validity.check_box` with policy "clip":

- skips it (report "skipped") when a coordinate is not a finite number, when it has zero or
  negative width or height, or when it lies entirely outside the image;
- clips it to the image (report "clipped") when it is partly outside; overshoots under
  :data:`~engine.box_validity.CLIP_TOLERANCE` pixels (float noise of normalized formats) are
  clipped silently.

Reports: an entry that leaves out one box names the box as its ``item`` the way its format
counts them (VOC "object 3 (dog)", COCO "annotation 17", YOLO "line 2", labelme "shape 5
(cat)"); an entry that leaves out several at once says how many, its reason beginning "N boxes
skipped". :func:`skipped_box_count` counts them so that an import's summary can.

Images: :func:`open_image_record` measures the image file once (header only, through
:func:`engine.data.images.image_size`), keeps a record for a missing or unreadable file with a
report entry, and detects annotations drawn on the raw pixels of an EXIF-rotated photo (see
:func:`raw_orientation`).
"""

from __future__ import annotations

import filecmp
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...box_validity import CLIP_TOLERANCE, NOT_FINITE, check_box
from ..annotations import AnnotationSet, BoxRecord, Category, ImageRecord, ReportEntry
from ..images import ImageLoadError, image_size

# Lower-case suffixes of the image files a reader looks for (matched case-insensitively).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Numbers written to files are rounded to this many decimals: exact enough for any image and
# it turns float noise such as 81.29999999999998 back into what the source file said (81.3).
DECIMALS = 9
# EXIF orientations that store the image transposed (displayed width = stored height).
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


class FormatError(ValueError):
    """An annotation source that cannot be read at all: ``file`` and ``reason`` say why."""

    def __init__(self, file: str | os.PathLike, reason: str):
        self.file = str(file)
        self.reason = reason
        super().__init__(f"{self.file}: {reason}")


# ---------------------------------------------------------------------------------------------
# Reading files and telling what they are


def load_json(path: Path) -> object:
    """The JSON document in ``path``; FormatError naming the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise FormatError(path, f"not a readable JSON file: {error}") from error


# How much of a JSON file the sniffer reads at most, in chunks: keys that tell the formats apart
# come first in every exporter we know, and reading a 500 MB COCO file (or 10,000 labelme files
# with embedded images) whole just to name the format is too slow.
SNIFF_BYTES = 1 << 20
_SNIFF_CHUNK = 1 << 14


def json_kind(path: Path) -> str | None:
    """ "coco", "labelme" or None for a JSON file, from its first bytes (up to a megabyte).

    labelme files have a "shapes" key before their (long) imageData; COCO files an "images"
    list, which Label Studio's YOLO notes.json and other JSON files lack.
    """
    head = ""
    try:
        with open(path, "rb") as stream:
            while len(head) < SNIFF_BYTES:
                chunk = stream.read(_SNIFF_CHUNK)
                if not chunk:
                    break
                head += chunk.decode("utf-8", errors="replace")
                if head.lstrip("\ufeff \t\r\n")[:1] not in ("{", ""):
                    return None  # not a JSON object
                if re.search(r'"shapes"\s*:', head):
                    return "labelme"
                if re.search(r'"images"\s*:\s*\[', head):
                    return "coco"
    except OSError:
        return None
    return None


def xml_root_tag(path: Path) -> str | None:
    """The root element's tag of an XML file, from its first kilobytes (None if not XML)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(8192).decode("utf-8", errors="replace")
    except OSError:
        return None
    # Skip the declaration, comments and doctype; the first real tag is the root.
    match = re.search(r"<(?![?!])([A-Za-z_][\w.\-]*)", head)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Paths and finding image files


def absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute and normalized ("a/../b" -> "b") without resolving links."""
    return Path(os.path.abspath(path))


def path_parts(name: str) -> list[str]:
    """The components of a path written in a file, with either separator.

    Windows exporters (Label Studio, labelme on Windows) write backslashes, sometimes mixed with
    slashes ("images/\\\\abc.jpg"); empty and "." components are dropped.
    """
    return [part for part in re.split(r"[\\/]+", name.strip()) if part not in ("", ".")]


def is_absolute_name(name: str) -> bool:
    """True for "/x", "\\\\server\\x" and "C:\\x" alike, whatever this machine is."""
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", name) is not None


class FolderIndex:
    """Cached listings of folders: find a file by exact name, any case, or by stem.

    One ``os.scandir`` per folder however many lookups: a folder of 10,000 images is listed
    once, not searched 10,000 times.
    """

    def __init__(self) -> None:
        # folder -> (lower-case name -> names, lower-case stem of an image -> names)
        self._listings: dict[Path, tuple[dict[str, list[str]], dict[str, list[str]]]] = {}

    def _listing(self, folder: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        listing = self._listings.get(folder)
        if listing is None:
            by_name: dict[str, list[str]] = {}
            by_stem: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as entries:
                    names = sorted(entry.name for entry in entries if entry.is_file())
            except OSError:
                names = []  # no such folder (a candidate that does not exist): nothing in it
            for name in names:
                by_name.setdefault(name.lower(), []).append(name)
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in IMAGE_SUFFIXES:
                    by_stem.setdefault(stem.lower(), []).append(name)
            listing = self._listings[folder] = (by_name, by_stem)
        return listing

    def find(self, folder: Path, name: str) -> Path | None:
        """``folder/name``, or the one file there whose name differs only in case."""
        candidate = folder / name
        if candidate.is_file():
            return candidate
        matches = self._listing(folder)[0].get(name.lower(), [])
        return folder / matches[0] if len(matches) == 1 else None

    def find_image_by_stem(self, folder: Path, stem: str) -> Path | None:
        """The image file in ``folder`` named ``stem`` + an image suffix (any case)."""
        matches = self._listing(folder)[1].get(stem.lower(), [])
        exact = [name for name in matches if os.path.splitext(name)[0] == stem]
        chosen = exact or matches
        return folder / chosen[0] if chosen else None


def locate_image(folders: Sequence[Path], names: Sequence[str], stems: Sequence[str],
                 index: FolderIndex) -> Path | None:
    """The first existing file among ``folder/name`` (each name with sub-folders allowed), then
    among images named ``stem.<image suffix>``, trying the folders in order."""
    for name in names:
        parts = path_parts(name)
        if not parts:
            continue
        for folder in folders:
            found = index.find(folder.joinpath(*parts[:-1]), parts[-1])
            if found is not None:
                return found
    for stem in stems:
        for folder in folders:
            found = index.find_image_by_stem(folder, stem)
            if found is not None:
                return found
    return None


def unique_folders(folders: Iterable[Path]) -> list[Path]:
    """``folders`` made absolute, in order, each once, only those that exist."""
    seen: list[Path] = []
    for folder in folders:
        folder = absolute(folder)
        if folder not in seen and folder.is_dir():
            seen.append(folder)
    return seen


# ---------------------------------------------------------------------------------------------
# Image records: measuring, missing files, EXIF


def open_image_record(path: Path, declared: tuple[int | None, int | None], *, file: str,
                      report: list[ReportEntry], exists: bool | None = None,
                      ) -> tuple[ImageRecord, int]:
    """A record for the image at ``path`` and the orientation its boxes must be turned by.

    ``declared`` is the (width, height) the annotation file states (None where it states
    nothing). The record's size is the measured displayed size when the file is readable (a
    "note" when the declaration disagrees), else the declared one. A missing file gives a
    "missing" entry (``item`` = the image path), an unreadable one a "note"; both keep the
    record. The returned orientation is 1, or the EXIF orientation (5-8) when the declared size
    is the stored, un-rotated size (see :func:`raw_orientation`): the caller passes it to
    :func:`add_box` so that boxes drawn on the raw pixels land on the displayed image.
    """
    path = absolute(path)
    width, height = (value if value and value > 0 else None for value in declared)
    record = ImageRecord(path=path, width=width, height=height)
    if exists is False or (exists is None and not path.is_file()):
        report.append(ReportEntry(file, str(path), "missing",
                                  "image file not found; record and boxes kept"))
        return record, 1
    try:
        shown_width, shown_height, orientation = image_size(path)
    except ImageLoadError as error:
        report.append(ReportEntry(file, str(path), "note",
                                  f"{error}; record and boxes kept with the declared size"))
        return record, 1
    record.width, record.height = shown_width, shown_height
    turn = raw_orientation((width, height), (shown_width, shown_height), orientation)
    if turn != 1:
        report.append(ReportEntry(
            file, str(path), "note",
            f"declared size {width}x{height} is the stored size of a photo with EXIF "
            f"orientation {orientation} (displayed {shown_width}x{shown_height}): boxes were "
            f"drawn on the raw pixels and are turned into the displayed orientation"))
    elif None not in (width, height) and (width, height) != (shown_width, shown_height):
        report.append(ReportEntry(
            file, str(path), "note",
            f"declared size {width}x{height} differs from the image file's "
            f"{shown_width}x{shown_height} (as displayed); boxes are checked against the latter"))
    return record, turn


def raw_orientation(declared: tuple[int | None, int | None], shown: tuple[int, int],
                    orientation: int) -> int:
    """``orientation`` when boxes declared against ``declared`` were drawn on raw pixels, else 1.

    Only transposing orientations (5-8) of non-square images can be told apart: the declared
    size then equals the stored size, which is the displayed size swapped. For orientations
    2-4 the sizes agree either way and the boxes are taken as displayed (what viewers and every
    labelling tool we know show).
    """
    width, height = shown
    if (orientation in TRANSPOSING_ORIENTATIONS and width != height
            and tuple(declared) == (height, width)):
        return orientation
    return 1


def raw_to_displayed(box: tuple[float, float, float, float], orientation: int,
                     stored: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box on the stored pixels (``stored`` = width, height) -> the displayed image.

    The displayed image is the stored one transposed (5), rotated 90 degrees clockwise (6),
    transversed (7) or rotated 90 degrees counter-clockwise (8), as Pillow's exif_transpose.
    """
    x0, y0, x1, y1 = box
    width, height = stored
    if orientation == 5:
        return y0, x0, y1, x1
    if orientation == 6:
        return height - y1, x0, height - y0, x1
    if orientation == 7:
        return height - y1, width - x1, height - y0, width - x0
    if orientation == 8:
        return y0, width - x1, y1, width - x0
    return box


# ---------------------------------------------------------------------------------------------
# Boxes


def to_float(value: object) -> float | None:
    """A number from a file (int, float or numeric string), or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def to_int(value: object) -> int | None:
    """An integral number from a file (3, 3.0, "3"), or None."""
    number = to_float(value)
    return int(number) if number is not None and number.is_integer() else None


def add_box(record: ImageRecord, box: tuple[object, object, object, object], category_id: int,
            *, file: str, item: str, report: list[ReportEntry], orientation: int = 1,
            difficult: bool = False, truncated: bool = False) -> BoxRecord | None:
    """Check ``box`` (x0, y0, x1, y1 on the displayed image), clip it, append it to ``record``.

    Returns the box added, or None when it was skipped (see the module docstring for the rules;
    every change is reported against ``file`` and ``item``). ``orientation`` from
    :func:`open_image_record` turns a raw-pixel box into the displayed orientation first.
    """
    coords = tuple(to_float(value) for value in box)
    if any(value is None or not math.isfinite(value) for value in coords):
        report.append(ReportEntry(file, item, "skipped", f"box {NOT_FINITE}: {list(box)}"))
        return None
    x0, y0, x1, y1 = coords  # type: ignore[misc]
    if orientation != 1 and record.width is not None and record.height is not None:
        x0, y0, x1, y1 = raw_to_displayed((x0, y0, x1, y1), orientation,
                                          (record.height, record.width))
    checked = check_box((x0, y0, x1, y1), record.width, record.height, policy="clip",
                        tolerance=CLIP_TOLERANCE)
    if checked.box is None:
        report.append(ReportEntry(file, item, "skipped",
                                  f"box {checked.problem}: {_show((x0, y0, x1, y1))}"))
        return None
    clipped = checked.box
    if checked.clipped:
        report.append(ReportEntry(
            file, item, "clipped",
            f"box {_show((x0, y0, x1, y1))} clipped to the "
            f"{record.width}x{record.height} image: {_show(clipped)}"))
    added = BoxRecord(*clipped, category_id=category_id, difficult=difficult,
                      truncated=truncated)
    record.boxes.append(added)
    return added


# An item naming one box or annotation of a file (see the module docstring), and a reason
# that counts the boxes an entry leaves out.
_BOX_ITEM = re.compile(r"(object|annotation|line|shape) \S")
_BOXES_SKIPPED = re.compile(r"(\d+) box(?:es)? skipped\b")


def skipped_box_count(report: Iterable[ReportEntry]) -> int:
    """How many boxes a reader's ``report`` says it left out: one for each "skipped" entry
    whose item names a box, N for a "skipped" entry whose reason begins "N boxes skipped" (or
    "1 box skipped")."""
    count = 0
    for entry in report:
        if entry.action != "skipped":
            continue
        counted = _BOXES_SKIPPED.match(entry.reason)
        if counted is not None:
            count += int(counted.group(1))
        elif _BOX_ITEM.match(entry.item):
            count += 1
    return count


def _show(box: Sequence[float]) -> str:
    return "(" + ", ".join(format_number(value) for value in box) + ")"


def box_from_points(points: Iterable[Sequence[object]]) -> tuple[float, float, float, float] | None:
    """The bounding box (x0, y0, x1, y1) of (x, y) points, or None when they are not numbers."""
    xs: list[float] = []
    ys: list[float] = []
    for point in points:
        if not isinstance(point, (list, tuple)) or len(point) < 2:
            return None
        x, y = to_float(point[0]), to_float(point[1])
        if x is None or y is None:
            return None
        xs.append(x)
        ys.append(y)
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


# ---------------------------------------------------------------------------------------------
# Categories known by name only (Pascal VOC, labelme)


class NamedCategories:
    """Boxes whose category is a name: ids are given once every name is known.

    Ids are 1..K in alphabetical order of the names, so the same set of names gets the same
    ids whatever order the files are read in (and Pascal VOC's 20 classes get their usual
    alphabetical order).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[BoxRecord, str]] = []

    def add(self, box: BoxRecord | None, name: str) -> None:
        if box is not None:
            self._pending.append((box, name))

    def categories(self) -> list[Category]:
        names = sorted({name for _, name in self._pending})
        ids = {name: index for index, name in enumerate(names, start=1)}
        for box, name in self._pending:
            box.category_id = ids[name]
        return [Category(ids[name], name) for name in names]


# ---------------------------------------------------------------------------------------------
# Numbers and splits


def format_number(value: float) -> str:
    """``value`` as written to a file: an integer without ".0" when it is integral, else the
    shortest float text after rounding to :data:`DECIMALS` decimals."""
    rounded = round(float(value), DECIMALS)
    if rounded.is_integer():
        return str(int(rounded))
    return repr(rounded)


def json_number(value: float) -> int | float:
    """``value`` for a JSON file: an int when integral, else a float rounded like
    :func:`format_number`."""
    rounded = round(float(value), DECIMALS)
    return int(rounded) if rounded.is_integer() else rounded


_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "test": "test", "testing": "test"}


def split_from_name(name: str) -> str | None:
    """The split a file or folder name states ("instances_val2017" -> "val"), else None."""
    for word in re.split(r"[^a-z]+", name.lower()):
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return None


# ---------------------------------------------------------------------------------------------
# Writers


def images_to_write(annotations: AnnotationSet, split: str | None) -> list[ImageRecord]:
    """The images a writer writes: all, those of ``split``, or those without one ("none")."""
    if split is None:
        return list(annotations.images)
    wanted = None if split == "none" else split
    return [image for image in annotations.images if image.split == wanted]


def image_file(annotations: AnnotationSet, image: ImageRecord) -> Path:
    """The absolute path of a record's image (relative paths are relative to ``root``)."""
    path = Path(image.path)
    if not path.is_absolute() and annotations.root is not None:
        path = Path(annotations.root) / path
    return absolute(path)


def known_size(image: ImageRecord, path: Path) -> tuple[int, int] | None:
    """The record's displayed size, measured from the file when the record has none."""
    if image.width and image.height:
        return image.width, image.height
    try:
        width, height, _ = image_size(path)
    except ImageLoadError:
        return None
    return width, height


def relative_name(path: Path, folder: Path) -> str:
    """``path`` as an annotation file in ``folder`` should name it, "/" separators.

    Relative when the image is inside ``folder`` or beside it ("images/x.jpg",
    "../images/x.jpg": the dataset moves as a whole), absolute when it lies further away
    ("../../../photos/x.jpg" would break as soon as the export is moved) or on another drive.
    """
    try:
        relative = Path(os.path.relpath(path, folder))
    except ValueError:
        return path.as_posix()
    if relative.parts[:2] == ("..", ".."):
        return path.as_posix()
    return relative.as_posix()


class UniqueNames:
    """File stems made unique within an export ("x", then "x_2", ...), case-insensitively so
    that the export also works on Windows and macOS file systems."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, stem: str) -> str:
        candidate, number = stem, 1
        while candidate.lower() in self._taken:
            number += 1
            candidate = f"{stem}_{number}"
        self._taken.add(candidate.lower())
        return candidate


def copy_image(source: Path, target: Path, mode: str) -> bool:
    """Put the image ``source`` at ``target``: "copy" (default), "link" (hard link, a copy where
    linking fails, e.g. across drives) or "none". An identical file already there is kept; a
    different one is replaced (the export folder is ours to write). False when ``source`` is
    missing or ``mode`` is "none"."""
    if mode == "none" or not source.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        if target.samefile(source) or filecmp.cmp(source, target, shallow=False):
            return True
        target.unlink()
    if mode == "link" and _hard_link(source, target):
        return True
    shutil.copy2(source, target)
    return True


def place_image(annotations: AnnotationSet, source: Path, target: Path, mode: str,
                file: str) -> bool:
    """:func:`copy_image`, reporting against ``file`` (the label file that names it) an image
    that was to be written but has no file. The caller still writes what it can of the label
    file (the boxes are the user's work). A target that cannot be written raises OSError."""
    if copy_image(source, target, mode):
        return True
    if mode != "none":
        annotations.report.append(ReportEntry(
            file, str(source), "missing",
            f"image not written to {target}: no image file at {source}"))
    return False


def _hard_link(source: Path, target: Path) -> bool:
    """Hard-link ``target`` to ``source``; False where the file system cannot (another drive,
    FAT, a network share), and the caller copies instead."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def writable_boxes(annotations: AnnotationSet, image: ImageRecord, file: str,
                   ) -> list[BoxRecord]:
    """The image's boxes whose category is among the categories; the others are reported."""
    known = {category.id for category in annotations.categories}
    kept = []
    for number, box in enumerate(image.boxes, start=1):
        if box.category_id in known:
            kept.append(box)
        else:
            report_unwritable(annotations, file, f"{Path(image.path).name} box {number}",
                              f"category id {box.category_id} is not among the categories")
    return kept


def report_unwritable(annotations: AnnotationSet, file: str, item: str, reason: str) -> None:
    """Writers say what they could not write by appending to ``annotations.report``."""
    annotations.report.append(ReportEntry(file, item, "skipped", reason))
