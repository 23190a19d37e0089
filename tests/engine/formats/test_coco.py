"""COCO JSON: real exporters' shapes (CVAT, Label Studio), bad input, round trips, pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from engine.data.annotations import Category
from engine.data.formats import FormatError, read_annotations, write_annotations
from engine.data.formats.common import skipped_box_count

from .conftest import box_table, entries, write_image


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def cvat_export(root: Path) -> Path:
    """What CVAT's "COCO 1.0" export holds: annotations/instances_default.json + images/."""
    write_image(root / "images" / "frame_000000.PNG", (64, 48))
    write_image(root / "images" / "frame_000001.PNG", (64, 48))
    return write_json(root / "annotations" / "instances_default.json", {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": 1, "name": "car", "supercategory": ""},
                       {"id": 2, "name": "person", "supercategory": ""}],
        "images": [
            {"id": 1, "width": 64, "height": 48, "file_name": "frame_000000.PNG",
             "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0},
            {"id": 2, "width": 64, "height": 48, "file_name": "frame_000001.PNG",
             "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [], "area": 200.0,
             "bbox": [10.0, 5.0, 20.0, 10.0], "iscrowd": 0,
             "attributes": {"occluded": False, "rotation": 0.0}},
            {"id": 2, "image_id": 1, "category_id": 2,
             "segmentation": [[30.0, 10.0, 40.0, 10.0, 40.0, 30.0, 30.0, 30.0]],
             "area": 200.0, "bbox": [30.0, 10.0, 10.0, 20.0], "iscrowd": 0,
             "attributes": {"occluded": True}},
            # A crowd annotation: RLE mask (uncompressed counts, column-major) of 64 x 48
            # with the pixels x 2..3, y 4..6 set: 2 * 48 + 4 zeros, 3 ones, then 41 zeros,
            # 3 ones and the rest.
            {"id": 3, "image_id": 2, "category_id": 2, "iscrowd": 1, "area": 6,
             "segmentation": {"size": [48, 64], "counts": [100, 3, 45, 3, 64 * 48 - 151]},
             "attributes": {"occluded": False}}],
    })


def test_a_cvat_export(tmp_path):
    cvat_export(tmp_path)
    annotations = read_annotations(tmp_path)
    assert annotations.categories == [Category(1, "car"), Category(2, "person")]
    first, second = annotations.images
    assert first.path == tmp_path / "images" / "frame_000000.PNG"
    assert [(b.category_id, b.x0, b.y0, b.x1, b.y1) for b in first.boxes] == [
        (1, 10, 5, 30, 15), (2, 30, 10, 40, 30)]
    # The crowd annotation has no bbox: the RLE mask gives it; it becomes a difficult box.
    crowd = second.boxes[0]
    assert (crowd.x0, crowd.y0, crowd.x1, crowd.y1, crowd.difficult) == (2, 4, 4, 7, True)
    assert [(e.item, e.action) for e in annotations.report] == [("iscrowd", "note")]


def test_a_label_studio_export_ids_from_zero_and_backslashes(tmp_path):
    write_image(tmp_path / "images" / "8f2a-img 1.jpg", (100, 80))
    write_image(tmp_path / "images" / "sub" / "b.jpg", (100, 80))
    write_json(tmp_path / "result.json", {
        "images": [{"width": 100, "height": 80, "id": 0, "file_name": "images\\8f2a-img 1.jpg"},
                   {"width": 100, "height": 80, "id": 1, "file_name": "images/\\sub\\b.jpg"},
                   {"width": 100, "height": 80, "id": 2, "file_name": "/data/upload/3/b.jpg"}],
        "categories": [{"id": 0, "name": "Airplane"}, {"id": 1, "name": "Car"}],
        "annotations": [
            {"id": 0, "image_id": 0, "category_id": 0, "segmentation": [],
             "bbox": [0, 0, 100, 80], "ignore": 0, "iscrowd": 0, "area": 8000},
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [],
             "bbox": [10, 10, 5, 5], "ignore": 0, "iscrowd": 0, "area": 25}],
        "info": {"year": 2024, "version": "1.0", "contributor": "Label Studio"},
    })
    annotations = read_annotations(tmp_path / "result.json")
    assert [(c.id, c.name) for c in annotations.categories] == [(0, "Airplane"), (1, "Car")]
    assert [i.path for i in annotations.images] == [
        tmp_path / "images" / "8f2a-img 1.jpg", tmp_path / "images" / "sub" / "b.jpg",
        tmp_path / "images" / "sub" / "b.jpg"]  # the third found by its base name
    assert annotations.box_count == 2
    assert annotations.report == []


