"""Pascal VOC XML: one ``<annotation>`` file per image, as the VOC devkit and LabelImg write it.

Coordinates: VOC corners are 1-based pixel indices, ``xmin`` the first and ``xmax`` the last
column covered, so a full W x H image is ``xmin=1 ymin=1 xmax=W ymax=H``. They convert to the
shared pixel-edge box as ``x0 = xmin - 1, y0 = ymin - 1, x1 = xmax, y1 = ymax`` (Detectron2's
convention) and back as ``xmin = x0 + 1`` ...; integers stay integers, float coordinates are
accepted and written back as they came.

Reading accepts
- a devkit folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/{train,val,test,
  trainval}.txt`` giving splits; ids only in trainval.txt are "train"), its ``Annotations/``
  folder, or a ``VOCdevkit`` folder holding several (VOC2007, VOC2012);
- LabelImg's loose layout: XML files in a folder (beside the images, or in a sub-folder such as
  ``annotations/`` with the images in a sibling ``images/``), or a single XML file.

The image of an XML is looked for by ``<filename>`` beside the XML, in the sibling folders
``JPEGImages/``, ``images/`` and the one ``<folder>`` names, then at ``<path>`` when that exists
on this machine, then by the XML's (and the filename's) stem with any image suffix. A foreign
absolute ``<path>`` (another user's disk) is therefore harmless.

Status: LabelImg writes ``verified="yes"`` on the files its user marked verified and nothing (or,
in old versions, ``verified="no"``) on the others. ``verified="yes"`` makes the image's status
"done", ``verified="no"`` "in_progress". A file without the attribute is "in_progress" when it
has boxes and another file of the same read is verified (the source uses verification, and this
one was not); when no file is verified (the VOC devkit, CVAT's and Roboflow's exports: tools
without the flag) its status is left to the importer ("done" when it has boxes). One note says
how many images were read as in progress (whichever way). A file listing no ``<object>`` (and
not ``verified="no"``) says its image has no objects: status "done", a negative to train on.
``<difficult>`` and ``<truncated>`` become the box flags; an empty or unreadable flag counts
as 0 with a note. An object without a name or a readable ``<bndbox>`` is skipped with a report
entry; an object with several ``<bndbox>`` elements (some tools write one object with several
boxes) gives one box each, with a note. A box is checked on its VOC corners before the
conversion (:mod:`engine.box_validity`): ``xmin = xmax`` or ``ymin = ymax`` is zero area and
skipped. A malformed XML file in a folder is skipped with a report entry (a single malformed
file given alone raises FormatError).
Categories get ids 1..K in alphabetical order of their names.

Writing produces the devkit layout with LabelImg's XML (same elements, order and tab
indentation): ``Annotations/<stem>.xml`` for every image, the images in ``JPEGImages/``
(copied by default), and ``ImageSets/Main/{train,val,trainval,test}.txt`` when splits are set.
``verified="yes"`` is written for status "done" (and for a record without a status that has boxes,
which an import makes done) unless the image has no boxes (a file listing no object reads
back as done), ``verified="no"`` for "in_progress" (so that the status reads back
as it was), nothing for the others. ``<depth>`` is the image file's: 1 for a
grayscale file, 3 otherwise (also when the file is missing or unreadable), as LabelImg writes it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from ...box_validity import check_box
from ...text import count
from ..annotations import SPLITS, AnnotationSet, ImageRecord, ReportEntry
from .common import (
    FolderIndex,
    FormatError,
    NamedCategories,
    UniqueNames,
    absolute,
    add_box,
    format_number,
    image_file,
    images_to_write,
    known_size,
    locate_image,
    open_image_record,
    place_image,
    report_unwritable,
    to_float,
    to_int,
    unique_folders,
    writable_boxes,
)

_SPLIT_FILES = ("train", "val", "test", "trainval")
# The verified attribute written for a status (none for unlabeled and skipped images).
_VERIFIED = {"done": "yes", "in_progress": "no"}
# Pillow modes of one-channel (grayscale) images: bilevel, 8-bit, 16/32-bit integer, float,
# and grayscale with alpha (the alpha channel is not counted, as LabelImg does not).
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


# ---------------------------------------------------------------------------------------------
# Reading


def read_voc(path: Path) -> AnnotationSet:
    """Read a VOC devkit folder, a folder of LabelImg XML files, or one XML file."""
    path = absolute(path)
    sources = xml_files(path)
    if not sources:
        raise FormatError(path, "no Pascal VOC XML files (*.xml) in the folder, its "
                                "Annotations/ or its sub-folders")
    annotations = AnnotationSet(root=path if path.is_dir() else path.parent)
    names = NamedCategories()
    index = FolderIndex()
    splits: dict[Path, dict[str, str]] = {}
    read_from: dict[int, Path] = {}  # id(record) -> its XML file, for the report
    for xml_file, devkit in sources:
        if devkit is not None and devkit not in splits:
            splits[devkit] = _splits(devkit, annotations.report)
        tree = _parse(xml_file, annotations.report, single=path.is_file())
        if tree is None:
            continue
        record = _read_annotation(tree, xml_file, devkit, index, names, annotations.report)
        record.split = splits.get(devkit, {}).get(xml_file.stem)
        annotations.images.append(record)
        read_from[id(record)] = xml_file
    if not annotations.images:
        raise FormatError(path, f"none of its {len(sources)} XML files is a readable Pascal VOC "
                                f"annotation (first: {annotations.report[0]})")
    _unverified_in_progress(annotations, read_from)
    annotations.categories = names.categories()
    return annotations


# Unverified files named one per report line up to this many; beyond, one line counts the rest.
UNVERIFIED_NAMED = 50


def _unverified_in_progress(annotations: AnnotationSet, read_from: dict[int, Path]) -> None:
    """Images with boxes but no verified attribute are in progress when others are verified
    (see the module docstring), as are those marked ``verified="no"``; a note names each
    such file (up to :data:`UNVERIFIED_NAMED`, then one line counts the rest)."""
    if any(image.status == "done" and image.boxes for image in annotations.images):
        for image in annotations.images:
            if image.status is None and image.boxes:
                image.status = "in_progress"
    in_progress = [image for image in annotations.images if image.status == "in_progress"]
    reason = ('marked verified="no", or not verified="yes" while others are (LabelImg): its '
              'status is "in progress"; training uses only images marked done')
    for image in in_progress[:UNVERIFIED_NAMED]:
        annotations.report.append(ReportEntry(
            str(read_from.get(id(image), "")), Path(image.path).name, "note", reason))
    rest = in_progress[UNVERIFIED_NAMED:]
    if rest:
        annotations.report.append(ReportEntry(
            str(read_from.get(id(rest[0]), "")), f"{count(len(rest), 'more image')}", "note",
            reason.replace("its status is", "their status is")))


def xml_files(path: Path) -> list[tuple[Path, Path | None]]:
    """(XML file, devkit root or None) pairs to read, sorted within each folder."""
    if path.is_file():
        return [(path, _devkit_of(path.parent))]
    devkits = [path] if _is_devkit(path) else []
    if not devkits and _devkit_of(path):
        devkits = [path.parent]
    if not devkits:  # a VOCdevkit folder holding VOC2007/, VOC2012/ ...
        devkits = [sub for sub in sorted(path.iterdir()) if sub.is_dir() and _is_devkit(sub)]
    if devkits:
        return [(xml, devkit) for devkit in devkits
                for xml in _xml_in(_child(devkit, "Annotations"))]  # type: ignore[arg-type]
    files = _xml_in(path)
    if not files:  # LabelImg projects often keep the XML files in annotations/ or labels/
        files = [xml for sub in sorted(path.iterdir()) if sub.is_dir() for xml in _xml_in(sub)]
    return [(xml, None) for xml in files]


def _xml_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xml" and p.is_file())


def _child(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name`` in any case, or None."""
    exact = folder / name
    if exact.is_dir():
        return exact
    for sub in folder.iterdir():
        if sub.name.lower() == name.lower() and sub.is_dir():
            return sub
    return None


