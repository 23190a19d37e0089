"""An export names every image it could not write: a label file with no image beside it is
never left unsaid."""

from __future__ import annotations

import pytest
from PIL import Image

from engine.cli import main
from engine.data.annotations import BoxRecord
from engine.data.exporting import export_annotations
from engine.data.project import Project


@pytest.fixture
def half_missing(tmp_path):
    """A project with two labelled images in train; the file of the second is gone."""
    folder = tmp_path / "p"
    with Project.create(folder) as project:
        category = project.add_category("thing").id
        for name in ("here.png", "gone.png"):
            Image.new("RGB", (40, 30), "white").save(folder / name)
        ids = project.add_images([folder / "here.png", folder / "gone.png"], split="train",
                                 status="done").added
        for image_id in ids:
            project.add_boxes(image_id, [BoxRecord(1, 2, 11, 12, category, source="manual")])
    (folder / "gone.png").unlink()
    return folder


@pytest.mark.parametrize("format", ["voc", "yolo"])
def test_an_image_whose_file_is_missing_is_reported_and_its_boxes_still_written(
        half_missing, tmp_path, format):
    out = tmp_path / format
    written, report = export_annotations(half_missing, format, out)
    names = sorted(path.name for path in written)
    assert "here.png" in names and "gone.png" not in names
    assert any(name.startswith("gone.") for name in names)  # its label file, with its box
    missing = [entry for entry in report if "gone.png" in entry.item]
    assert len(missing) == 1
    assert missing[0].action == "missing"
    assert "image not written" in missing[0].reason and "no image file" in missing[0].reason
    # Leaving the images out on purpose is not a problem worth a report line.
    _, quiet = export_annotations(half_missing, format, tmp_path / f"{format}-labels-only",
                                  images="none")
    assert not [entry for entry in quiet if "image not written" in entry.reason]


def test_the_cli_prints_the_images_it_did_not_write(half_missing, tmp_path, capsys):
    assert main(["export-annotations", "--project", str(half_missing), "--format", "yolo",
                 "--out", str(tmp_path / "y")]) == 0
    out = capsys.readouterr().out
    assert "gone.png" in out and "image not written" in out