def test_polygon_only_annotations_get_the_polygons_bounding_box(tmp_path):
    write_image(tmp_path / "a.jpg", (64, 48))
    write_json(tmp_path / "c.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1,
                         "segmentation": [[5, 6, 20, 8, 12, 30], [25, 2, 26, 3, 25, 4]]}]})
    box = read_annotations(tmp_path / "c.json").images[0].boxes[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (5, 2, 26, 30)


def test_bad_annotations_are_reported_and_skipped_images_kept(tmp_path):
    write_image(tmp_path / "a.jpg", (64, 48))
    write_image(tmp_path / "b.jpg", (64, 48))
    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                   {"id": 1, "file_name": "b.jpg", "width": 64, "height": 48},
                   {"id": 2, "file_name": "missing one.jpg", "width": 10, "height": 10},
                   {"id": 3, "file_name": "b.jpg"},
                   {"file_name": "no id.jpg"}],
        "categories": [{"id": 1, "name": "x"}, {"id": 1, "name": "again"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5]},
            {"id": 2, "image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 0, 5, 5]},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [10, 10, -5, 5]},
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [60, 40, 10, 10]},
            {"id": 6, "image_id": 1, "category_id": 1, "bbox": [100, 100, 10, 10]},
            {"id": 7, "image_id": 1, "category_id": 1},
            {"id": 8, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]},
            "junk"]}), encoding="utf-8")
    annotations = read_annotations(tmp_path / "c.json")
    report = [(e.item, e.action) for e in annotations.report]
    missing = str(tmp_path / "missing one.jpg")
    assert report == [
        ("category 1", "skipped"),  # duplicate category id
        ("image 1", "skipped"),  # duplicate image id
        (missing, "missing"),
        ("image #5", "skipped"),  # no id
        ("annotation 1", "skipped"),  # unknown category 9
        ("annotation 2", "skipped"),  # unknown image 99
        ("annotation 3", "skipped"),  # NaN
        ("annotation 4", "skipped"),  # negative width
        ("annotation 5", "clipped"),  # partly outside
        ("annotation 6", "skipped"),  # entirely outside
        ("annotation 7", "skipped"),  # no bbox, no segmentation
        ("annotation #9", "skipped"),  # not an object
    ]
    # What an import's summary counts as boxes skipped: the 7 skipped annotations.
    assert skipped_box_count(annotations.report) == 7
    assert "unknown category id 9" in annotations.report[4].reason
    assert all(e.file == str(tmp_path / "c.json") for e in annotations.report)
    paths = [Path(i.path).name for i in annotations.images]
    assert paths == ["a.jpg", "missing one.jpg", "b.jpg"]
    a, gone, b = annotations.images
    assert [(x.x0, x.y0, x.x1, x.y1) for x in a.boxes] == [(60, 40, 64, 48)]
    # The missing image keeps its declared size and its box; the image without annotations
    # is kept with none.
    assert (gone.width, gone.height, len(gone.boxes)) == (10, 10, 1)
    assert (b.width, b.height, b.boxes) == (64, 48, [])


@pytest.mark.parametrize("text, reason", [
    ('{"images": [', "not a readable JSON file"),
    ('{"shapes": []}', 'no "images" list'),
    ("[1, 2]", 'no "images" list'),
    ("", "not a readable JSON file"),
])
def test_unreadable_files_raise_naming_the_file(tmp_path, text, reason):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(FormatError, match=reason) as raised:
        read_annotations(tmp_path / "bad.json", "coco")
    assert raised.value.file == str(tmp_path / "bad.json")