def _is_devkit(folder: Path) -> bool:
    """A devkit root has Annotations/ and ImageSets/ or JPEGImages/ (any case); a LabelImg
    project with annotations/ and images/ is read as the loose layout."""
    return _child(folder, "Annotations") is not None and (
        _child(folder, "ImageSets") is not None or _child(folder, "JPEGImages") is not None)


def _devkit_of(annotations_folder: Path) -> Path | None:
    """The devkit root when ``annotations_folder`` is a devkit's Annotations/ folder."""
    root = annotations_folder.parent
    is_devkit = annotations_folder.name.lower() == "annotations" and _is_devkit(root)
    return root if is_devkit else None


def _splits(devkit: Path, report: list[ReportEntry]) -> dict[str, str]:
    """Image id -> split from ``ImageSets/Main/{train,val,test,trainval}.txt``."""
    main = devkit / "ImageSets" / "Main"
    splits: dict[str, str] = {}
    for name in _SPLIT_FILES:
        listing = main / f"{name}.txt"
        if not listing.is_file():
            continue
        split = "train" if name == "trainval" else name
        for line in listing.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            # One id a line; the whole line, since our own ids may contain spaces.
            image_id = line.strip()
            if not image_id:
                continue
            earlier = splits.setdefault(image_id, split)
            if earlier != split and name != "trainval":
                report.append(ReportEntry(str(listing), image_id, "note",
                                          f"also listed in {earlier}.txt; kept in {earlier}"))
    return splits


