"""What real tools' files say is imported as they say it: images the source declares empty are
done negatives (counted), one VOC object with several boxes gives several boxes, zero-area
boxes are skipped and counted, and images in progress get the promised note."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from engine.data.importing import import_annotations
from engine.data.project import Project


def _image(path: Path, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)


def _voc(filename: str, objects: str, verified: str | None = None) -> str:
    attribute = f' verified="{verified}"' if verified else ""
    return (f"<annotation{attribute}><filename>{filename}</filename><size><width>64</width>"
            f"<height>48</height><depth>3</depth></size>{objects}</annotation>")


def _object(name: str, *boxes: tuple[int, int, int, int]) -> str:
    inner = "".join(f"<bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
                    f"</bndbox>" for a, b, c, d in boxes)
    return f"<object><name>{name}</name>{inner}</object>"


def _statuses(project_dir: Path) -> dict[str, tuple[str, int]]:
    with Project.open(project_dir) as project:
        return {image.file.name: (image.status, len(project.boxes(image.id)))
                for image in project.images()}


def test_background_images_of_yolo_coco_and_voc_import_as_done_negatives(tmp_path):
    # YOLO: an empty label file says "no objects"; no label file says nothing.
    yolo = tmp_path / "yolo"
    for name in ("cat", "empty", "unlabeled"):
        _image(yolo / "images" / f"{name}.png")
    (yolo / "labels").mkdir()
    (yolo / "labels" / "cat.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (yolo / "labels" / "empty.txt").write_text("")
    (yolo / "classes.txt").write_text("cat\n")
    # COCO: an image without annotations is a negative.
    coco = tmp_path / "coco"
    _image(coco / "a.png")
    _image(coco / "b.png")
    (coco / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    # VOC: a file listing no object.
    voc = tmp_path / "voc"
    _image(voc / "c.png")
    _image(voc / "d.png")
    (voc / "c.xml").write_text(_voc("c.png", _object("cat", (1, 1, 10, 10))))
    (voc / "d.xml").write_text(_voc("d.png", ""))

    summaries = [import_annotations(tmp_path / "p", source).summary()
                 for source in (yolo, coco / "instances.json", voc)]
    assert _statuses(tmp_path / "p") == {
        "cat.png": ("done", 1), "empty.png": ("done", 0), "unlabeled.png": ("unlabeled", 0),
        "a.png": ("done", 1), "b.png": ("done", 0), "c.png": ("done", 1), "d.png": ("done", 0)}
    for summary in summaries:
        assert "(1 background image without objects, done: negatives to train on)" in summary
    with Project.open(tmp_path / "p") as project:
        trained = {Path(record.path).name for record in project.dataset(None)}
    assert {"empty.png", "b.png", "d.png"} <= trained


def test_a_voc_object_with_several_bndbox_elements_gives_each_box(tmp_path):
    _image(tmp_path / "voc" / "a.png")
    (tmp_path / "voc" / "a.xml").write_text(
        _voc("a.png", _object("dog", (1, 1, 10, 10), (20, 20, 30, 30), (40, 5, 60, 40))))
    report = import_annotations(tmp_path / "p", tmp_path / "voc")
    assert report.boxes_added == 3 and report.boxes_skipped == 0
    (note,) = [e for e in report.entries if e.action == "note" and "bndbox" in e.reason]
    assert note.item == "object 1 (dog)" and "3 <bndbox> elements" in note.reason
    assert _statuses(tmp_path / "p") == {"a.png": ("done", 3)}


def test_zero_area_voc_boxes_are_skipped_and_counted(tmp_path):
    _image(tmp_path / "voc" / "a.png")
    (tmp_path / "voc" / "a.xml").write_text(_voc("a.png", _object("dog", (5, 5, 20, 20))
                                                 + _object("dog", (10, 10, 10, 30))
                                                 + _object("dog", (10, 12, 30, 12))))
    report = import_annotations(tmp_path / "p", tmp_path / "voc")
    assert (report.boxes_added, report.boxes_skipped) == (1, 2)
    assert "2 invalid boxes skipped" in report.summary()
    skipped = [e for e in report.entries if e.action == "skipped"]
    assert [e.item for e in skipped] == ["object 2 (dog)", "object 3 (dog)"]
    assert all("zero width or height" in e.reason for e in skipped)


def test_voc_files_marked_verified_no_get_the_in_progress_note(tmp_path):
    voc = tmp_path / "voc"
    for name, verified in (("a", None), ("b", None), ("c", "no")):
        _image(voc / f"{name}.png")
        (voc / f"{name}.xml").write_text(_voc(f"{name}.png", _object("cat", (1, 1, 9, 9)),
                                              verified))
    report = import_annotations(tmp_path / "p", voc)
    (note,) = [e for e in report.entries if "in progress" in e.reason]
    assert note.item == "c.png" and 'verified="no"' in note.reason  # the file is named
    assert _statuses(tmp_path / "p")["c.png"] == ("in_progress", 1)
