"""Format auto-detection of every layout, and what read_annotations does with it."""

from __future__ import annotations

import json

import pytest

from engine.data.formats import FORMATS, FormatError, detect_format, read_annotations

from .conftest import write_image


def test_the_real_layouts(shared_data):
    assert detect_format(shared_data / "raccoon") == "voc"
    assert detect_format(shared_data / "raccoon" / "annotations") == "voc"
    assert detect_format(shared_data / "raccoon" / "annotations" / "raccoon-1.xml") == "voc"
    assert detect_format(shared_data / "label_studio_yolo") == "yolo"
    assert detect_format(shared_data / "label_studio_yolo" / "classes.txt") == "yolo"


def test_every_written_layout_is_detected(tmp_path, sample_set):
    from engine.data.formats import write_annotations

    for name in FORMATS:
        write_annotations(sample_set, name, tmp_path / name)
        assert detect_format(tmp_path / name) == name
        assert read_annotations(tmp_path / name).box_count == 3
    assert detect_format(tmp_path / "coco" / "annotations.json") == "coco"
    assert detect_format(tmp_path / "labelme" / "b.json") == "labelme"
    assert detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"
    assert detect_format(tmp_path / "voc" / "Annotations") == "voc"


def test_other_layouts(tmp_path):
    # Ultralytics without data.yaml or classes.txt: labels/ with label lines.
    ultra = tmp_path / "ultra"
    write_image(ultra / "images" / "train" / "a.jpg")
    (ultra / "labels" / "train").mkdir(parents=True)
    (ultra / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\r\n")
    assert detect_format(ultra) == "yolo"
    # Darknet style: label files beside the images.
    darknet = tmp_path / "darknet"
    write_image(darknet / "a.jpg")
    (darknet / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert detect_format(darknet) == "yolo"
    # COCO in an annotations/ sub-folder (CVAT's export).
    cvat = tmp_path / "cvat"
    (cvat / "annotations").mkdir(parents=True)
    (cvat / "annotations" / "instances_default.json").write_text(
        json.dumps({"licenses": [], "info": {}, "categories": [], "images": []}))
    assert detect_format(cvat) == "coco"


def test_nothing_recognizable_or_ambiguous_raises(tmp_path):
    write_image(tmp_path / "only" / "a.jpg")
    (tmp_path / "only" / "notes.txt").write_text("hello\n")
    with pytest.raises(FormatError, match="no recognizable annotations") as raised:
        detect_format(tmp_path / "only")
    assert raised.value.file == str(tmp_path / "only")
    both = tmp_path / "both"
    both.mkdir()
    (both / "a.xml").write_text("<annotation><filename>a.jpg</filename></annotation>")
    (both / "c.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(FormatError, match="ambiguous: it looks like coco and voc"):
        read_annotations(both)
    assert read_annotations(both, "voc").images[0].path == both / "a.jpg"
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(FormatError, match="no recognizable"):
        detect_format(tmp_path / "x.txt")
    with pytest.raises(FormatError, match="no such file"):
        read_annotations(tmp_path / "nowhere")
    with pytest.raises(FormatError, match="unknown format 'csv'"):
        read_annotations(both, "csv")


def test_write_annotations_refuses_unknown_formats_splits_and_image_modes(tmp_path, sample_set):
    from engine.data.formats import write_annotations

    with pytest.raises(ValueError, match="unknown format 'csv'"):
        write_annotations(sample_set, "csv", tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        write_annotations(sample_set, "coco", tmp_path, split="training")
    with pytest.raises(ValueError, match="images must be one of"):
        write_annotations(sample_set, "yolo", tmp_path, images="move")
    assert list(tmp_path.iterdir()) == [tmp_path / "source"]
