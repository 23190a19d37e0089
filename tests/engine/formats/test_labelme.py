"""labelme JSON: rectangles from two unordered points, other shapes counted, imageData."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from engine.data.formats import FormatError, read_annotations, write_annotations
from engine.data.formats.common import skipped_box_count
from engine.data.images import image_size

from .conftest import box_table, entries, write_image


def shape(label, points, kind="rectangle", **extra):
    return {"label": label, "points": points, "group_id": None, "shape_type": kind,
            "flags": {}, **extra}


def labelme_json(path: Path, shapes: list, image_path: str | None = "a.jpg", *,
                 image_data: str | None = None, size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
        "imageData": image_data, "imageHeight": size[1], "imageWidth": size[0]}),
        encoding="utf-8")
    return path


def test_rectangle_points_in_any_order_become_min_max(tmp_path):
    write_image(tmp_path / "a.jpg")
    labelme_json(tmp_path / "a.json", [
        shape("cat", [[30.5, 40], [10, 5.25]]),  # dragged from bottom right to top left
        shape("dog", [[1, 2], [3, 4]], flags={"difficult": True})])
    annotations = read_annotations(tmp_path / "a.json")
    first, second = annotations.images[0].boxes
    assert (first.x0, first.y0, first.x1, first.y1) == (10, 5.25, 30.5, 40)
    assert second.difficult
    assert [(c.id, c.name) for c in annotations.categories] == [(1, "cat"), (2, "dog")]
    assert annotations.images[0].path == tmp_path / "a.jpg"
    assert annotations.report == []


def test_other_shapes_are_skipped_and_counted(tmp_path):
    write_image(tmp_path / "a.jpg")
    labelme_json(tmp_path / "a.json", [
        shape("a", [[1, 1], [5, 5], [1, 5]], "polygon"),
        shape("a", [[1, 1], [5, 5], [1, 5]], "polygon"),
        shape("b", [[1, 1], [5, 5]], "circle"), shape("c", [[1, 1]], "point"),
        shape("d", [[1, 1], [5, 5]], "line"), shape("e", [[1, 1], [5, 5], [6, 6]], "linestrip"),
        shape("f", [[1, 1], [2, 2]], None),  # no shape_type: labelme's polygon
        shape("g", [[1, 1]]),  # a rectangle with one point
        shape("", [[1, 1], [5, 5]]),
        shape("h", [[2, 2], [9, 9]])])
    annotations = read_annotations(tmp_path)
    assert annotations.box_count == 1
    report = [(e.item, e.action) for e in annotations.report]
    assert report == [("shape 8 (g)", "skipped"), ("shape 9 ()", "skipped"),
                      ("shapes", "skipped")]
    assert annotations.report[-1].reason.startswith(
        "1 circle, 1 line, 1 linestrip, 1 point, 3 polygon shapes skipped")
    # Shapes that are not rectangles are no boxes: the two bad rectangles are the skipped boxes.
    assert skipped_box_count(annotations.report) == 2


def test_image_path_relative_with_backslashes_and_missing_images(tmp_path):
    write_image(tmp_path / "pics" / "x y.jpg")
    labelme_json(tmp_path / "ann" / "one.json", [shape("a", [[1, 1], [5, 5]])],
                 "..\\pics\\x y.jpg")
    labelme_json(tmp_path / "ann" / "two.json", [shape("a", [[1, 1], [5, 5]])],
                 "C:\\Users\\someone\\gone.jpg")
    annotations = read_annotations(tmp_path / "ann")
    assert [i.path for i in annotations.images] == [tmp_path / "pics" / "x y.jpg",
                                                    tmp_path / "ann" / "gone.jpg"]
    assert [(e.item, e.action) for e in annotations.report] == [
        (str(tmp_path / "ann" / "gone.jpg"), "missing")]
    assert annotations.box_count == 2


def test_embedded_image_data_is_written_once_and_never_over_another_file(tmp_path):
    source = write_image(tmp_path / "src" / "photo.png", (32, 24))
    data = base64.b64encode(source.read_bytes()).decode()
    folder = tmp_path / "ann"
    labelme_json(folder / "photo.json", [shape("a", [[1, 1], [5, 5]])], "photo.png",
                 image_data=data, size=(32, 24))
    labelme_json(folder / "nameless.json", [], None, image_data=data, size=(32, 24))
    first = read_annotations(folder)
    paths = {Path(i.path).name for i in first.images}
    assert paths == {"photo.png", "nameless.png"}
    assert (folder / "photo.png").read_bytes() == source.read_bytes()
    assert image_size(folder / "nameless.png")[:2] == (32, 24)
    assert [e.action for e in first.report] == ["note", "note"]
    # Read again: the files now exist and are used as they are, nothing written.
    second = read_annotations(folder)
    assert second.report == [] and box_table(second) == box_table(first)
    # A different file already named like imagePath is never overwritten.
    (folder / "photo.png").unlink()
    (folder / "nameless.png").unlink()
    labelme_json(folder / "other.json", [], "photo.png", image_data=data, size=(32, 24))
    labelme_json(folder / "photo.json", [], "sub/photo.png", image_data=data, size=(32, 24))
    (folder / "photo.png").write_bytes(b"not this one")
    third = read_annotations(folder / "other.json")
    assert third.images[0].path == folder / "photo.png"  # found as it is: a file, unreadable
    fourth = read_annotations(folder / "photo.json")
    assert fourth.images[0].path == folder / "photo.png"  # found by base name beside
    labelme_json(folder / "new.json", [], "fresh.png", image_data=data, size=(32, 24))
    (folder / "fresh.png").mkdir()  # a name taken by something else entirely
    fifth = read_annotations(folder / "new.json")
    assert fifth.images[0].path == folder / "fresh_2.png"
    assert (folder / "photo.png").read_bytes() == b"not this one"


def test_bad_image_data_is_reported(tmp_path):
    labelme_json(tmp_path / "a.json", [], "a.png", image_data="!!not base64!!")
    annotations = read_annotations(tmp_path / "a.json")
    assert [e.action for e in annotations.report] == ["skipped", "missing"]


def test_malformed_files_in_a_folder_are_reported_a_lone_one_raises(tmp_path):
    write_image(tmp_path / "a.jpg")
    labelme_json(tmp_path / "a.json", [shape("a", [[1, 1], [5, 5]])])
    (tmp_path / "broken.json").write_text('{"shapes": [')
    (tmp_path / "coco.json").write_text('{"images": []}')
    annotations = read_annotations(tmp_path, "labelme")
    assert annotations.box_count == 1
    assert [(Path(e.file).name, e.action) for e in annotations.report] == [
        ("broken.json", "skipped"), ("coco.json", "skipped")]
    with pytest.raises(FormatError, match=r"broken\.json: not a readable JSON"):
        read_annotations(tmp_path / "broken.json", "labelme")
    (tmp_path / "a.json").unlink()
    with pytest.raises(FormatError, match="no readable labelme JSON"):
        read_annotations(tmp_path, "labelme")


def test_round_trip(tmp_path, sample_set):
    written = write_annotations(sample_set, "labelme", tmp_path / "out")
    assert sorted(p.name for p in written) == ["b.json", "café photo 1.json", "empty.json"]
    data = json.loads((tmp_path / "out" / "café photo 1.json").read_text(encoding="utf-8"))
    assert data["imagePath"] == "../source/café photo 1.jpg" and data["imageData"] is None
    assert data["shapes"][1] == {
        "label": "dog", "points": [[5.5, 6.25], [30.75, 40]], "group_id": None,
        "description": "", "shape_type": "rectangle",
        "flags": {"difficult": True, "truncated": True}}
    back = read_annotations(tmp_path / "out")
    assert back.report == []
    assert box_table(back) == box_table(sample_set)
    assert [(c.id, c.name) for c in back.categories] == [(1, "cat"), (2, "dog")]
    assert entries(sample_set) == []
