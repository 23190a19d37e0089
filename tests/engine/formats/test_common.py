"""The shared box rules, EXIF turns and helpers, with values checkable by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.data.annotations import ImageRecord
from engine.data.formats.common import (
    FolderIndex,
    UniqueNames,
    add_box,
    format_number,
    path_parts,
    raw_to_displayed,
    split_from_name,
)


def _add(box, width=100, height=50):
    record = ImageRecord("x.jpg", width, height)
    report = []
    added = add_box(record, box, 1, file="f", item="i", report=report)
    return added, report


def test_a_box_inside_the_image_is_kept_unchanged_and_unreported():
    added, report = _add((0, 0, 100, 50))
    assert (added.x0, added.y0, added.x1, added.y1) == (0, 0, 100, 50)
    assert report == []


def test_a_box_partly_outside_is_clipped_and_reported():
    added, report = _add((-5, 10, 120, 60))
    assert (added.x0, added.y0, added.x1, added.y1) == (0, 10, 100, 50)
    assert [(e.action, e.item) for e in report] == [("clipped", "i")]
    assert "(-5, 10, 120, 60)" in report[0].reason


def test_float_noise_beyond_the_edge_is_clipped_silently():
    added, report = _add((0, 0, 100.0000000001, 50))
    assert added.x1 == 100 and report == []


@pytest.mark.parametrize("box, why", [
    ((math.nan, 0, 10, 10), "not finite"),
    ((0, 0, math.inf, 10), "not finite"),
    (("a", 0, 10, 10), "not finite"),
    ((10, 0, 10, 10), "zero or negative"),
    ((10, 0, 5, 10), "zero or negative"),
    ((100, 0, 120, 10), "entirely outside"),
    ((-20, -20, 0, 0), "entirely outside"),
])
def test_bad_boxes_are_skipped_with_the_reason(box, why):
    added, report = _add(box)
    assert added is None
    assert [e.action for e in report] == ["skipped"] and why in report[0].reason


def test_without_a_known_size_only_negative_coordinates_are_clipped():
    record = ImageRecord("x.jpg")
    report = []
    added = add_box(record, (-1, 2, 5000, 6000), 1, file="f", item="i", report=report)
    assert (added.x0, added.y0, added.x1, added.y1) == (0, 2, 5000, 6000)
    assert [e.action for e in report] == ["clipped"]


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_raw_pixel_boxes_turn_like_pillows_exif_transpose(orientation):
    # A 7 x 4 stored image with the box (1, 0, 3, 1) painted; after exif_transpose the painted
    # pixels must be exactly the turned box.
    pixels = np.zeros((4, 7), np.uint8)
    pixels[0:1, 1:3] = 255
    stored = Image.fromarray(pixels)
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    shown = np.asarray(ImageOps.exif_transpose(stored))
    ys, xs = np.nonzero(shown)
    expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert raw_to_displayed((1, 0, 3, 1), orientation, (7, 4)) == expected


def test_numbers_are_written_as_integers_when_integral_and_without_float_noise():
    assert format_number(81.0) == "81"
    assert format_number(81.3 - 1 + 1) == "81.3"
    assert format_number(0.49765625) == "0.49765625"
    assert format_number(-0.0) == "0"


def test_split_names_and_path_parts():
    assert split_from_name("instances_val2017") == "val"
    assert split_from_name("instances_default") is None
    assert split_from_name("valid") == "val"
    assert path_parts("images/\\abc.jpg") == ["images", "abc.jpg"]
    assert path_parts("..\\imgs\\x y.jpg") == ["..", "imgs", "x y.jpg"]


def test_folder_index_finds_names_in_any_case_and_images_by_stem(tmp_path):
    (tmp_path / "Photo.JPG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    index = FolderIndex()
    assert index.find(tmp_path, "photo.jpg") == tmp_path / "Photo.JPG"
    assert index.find_image_by_stem(tmp_path, "Photo") == tmp_path / "Photo.JPG"
    assert index.find_image_by_stem(tmp_path, "notes") is None


def test_unique_names_ignore_case():
    names = UniqueNames()
    assert [names.take(s) for s in ("a", "A", "a", "b")] == ["a", "A_2", "a_3", "b"]


def test_relative_names_for_images_inside_or_beside_the_folder_only(tmp_path):
    from engine.data.formats.common import relative_name

    out = tmp_path / "export"
    assert relative_name(out / "images" / "a b.jpg", out) == "images/a b.jpg"
    assert relative_name(tmp_path / "images" / "a.jpg", out) == "../images/a.jpg"
    far = tmp_path.parent / "elsewhere" / "a.jpg"
    assert relative_name(far, out / "deeper") == far.as_posix()