def _parse(xml_file: Path, report: list[ReportEntry], *, single: bool) -> ET.Element | None:
    """The ``<annotation>`` element, or None (reported) for a file that is not one."""
    try:
        root = ET.parse(xml_file).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as error:
        if single:
            raise FormatError(xml_file, f"not a readable XML file: {error}") from error
        report.append(ReportEntry(str(xml_file), "file", "skipped",
                                  f"not a readable XML file: {error}"))
        return None
    if root.tag != "annotation":
        reason = f"not a Pascal VOC annotation (root element <{root.tag}>)"
        if single:
            raise FormatError(xml_file, reason)
        report.append(ReportEntry(str(xml_file), "file", "skipped", reason))
        return None
    return root


def _read_annotation(root: ET.Element, xml_file: Path, devkit: Path | None, index: FolderIndex,
                     names: NamedCategories, report: list[ReportEntry]) -> ImageRecord:
    file = str(xml_file)
    filename = _text(root, "filename")
    image_path = _find_image(root, xml_file, devkit, index)
    declared = (to_int(_text(root, "size/width")), to_int(_text(root, "size/height")))
    record, orientation = open_image_record(image_path, declared, file=file, report=report)
    verified = root.get("verified", "").strip().lower()
    if verified in ("yes", "no"):
        record.status = "done" if verified == "yes" else "in_progress"
    objects = root.findall("object")
    if not objects and record.status is None:
        # A file that lists no object says the image has none: a negative, done.
        record.status = "done"
    for number, obj in enumerate(objects, start=1):
        name = _text(obj, "name")
        item = f"object {number}" + (f" ({name})" if name else "")
        if not name:
            report.append(ReportEntry(file, item, "skipped", "object has no <name>"))
            continue
        bndboxes = obj.findall("bndbox") or [None]
        if len(bndboxes) > 1:
            report.append(ReportEntry(
                file, item, "note",
                f"object has {len(bndboxes)} <bndbox> elements: imported as {len(bndboxes)} "
                f"boxes of {name!r}, numbered 'box 1', 'box 2', ... in this report"))
        difficult = _flag(obj, "difficult", file, item, report)
        truncated = _flag(obj, "truncated", file, item, report)
        for part, bndbox in enumerate(bndboxes, start=1):
            where = item if len(bndboxes) == 1 else f"{item} box {part}"
            corners = [None if bndbox is None else to_float(_text(bndbox, key))
                       for key in ("xmin", "ymin", "xmax", "ymax")]
            if any(value is None for value in corners):
                report.append(ReportEntry(
                    file, where, "skipped", "no <bndbox> with numeric xmin, ymin, xmax, ymax"))
                continue
            xmin, ymin, xmax, ymax = corners  # type: ignore[misc]
            # Checked on VOC's own corners first: xmin = xmax is a click without a drag (zero
            # area), though the 1-based conversion below would make it one pixel wide.
            problem = check_box((xmin, ymin, xmax, ymax)).problem
            if problem is not None:
                report.append(ReportEntry(
                    file, where, "skipped",
                    f"box {problem}: xmin {format_number(xmin)}, ymin {format_number(ymin)}, "
                    f"xmax {format_number(xmax)}, ymax {format_number(ymax)}"))
                continue
            box = add_box(record, (xmin - 1, ymin - 1, xmax, ymax), 0, file=file, item=where,
                          report=report, orientation=orientation, difficult=difficult,
                          truncated=truncated)
            names.add(box, name)
    if not filename:
        report.append(ReportEntry(file, "filename", "note",
                                  f"no <filename>; image looked up as {image_path.name}"))
    return record


def _find_image(root: ET.Element, xml_file: Path, devkit: Path | None,
                index: FolderIndex) -> Path:
    """Where the XML's image is (see the module docstring), or where it should be if missing."""
    filename = _text(root, "filename")
    folder = _text(root, "folder")
    here, parent = xml_file.parent, xml_file.parent.parent
    candidates = [devkit / "JPEGImages"] if devkit is not None else []
    candidates += [here, parent / "JPEGImages", parent / "images", here / "images"]
    if folder and "/" not in folder and "\\" not in folder:
        candidates.append(parent / folder)
    folders = unique_folders(candidates)
    found = locate_image(folders, [filename] if filename else [], [], index)
    declared_path = _text(root, "path")
    if found is None and declared_path and Path(declared_path).is_file():
        found = Path(declared_path)
    if found is None:
        stems = [xml_file.stem] + ([Path(filename).stem, filename] if filename else [])
        found = locate_image(folders, [], stems, index)
    if found is not None:
        return found
    # Missing: the record points where the layout says the image belongs: the devkit's
    # JPEGImages/ or a sibling image folder, else beside the XML.
    where = next((f for f in folders if f != absolute(here)), absolute(here))
    return where / (Path(filename).name if filename else xml_file.stem + ".jpg")