def test_round_trip_keeps_boxes_and_categories(tmp_path):
    cvat = cvat_export(tmp_path / "cvat")
    first = read_annotations(cvat)
    written = write_annotations(first, "coco", tmp_path / "out")
    assert written == [tmp_path / "out" / "annotations.json"]
    data = json.loads(written[0].read_text())
    assert [i["file_name"] for i in data["images"]] == [
        "../cvat/images/frame_000000.PNG", "../cvat/images/frame_000001.PNG"]
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    assert data["annotations"][0] == {
        "id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10], "area": 200,
        "iscrowd": 0, "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]]}
    assert data["annotations"][2]["iscrowd"] == 1
    second = read_annotations(written[0])
    assert second.categories == first.categories
    assert box_table(second) == box_table(first)
    assert [i.path for i in second.images] == [i.path for i in first.images]


def test_fractional_boxes_survive_the_round_trip_exactly(tmp_path, sample_set):
    out = tmp_path / "out" / "set.json"
    write_annotations(sample_set, "coco", out)
    back = read_annotations(out)
    assert box_table(back) == box_table(sample_set)
    data = json.loads(out.read_text())
    assert data["annotations"][1]["bbox"] == [5.5, 6.25, 25.25, 33.75]


def test_splits_become_file_names_and_a_folder_of_files_is_merged(tmp_path, sample_set):
    write_annotations(sample_set, "coco", tmp_path / "out", split="train")
    write_annotations(sample_set, "coco", tmp_path / "out", split="val")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "instances_train.json", "instances_val.json"]
    merged = read_annotations(tmp_path / "out")
    assert {Path(i.path).name: i.split for i in merged.images} == {
        "café photo 1.jpg": "train", "b.png": "val"}
    assert merged.box_count == 3


def test_the_written_file_evaluates_to_ap_1_with_pycocotools(tmp_path, sample_set):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # The difficult "dog" box is written as a crowd region: the detection on it is ignored.
    assert sample_set.images[0].boxes[1].difficult
    sample_set.categories[0].id = 0  # ids from 0 work too
    for image in sample_set.images:
        for box in image.boxes:
            box.category_id = 0 if box.category_id == 1 else box.category_id
    (path,) = write_annotations(sample_set, "coco", tmp_path / "gt.json")
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(path))
        detections = ground_truth.loadRes([
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0} for a in ground_truth.dataset["annotations"]])
        evaluation = COCOeval(ground_truth, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    assert sorted(ground_truth.getCatIds()) == [0, 2]


def test_a_declared_raw_size_on_a_rotated_photo_turns_the_boxes(tmp_path, shared_data):
    photo = shared_data / "exif_orientation" / "Portrait_8.jpg"  # stored 1800x1200, shown 1200x1800
    write_json(tmp_path / "c.json", {
        "images": [{"id": 1, "file_name": str(photo), "width": 1800, "height": 1200}],
        "categories": [{"id": 1, "name": "f"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 50]}]})
    annotations = read_annotations(tmp_path / "c.json")
    image = annotations.images[0]
    assert (image.width, image.height) == (1200, 1800)
    box = image.boxes[0]
    # Orientation 8 (rotate 90 counter-clockwise): raw (x0, y0, x1, y1) on W=1800 ->
    # (y0, W - x1, y1, W - x0).
    assert (box.x0, box.y0, box.x1, box.y1) == (0, 1700, 50, 1800)
    assert [e.action for e in annotations.report] == ["note"]


def test_missing_images_and_unknown_categories_on_writing_are_reported(tmp_path, sample_set):
    sample_set.images[2].path = tmp_path / "nowhere.jpg"
    sample_set.images[2].width = sample_set.images[2].height = None
    sample_set.images[1].boxes[0].category_id = 42
    (path,) = write_annotations(sample_set, "coco", tmp_path / "out")
    data = json.loads(path.read_text())
    assert data["images"][2]["width"] is None and len(data["annotations"]) == 2
    assert [e.action for e in entries(sample_set)] == ["skipped", "skipped"]
