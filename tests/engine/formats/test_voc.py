"""Pascal VOC: 1-based corners, LabelImg's XML, the devkit layout and the real raccoon data."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from engine.data.annotations import AnnotationSet, BoxRecord, Category, ImageRecord
from engine.data.formats import FormatError, read_annotations, write_annotations
from engine.data.formats.common import skipped_box_count
from engine.data.images import load_image

from .conftest import box_table, entries, write_image


def voc_xml(filename: str, objects: str, *, width: int = 64, height: int = 48,
            verified: bool | str = False, folder: str = "images", path: str = "/elsewhere/x.jpg",
            depth: int = 3) -> str:
    """LabelImg's XML; ``verified`` True writes verified="yes", a text writes that value."""
    value = "yes" if verified is True else verified or None
    attribute = f' verified="{value}"' if value else ""
    return (f"<annotation{attribute}><folder>{folder}</folder><filename>{filename}</filename>"
            f"<path>{path}</path><size><width>{width}</width><height>{height}</height>"
            f"<depth>{depth}</depth></size>{objects}</annotation>")


def voc_object(name="cat", xmin="1", ymin="1", xmax="10", ymax="20", extra="") -> str:
    return (f"<object><name>{name}</name>{extra}<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")


def loose(tmp_path: Path, files: dict[str, str], images=("a.jpg",)) -> Path:
    for name in images:
        write_image(tmp_path / name)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_one_based_corners_become_pixel_edges(tmp_path):
    # xmin=1 is the first pixel column, whose left edge is 0; xmax=10 is the tenth, right edge 10.
    folder = loose(tmp_path, {"a.xml": voc_xml("a.jpg", voc_object())})
    annotations = read_annotations(folder, "voc")
    box = annotations.images[0].boxes[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (0, 0, 10, 20)
    assert annotations.categories == [Category(1, "cat")]
    assert annotations.images[0].path == tmp_path / "a.jpg"
    assert (annotations.images[0].width, annotations.images[0].height) == (64, 48)
    assert annotations.report == []


def test_flags_verified_and_float_coordinates(tmp_path):
    objects = (voc_object(extra="<truncated>1</truncated><difficult>1</difficult>")
               + voc_object("dog", "2.5", "3.25", "20.75", "30"))
    folder = loose(tmp_path, {"a.xml": voc_xml("a.jpg", objects, verified=True)})
    image = read_annotations(folder, "voc").images[0]
    assert image.status == "done"
    first, second = image.boxes
    assert first.difficult and first.truncated
    assert (second.x0, second.y0, second.x1, second.y1) == (1.5, 2.25, 20.75, 30)
    assert not second.difficult and not second.truncated


def test_labelimg_xml_is_written_exactly(tmp_path):
    image = write_image(tmp_path / "src" / "a.jpg")
    annotations = AnnotationSet(
        categories=[Category(3, "raccoon")],
        images=[ImageRecord(image, 64, 48, [BoxRecord(80, 87, 64, 48, 3, truncated=True)],
                            status="done")])
    annotations.images[0].boxes[0] = BoxRecord(0, 1.5, 10, 20.25, 3, truncated=True)
    written = write_annotations(annotations, "voc", tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(written) == [out / "Annotations" / "a.xml", out / "JPEGImages" / "a.jpg"]
    expected = f"""<annotation verified="yes">
\t<folder>JPEGImages</folder>
\t<filename>a.jpg</filename>
\t<path>{out / "JPEGImages" / "a.jpg"}</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>64</width>
\t\t<height>48</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>raccoon</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>1</xmin>
\t\t\t<ymin>2.5</ymin>
\t\t\t<xmax>10</xmax>
\t\t\t<ymax>20.25</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""
    assert (out / "Annotations" / "a.xml").read_text(encoding="utf-8") == expected


def test_round_trip_keeps_integer_and_float_corners_as_they_were(tmp_path):
    objects = (voc_object("cat", "1", "1", "64", "48") + voc_object("dog", "5", "7", "33", "21")
               + voc_object("dog", "2.5", "3.3", "20.7", "30.1"))
    source = loose(tmp_path / "in", {"a.xml": voc_xml("a.jpg", objects)})
    first = read_annotations(source, "voc")
    write_annotations(first, "voc", tmp_path / "out")
    text = (tmp_path / "out" / "Annotations" / "a.xml").read_text(encoding="utf-8")
    for corner in ("<xmin>1</xmin>", "<xmax>64</xmax>", "<ymin>7</ymin>", "<xmin>2.5</xmin>",
                   "<ymin>3.3</ymin>", "<xmax>20.7</xmax>", "<ymax>30.1</ymax>"):
        assert corner in text
    second = read_annotations(tmp_path / "out", "voc")
    assert box_table(second) == box_table(first)


def test_devkit_layout_with_splits_round_trips(tmp_path, sample_set):
    written = write_annotations(sample_set, "voc", tmp_path / "devkit")
    main = tmp_path / "devkit" / "ImageSets" / "Main"
    assert (main / "train.txt").read_text() == "café photo 1\n"
    assert (main / "val.txt").read_text() == "b\n"
    assert (main / "trainval.txt").read_text() == "café photo 1\nb\n"
    assert not (main / "test.txt").exists()
    assert tmp_path / "devkit" / "JPEGImages" / "café photo 1.jpg" in written
    back = read_annotations(tmp_path / "devkit")
    assert box_table(back) == box_table(sample_set)
    # b.png had no status but a box (an import makes it done): written verified="yes" too.
    assert {Path(i.path).name: (i.split, i.status) for i in back.images} == {
        "café photo 1.jpg": ("train", "done"), "b.png": ("val", "done"),
        "empty.jpg": (None, "done")}
    assert all(Path(i.path).parent == tmp_path / "devkit" / "JPEGImages" for i in back.images)
    # The devkit's Annotations/ folder and a single XML file read the same.
    assert box_table(read_annotations(tmp_path / "devkit" / "Annotations")) == box_table(back)
    one = read_annotations(tmp_path / "devkit" / "Annotations" / "b.xml")
    assert one.images[0].split == "val"


def _attributes(folder: Path) -> dict[str, tuple[str | None, str]]:
    """Exported file name -> (its verified attribute or None, its <depth>)."""
    found = {}
    for xml_file in sorted((folder / "Annotations").glob("*.xml")):
        root = ET.parse(xml_file).getroot()
        found[root.findtext("filename")] = (root.get("verified"), root.findtext("size/depth"))
    return found


def test_verified_and_depth_read_back_as_labelimg_wrote_them(tmp_path):
    """LabelImg marks verified files only. A grayscale file has depth 1. Both come back."""
    source = tmp_path / "labelimg"
    write_image(source / "done.jpg")
    Image.new("L", (64, 48), 128).save(source / "gray.png")  # one channel: depth 1
    write_image(source / "old.jpg")
    write_image(source / "empty.jpg")
    box = voc_object("cat", "1", "1", "10", "20")
    (source / "done.xml").write_text(voc_xml("done.jpg", box, verified=True))
    (source / "gray.xml").write_text(voc_xml("gray.png", box, depth=1))  # not verified
    (source / "old.xml").write_text(voc_xml("old.jpg", box, verified="no"))  # old LabelImg
    (source / "empty.xml").write_text(voc_xml("empty.jpg", ""))
    first = read_annotations(source, "voc")
    assert {Path(i.path).name: i.status for i in first.images} == {
        "done.jpg": "done", "empty.jpg": "done", "gray.png": "in_progress",
        "old.jpg": "in_progress"}
    # Each file not marked verified is named (its XML file and its image).
    assert [(Path(e.file).name, e.item, e.action) for e in first.report] == [
        ("gray.xml", "gray.png", "note"), ("old.xml", "old.jpg", "note")]
    write_annotations(first, "voc", tmp_path / "out", images="none")
    assert _attributes(tmp_path / "out") == {
        "done.jpg": ("yes", "3"), "empty.jpg": (None, "3"), "gray.png": ("no", "1"),
        "old.jpg": ("no", "3")}
    again = read_annotations(tmp_path / "out", "voc")
    assert {Path(i.path).name: i.status for i in again.images} == {
        Path(i.path).name: i.status for i in first.images}


def test_files_of_a_tool_without_the_verified_flag_are_left_to_the_importer(tmp_path):
    """No file verified (the VOC devkit, CVAT): nothing to tell, the importer decides (done
    for images with boxes); a missing image file is written with depth 3."""
    source = tmp_path / "devkit"
    write_image(source / "a.jpg")
    (source / "a.xml").write_text(voc_xml("a.jpg", voc_object()))
    (source / "gone.xml").write_text(voc_xml("gone.jpg", voc_object(), depth=1))
    first = read_annotations(source, "voc")
    assert [i.status for i in first.images] == [None, None]
    assert [e.action for e in first.report] == ["missing"]
    write_annotations(first, "voc", tmp_path / "out", images="none")
    assert _attributes(tmp_path / "out") == {"a.jpg": ("yes", "3"), "gone.jpg": ("yes", "3")}


def test_writing_one_split_writes_only_its_images(tmp_path, sample_set):
    write_annotations(sample_set, "voc", tmp_path / "val", split="val")
    assert [p.name for p in (tmp_path / "val" / "Annotations").iterdir()] == ["b.xml"]
    write_annotations(sample_set, "voc", tmp_path / "none", split="none", images="none")
    assert [p.name for p in (tmp_path / "none" / "Annotations").iterdir()] == ["empty.xml"]
    assert not (tmp_path / "none" / "JPEGImages").exists()


def test_the_real_raccoon_dataset(shared_data):
    annotations = read_annotations(shared_data / "raccoon")
    assert len(annotations.images) == 200
    assert annotations.box_count == 217
    assert [c.name for c in annotations.categories] == ["raccoon"]
    by_name = {Path(i.path).name: i for i in annotations.images}
    # 199 files say verified="yes"; raccoon-37.xml says verified="no": in progress, noted.
    assert [i.status for i in annotations.images].count("done") == 199
    assert by_name["raccoon-37.jpg"].status == "in_progress"
    assert [(Path(e.file).name, e.item, e.action) for e in annotations.report] == [
        ("raccoon-37.xml", "raccoon-37.jpg", "note")]
    # raccoon-1.xml: <path>/Users/datitran/...</path>, xmin 81 ymin 88 xmax 522 ymax 408.
    first = by_name["raccoon-1.jpg"]
    assert first.path == shared_data / "raccoon" / "images" / "raccoon-1.jpg"
    assert first.status == "done" and (first.width, first.height) == (650, 417)
    box = first.boxes[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (80, 87, 522, 408)
    assert all(Path(i.path).is_file() for i in annotations.images)
    assert sum(b.truncated for i in annotations.images for b in i.boxes) > 0


def test_raccoon_round_trip_is_the_identity_on_corners(shared_data, tmp_path):
    source = shared_data / "raccoon" / "annotations"
    subset = tmp_path / "subset" / "annotations"
    subset.mkdir(parents=True)
    for xml in sorted(source.glob("*.xml"))[:12]:
        shutil.copy(xml, subset)
    shutil.copytree(shared_data / "raccoon" / "images", tmp_path / "subset" / "images")
    first = read_annotations(tmp_path / "subset", "voc")
    write_annotations(first, "voc", tmp_path / "out", images="none")
    for xml in subset.glob("*.xml"):
        original = xml.read_text(encoding="utf-8")
        written = (tmp_path / "out" / "Annotations" / xml.name).read_text(encoding="utf-8")
        for tag in ("xmin", "ymin", "xmax", "ymax", "truncated", "difficult"):
            assert _values(original, tag) == _values(written, tag), (xml.name, tag)


def _values(text: str, tag: str) -> list[str]:
    return [part.split(f"</{tag}>")[0] for part in text.split(f"<{tag}>")[1:]]


def test_bad_objects_are_reported_and_skipped(tmp_path):
    objects = (voc_object("") + "<object><name>cat</name></object>"
               + voc_object("cat", "a", "1", "2", "3")
               + voc_object("cat", "20", "1", "10", "5")
               + voc_object("cat", "1", "1", "100", "5")
               + voc_object("cat", "500", "1", "600", "5")
               + voc_object(extra="<difficult/><truncated>maybe</truncated>"))
    folder = loose(tmp_path, {"a.xml": voc_xml("a.jpg", objects)})
    annotations = read_annotations(folder, "voc")
    image = annotations.images[0]
    assert [(b.x0, b.x1) for b in image.boxes] == [(0, 64), (0, 10)]
    assert not image.boxes[1].difficult and not image.boxes[1].truncated
    actions = [(e.item, e.action) for e in annotations.report]
    assert actions == [
        ("object 1", "skipped"),  # <name></name>
        ("object 2 (cat)", "skipped"),  # no bndbox
        ("object 3 (cat)", "skipped"),  # xmin "a"
        ("object 4 (cat)", "skipped"),  # xmax < xmin
        ("object 5 (cat)", "clipped"),  # xmax 100 > width 64
        ("object 6 (cat)", "skipped"),  # entirely right of the image
        ("object 7 (cat)", "note"),  # <difficult/> taken as 0
        ("object 7 (cat)", "note"),  # <truncated>maybe</truncated> taken as 0
    ]
    assert all(e.file == str(folder / "a.xml") for e in annotations.report)
    assert skipped_box_count(annotations.report) == 5


def test_a_malformed_xml_among_many_is_reported_a_lone_one_raises(tmp_path):
    folder = loose(tmp_path, {"a.xml": voc_xml("a.jpg", voc_object()),
                              "broken.xml": "<annotation><filename>b.jpg</filen",
                              "other.xml": "<config><x>1</x></config>"})
    annotations = read_annotations(folder, "voc")
    assert annotations.box_count == 1
    skipped = {Path(e.file).name: e.reason for e in entries(annotations, "skipped")}
    assert "not a readable XML file" in skipped["broken.xml"]
    assert "root element <config>" in skipped["other.xml"]
    with pytest.raises(FormatError, match=r"broken\.xml: not a readable XML"):
        read_annotations(folder / "broken.xml", "voc")
    (folder / "a.xml").unlink()
    with pytest.raises(FormatError, match="none of its 2 XML files is a readable"):
        read_annotations(folder, "voc")
    with pytest.raises(FormatError, match="no Pascal VOC XML"):
        read_annotations(write_image(tmp_path / "empty" / "x.jpg").parent, "voc")


def test_images_are_found_by_stem_and_sibling_folders_missing_ones_kept(tmp_path):
    write_image(tmp_path / "JPEGImages" / "b.JPG")
    write_image(tmp_path / "photos" / "c.jpg")
    annotations_dir = tmp_path / "xml"
    annotations_dir.mkdir()
    (annotations_dir / "b.xml").write_text(voc_xml("renamed.png", voc_object()))
    (annotations_dir / "c.xml").write_text(voc_xml("c.jpg", voc_object(), folder="photos"))
    (annotations_dir / "gone.xml").write_text(voc_xml("gone.jpg", voc_object()))
    annotations = read_annotations(annotations_dir, "voc")
    paths = [i.path for i in annotations.images]
    assert paths == [tmp_path / "JPEGImages" / "b.JPG", tmp_path / "photos" / "c.jpg",
                     tmp_path / "JPEGImages" / "gone.jpg"]
    missing = entries(annotations, "missing")
    assert [(e.file, e.item) for e in missing] == [
        (str(annotations_dir / "gone.xml"), str(tmp_path / "JPEGImages" / "gone.jpg"))]
    assert annotations.images[2].boxes and annotations.images[2].width == 64


def test_non_ascii_and_spaces_in_file_names(tmp_path, shared_data):
    odd = shared_data / "labelimg_samples" / "odd_images"
    folder = tmp_path / "odd"
    shutil.copytree(odd, folder)
    (folder / "臉書.xml").write_text(
        voc_xml("臉書.jpg", voc_object("臉", "1", "1", "33", "32"), width=33, height=32),
        encoding="utf-8")
    (folder / "test.512.512.xml").write_text(
        voc_xml("test.512.512.bmp", voc_object("x y", "1", "1", "2", "2"), width=512,
                height=512), encoding="utf-8")
    annotations = read_annotations(folder)
    assert [Path(i.path).name for i in annotations.images] == ["test.512.512.bmp", "臉書.jpg"]
    assert all(Path(i.path).is_file() for i in annotations.images)
    assert [c.name for c in annotations.categories] == ["x y", "臉"]
    out = tmp_path / "out"
    write_annotations(annotations, "voc", out)
    assert (out / "JPEGImages" / "臉書.jpg").is_file()
    assert box_table(read_annotations(out)) == box_table(annotations)


def test_a_zero_byte_image_keeps_its_record_and_declared_size(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "a.xml").write_text(voc_xml("a.jpg", voc_object()))
    annotations = read_annotations(tmp_path, "voc")
    image = annotations.images[0]
    assert (image.width, image.height) == (64, 48) and len(image.boxes) == 1
    assert [e.action for e in annotations.report] == ["note"]
    assert "not a readable image" in annotations.report[0].reason


def test_boxes_drawn_on_the_raw_pixels_of_a_rotated_photo_are_turned(tmp_path):
    # Stored 60 x 40 with EXIF orientation 6 (shown 40 x 60, rotated 90 degrees clockwise).
    # The XML declares the stored size, so its box was drawn on the raw pixels.
    write_image(tmp_path / "r.jpg", (60, 40), orientation=6)
    (tmp_path / "r.xml").write_text(
        voc_xml("r.jpg", voc_object("a", "1", "1", "10", "20"), width=60, height=40))
    annotations = read_annotations(tmp_path, "voc")
    image = annotations.images[0]
    assert (image.width, image.height) == (40, 60)
    box = image.boxes[0]
    # Raw (0, 0, 10, 20) on 60 x 40 -> displayed (40 - 20, 0, 40 - 0, 10).
    assert (box.x0, box.y0, box.x1, box.y1) == (20, 0, 40, 10)
    assert [e.action for e in annotations.report] == ["note"]
    assert "EXIF orientation 6" in annotations.report[0].reason
    # Declaring the displayed size means the box already is in the displayed orientation.
    (tmp_path / "r.xml").write_text(
        voc_xml("r.jpg", voc_object("a", "1", "1", "10", "20"), width=40, height=60))
    again = read_annotations(tmp_path, "voc")
    assert (again.images[0].boxes[0].x1, again.report) == (10, [])


def test_the_real_exif_photos(shared_data, tmp_path):
    # Landscape_6.jpg is stored 1200 x 1800 and shown 1800 x 1200.
    photo = shared_data / "exif_orientation" / "Landscape_6.jpg"
    (tmp_path / "Landscape_6.xml").write_text(voc_xml(
        str(photo.name), voc_object("f", "1", "1", "100", "300"), width=1200, height=1800,
        folder="exif_orientation"))
    shutil.copy(photo, tmp_path)
    annotations = read_annotations(tmp_path, "voc")
    image = annotations.images[0]
    assert (image.width, image.height) == (1800, 1200)
    box = image.boxes[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (1800 - 300, 0, 1800, 100)
    assert load_image(image.path).size == (1800, 1200)