def _text(element: ET.Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _flag(obj: ET.Element, tag: str, file: str, item: str, report: list[ReportEntry]) -> bool:
    """A VOC 0/1 flag; a missing element is 0, an empty or odd one is 0 with a note."""
    element = obj.find(tag)
    if element is None:
        return False
    text = (element.text or "").strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text not in ("0", "false", "no"):
        report.append(ReportEntry(file, item, "note", f"<{tag}> is {text!r}; taken as 0"))
    return False


# ---------------------------------------------------------------------------------------------
# Writing


def write_voc(annotations: AnnotationSet, out: Path, *, split: str | None = None,
              images: str = "copy") -> list[Path]:
    """Write the devkit layout under the folder ``out`` (see the module docstring)."""
    out = absolute(out)
    annotations_dir, jpeg_dir = out / "Annotations", out / "JPEGImages"
    annotations_dir.mkdir(parents=True, exist_ok=True)
    names = annotations.category_names()
    stems = UniqueNames()
    written: list[Path] = []
    split_ids: dict[str, list[str]] = {}
    for image in images_to_write(annotations, split):
        source = image_file(annotations, image)
        stem = stems.take(source.stem)
        target = jpeg_dir / (stem + source.suffix)
        xml_file = annotations_dir / f"{stem}.xml"
        if place_image(annotations, source, target, images, str(xml_file)):
            written.append(target)
        else:
            target = source
        size = known_size(image, source)
        if size is None:
            report_unwritable(annotations, str(xml_file), str(source), "image size unknown "
                              "(missing or unreadable image): <size> written as 0 x 0")
        xml = _annotation_xml(image, target, size or (0, 0), _depth(source), names,
                              annotations, str(xml_file))
        xml_file.write_text(xml, encoding="utf-8")
        written.append(xml_file)
        if image.split in SPLITS:
            split_ids.setdefault(image.split, []).append(stem)
    if split_ids:
        split_ids["trainval"] = split_ids.get("train", []) + split_ids.get("val", [])
        main = out / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        for name in _SPLIT_FILES:
            if split_ids.get(name):
                listing = main / f"{name}.txt"
                listing.write_text("".join(f"{i}\n" for i in split_ids[name]), encoding="utf-8")
                written.append(listing)
    return written


def _depth(image_path: Path) -> int:
    """``<depth>``: 1 for a grayscale image file, 3 for any other or one that cannot be read.

    Only the header is read (Pillow's ``open`` decodes no pixels) for the mode it states.
    """
    try:
        with Image.open(image_path) as opened:
            mode = opened.mode
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 3
    return 1 if mode in _GRAYSCALE_MODES else 3


def _annotation_xml(image: ImageRecord, image_path: Path, size: tuple[int, int], depth: int,
                    names: dict[int, str], annotations: AnnotationSet, xml_file: str) -> str:
    """LabelImg's XML for one image: its elements, their order and its tab indentation."""
    top = ET.Element("annotation")
    # A record without a status (read from a format that has none) is what the importer
    # would make of it: done when it has boxes.
    status = image.status or ("done" if image.boxes else None)
    if status == "done" and not image.boxes:
        status = None  # a file listing no object already says "done, no objects"
    if status in _VERIFIED:
        top.set("verified", _VERIFIED[status])
    _sub(top, "folder", image_path.parent.name)
    _sub(top, "filename", image_path.name)
    _sub(top, "path", str(image_path))
    _sub(_sub(top, "source"), "database", "Unknown")
    size_element = _sub(top, "size")
    _sub(size_element, "width", str(size[0]))
    _sub(size_element, "height", str(size[1]))
    _sub(size_element, "depth", str(depth))
    _sub(top, "segmented", "0")
    for box in writable_boxes(annotations, image, xml_file):
        obj = _sub(top, "object")
        _sub(obj, "name", names[box.category_id])
        _sub(obj, "pose", "Unspecified")
        _sub(obj, "truncated", str(int(box.truncated)))
        _sub(obj, "difficult", str(int(box.difficult)))
        bndbox = _sub(obj, "bndbox")
        for key, value in (("xmin", box.x0 + 1), ("ymin", box.y0 + 1), ("xmax", box.x1),
                           ("ymax", box.y1)):
            _sub(bndbox, key, format_number(value))
    ET.indent(top, space="\t")
    return ET.tostring(top, encoding="unicode") + "\n"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element
