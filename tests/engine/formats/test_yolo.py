"""YOLO: normalized centres against the displayed size, classes.txt, data.yaml, layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.data.formats import FormatError, read_annotations, write_annotations
from engine.data.formats.common import skipped_box_count
from engine.data.formats.yolo import parse_yaml_subset

from .conftest import box_table, entries, write_image


def dataset(root: Path, labels: dict[str, str], *, classes: str | None = "cat\ndog\n",
            size=(640, 480)) -> Path:
    """Label Studio's flat layout: classes.txt, images/<stem>.jpg, labels/<stem>.txt."""
    for stem, text in labels.items():
        write_image(root / "images" / f"{stem}.jpg", size)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{stem}.txt").write_bytes(text.encode())
    if classes is not None:
        (root / "classes.txt").write_bytes(classes.encode())
    return root


def test_a_full_image_box_on_640_by_480(tmp_path):
    annotations = read_annotations(dataset(tmp_path, {"a": "0 0.5 0.5 1 1\n"}), "yolo")
    box = annotations.images[0].boxes[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (0, 0, 640, 480)
    # 1 0.25 0.5 0.1 0.2 -> centre (160, 240), size 64 x 96 -> (128, 192, 192, 288).
    (tmp_path / "labels" / "a.txt").write_text("1 0.25 0.5 0.1 0.2")
    annotations = read_annotations(tmp_path, "yolo")
    box = annotations.images[0].boxes[0]
    assert (box.category_id, box.x0, box.y0, box.x1, box.y1) == (1, 128, 192, 192, 288)
    assert [(c.id, c.name) for c in annotations.categories] == [(0, "cat"), (1, "dog")]
    assert annotations.report == []


def test_the_real_label_studio_export(shared_data):
    annotations = read_annotations(shared_data / "label_studio_yolo")
    assert len(annotations.images) == 7 and annotations.box_count == 25
    assert [(c.id, c.name) for c in annotations.categories] == [
        (0, "closed_door"), (1, "opened_door"), (2, "bus"), (3, "number")]
    assert annotations.report == []
    assert {Path(i.path).suffix for i in annotations.images} == {".jpg", ".png", ".jpeg"}
    first = next(i for i in annotations.images if Path(i.path).name == "img_1.jpg")
    # "2 0.49765625 0.46200607902735563 0.9640625 0.8693009118541033" (CRLF) on 640 x 329.
    bus = first.boxes[0]
    assert (first.width, first.height) == (640, 329)
    assert bus.category_id == 2
    assert bus.x0 == pytest.approx((0.49765625 - 0.9640625 / 2) * 640)
    assert bus.y1 == pytest.approx((0.46200607902735563 + 0.8693009118541033 / 2) * 329)


def test_label_studio_round_trip_within_1e_6(shared_data, tmp_path):
    first = read_annotations(shared_data / "label_studio_yolo")
    write_annotations(first, "yolo", tmp_path / "out")
    source = shared_data / "label_studio_yolo" / "labels"
    for label in source.glob("*.txt"):
        written = (tmp_path / "out" / "labels" / label.name).read_text().splitlines()
        original = label.read_text().splitlines()
        assert len(written) == len(original)
        for a, b in zip(original, written):
            assert a.split()[0] == b.split()[0]
            assert [float(v) for v in a.split()[1:]] == pytest.approx(
                [float(v) for v in b.split()[1:]], abs=1e-6)
    second = read_annotations(tmp_path / "out")
    assert second.report == [] and second.box_count == 25
    assert [(c.id, c.name) for c in second.categories] == [
        (c.id, c.name) for c in first.categories]


def test_class_lines_trailing_blank_lines_and_an_interior_blank_line(tmp_path):
    folder = dataset(tmp_path, {"a": "2 0.5 0.5 0.5 0.5\r\n1 0.5 0.5 0.2 0.2\r\n"},
                     classes="cat\r\n\r\ndog\r\n\r\n\r\n")
    annotations = read_annotations(folder, "yolo")
    assert [(c.id, c.name) for c in annotations.categories] == [
        (0, "cat"), (1, "class_1"), (2, "dog")]
    assert [b.category_id for b in annotations.images[0].boxes] == [2, 1]
    notes = entries(annotations, "note")
    assert [(Path(e.file).name, e.item) for e in notes] == [("classes.txt", "line 2")]


def test_unknown_class_ids_and_malformed_lines_are_reported(tmp_path):
    folder = dataset(tmp_path, {"a": "\n".join([
        "5 0.5 0.5 0.1 0.1",  # no class 5
        "0 0.5 0.5",  # too few values
        "x 0.5 0.5 0.1 0.1",  # class not a number
        "0 nan 0.5 0.1 0.1",  # NaN
        "0 0.5 0.5 0 0.1",  # zero width
        "0 1.0 0.5 0.5 0.5",  # half outside: clipped
        "0 0.5 0.5 0.1 0.1 0.9",  # a confidence column
        "1 0.1 0.1 0.3 0.1 0.3 0.4",  # a segmentation polygon
        "",
    ])})
    annotations = read_annotations(folder, "yolo")
    report = [(e.item, e.action) for e in annotations.report]
    assert report == [("line 1", "skipped"), ("line 2", "skipped"), ("line 3", "skipped"),
                      ("line 4", "skipped"), ("line 5", "skipped"), ("line 6", "clipped"),
                      ("line 7", "note"), ("line 8", "note")]
    assert skipped_box_count(annotations.report) == 5
    boxes = annotations.images[0].boxes
    assert [(b.x0, b.x1) for b in boxes] == [(480, 640), (288, 352), (64, 192)]
    assert (boxes[2].y0, boxes[2].y1) == (48, 192)


def test_unreadable_and_zero_byte_images_keep_their_records_but_not_boxes(tmp_path):
    folder = dataset(tmp_path, {"a": "0 0.5 0.5 1 1\n"})
    (folder / "images" / "broken.jpg").write_bytes(b"")
    (folder / "labels" / "broken.txt").write_text("0 0.5 0.5 1 1\n1 0.5 0.5 0.5 0.5\n")
    (folder / "labels" / "orphan.txt").write_text("0 0.5 0.5 1 1\n")
    annotations = read_annotations(folder, "yolo")
    broken = next(i for i in annotations.images if Path(i.path).name == "broken.jpg")
    assert broken.boxes == [] and broken.width is None
    report = [(Path(e.file).name, e.action) for e in annotations.report]
    assert report == [("broken.jpg", "note"), ("broken.txt", "skipped"),
                      ("orphan.txt", "skipped")]
    assert "2 boxes skipped" in annotations.report[1].reason
    assert annotations.report[2].reason.startswith("1 box skipped: no image with this name")
    assert skipped_box_count(annotations.report) == 3


def test_mixed_case_suffixes_and_labels_beside_images(tmp_path):
    write_image(tmp_path / "A.JPG")
    write_image(tmp_path / "b.Png")
    write_image(tmp_path / "c.jpeg")
    write_image(tmp_path / "d.BMP")
    for stem in "Abcd":
        (tmp_path / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("thing\n")
    annotations = read_annotations(tmp_path)
    assert sorted(Path(i.path).name for i in annotations.images) == [
        "A.JPG", "b.Png", "c.jpeg", "d.BMP"]
    assert annotations.box_count == 4 and annotations.report == []


def test_ultralytics_layout_with_data_yaml_mapping_and_splits(tmp_path):
    for split, stem in (("train", "t1"), ("train", "t2"), ("val", "v1"), ("test", "x1")):
        write_image(tmp_path / "images" / split / f"{stem}.jpg", (100, 50))
        (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / split / f"{stem}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text(
        "# comment\npath: .\ntrain: images/train  # trailing comment\nval: images/val\n"
        "test: images/test\nnames:\n  0: person\n  1: 'traffic light'\n"
        "download: |\n  import os\n  names: [x]\n")
    annotations = read_annotations(tmp_path)
    assert [(c.id, c.name) for c in annotations.categories] == [
        (0, "person"), (1, "traffic light")]
    assert {Path(i.path).stem: i.split for i in annotations.images} == {
        "t1": "train", "t2": "train", "v1": "val", "x1": "test"}
    assert annotations.box_count == 4 and annotations.report == []
    # The YAML file itself reads the same.
    assert box_table(read_annotations(tmp_path / "data.yaml")) == box_table(annotations)


def test_roboflow_layout_with_parent_relative_paths_and_a_names_list(tmp_path):
    for split in ("train", "valid"):
        write_image(tmp_path / split / "images" / f"{split}.jpg")
        (tmp_path / split / "labels").mkdir(parents=True)
        (tmp_path / split / "labels" / f"{split}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\n\nnc: 2\nnames: ['a', \"b, c\"]\n")
    annotations = read_annotations(tmp_path)
    assert [c.name for c in annotations.categories] == ["a", "b, c"]
    assert {Path(i.path).stem: i.split for i in annotations.images} == {
        "train": "train", "valid": "val"}
    assert annotations.box_count == 2


def test_yaml_subset():
    text = ("path: C:\\data\\set\nnames: [a, 'b''s', \"c: d\",\n  e]\ntrain:\n  - x\n  - y\n"
            "nc: 4\nmap: {0: zero, 1: one}\nempty:\n")
    assert parse_yaml_subset(text) == {
        "path": "C:\\data\\set", "names": ["a", "b's", "c: d", "e"], "train": ["x", "y"],
        "nc": 4, "map": {0: "zero", 1: "one"}, "empty": None}
    # Malformed flow collections end (with whatever could be read) instead of looping.
    assert parse_yaml_subset("names: [a}\n")["names"][0] == "a"


def test_writer_layout_with_splits(tmp_path, sample_set):
    written = write_annotations(sample_set, "yolo", tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "data.yaml").read_text(encoding="utf-8") == (
        "# Ultralytics YOLO dataset written by Faster R-CNN Workbench\n"
        f'path: "{out}"\ntrain: images/train\nval: images/val\n'
        'names:\n  0: "cat"\n  1: "dog"\n')
    # The image without a split goes to train; it has no boxes, so an empty label file.
    assert (out / "labels" / "train" / "empty.txt").read_text() == ""
    assert (out / "images" / "train" / "café photo 1.jpg").is_file()
    # (0, 0, 10, 20) on 64 x 48 -> centre (5, 10), size (10, 20), category 1 -> id 0.
    first_line = (out / "labels" / "train" / "café photo 1.txt").read_text().splitlines()[0]
    assert first_line == "0 0.078125 0.208333333 0.15625 0.416666667"
    assert len(written) == 7  # 3 images, 3 label files, data.yaml
    back = read_annotations(out)
    assert {Path(i.path).name: i.split for i in back.images} == {
        "café photo 1.jpg": "train", "b.png": "val", "empty.jpg": "train"}
    for name, rows in box_table(sample_set).items():
        again = box_table(back)[name]
        assert [r[0] for r in again] == [r[0] for r in rows]
        assert [r[1:5] for r in again] == [pytest.approx(r[1:5], abs=1e-6) for r in rows]


def test_writer_without_splits_uses_the_flat_layout(tmp_path, sample_set):
    for image in sample_set.images:
        image.split = None
    write_annotations(sample_set, "yolo", tmp_path / "out", images="link")
    out = tmp_path / "out"
    assert "train: images\nval: images\n" in (out / "data.yaml").read_text()
    assert (out / "images" / "b.png").stat().st_nlink == 2
    back = read_annotations(out)
    assert [i.split for i in back.images] == [None, None, None]
    assert back.box_count == 3


def test_writer_reports_boxes_of_images_without_a_size(tmp_path, sample_set):
    sample_set.images[1].path = tmp_path / "gone.png"
    sample_set.images[1].width = sample_set.images[1].height = None
    written = write_annotations(sample_set, "yolo", tmp_path / "out")
    assert not (tmp_path / "out" / "labels" / "val" / "gone.txt").exists()
    assert all(p.exists() for p in written)
    # The image is not written (no file), nor are its boxes (no size to normalise them by).
    assert [(e.action, e.item) for e in sample_set.report] == [
        ("missing", str(tmp_path / "gone.png")), ("skipped", str(tmp_path / "gone.png"))]


def test_a_folder_without_images_raises(tmp_path):
    (tmp_path / "classes.txt").write_text("a\n")
    with pytest.raises(FormatError, match="no images found"):
        read_annotations(tmp_path, "yolo")


def test_labels_without_class_names_get_numbered_classes(tmp_path, shared_data):
    shutil.copytree(shared_data / "label_studio_yolo", tmp_path / "ls")
    (tmp_path / "ls" / "classes.txt").unlink()
    annotations = read_annotations(tmp_path / "ls")
    assert [c.name for c in annotations.categories] == [
        "class_0", "class_1", "class_2", "class_3"]
    assert [e.action for e in annotations.report] == ["note"]
