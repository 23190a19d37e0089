"""Fixtures for the project store's tests: tiny real image files and a fresh project."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.data.project import Project


def write_image(path: Path, width: int = 64, height: int = 48, shade: int = 0,
                orientation: int | None = None) -> Path:
    """A small image file whose bytes differ with ``shade`` (so its hash does too).

    ``orientation`` stores an EXIF orientation tag (JPEG only), which turns the displayed size.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Colours far apart, so that even JPEG's rounding keeps the files different.
    image = Image.new("RGB", (width, height),
                      ((shade * 53) % 256, (shade * 101) % 256, (shade * 29 + 7) % 256))
    image.putpixel((shade % width, (shade // width) % height), (255, 255, 255))
    if orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif)
    return path


@pytest.fixture
def project(tmp_path) -> Project:
    with Project.create(tmp_path / "project") as opened:
        yield opened


def table_dump(project: Project) -> dict[str, list[tuple]]:
    """Every row of every table (and the id sequence), to compare whole states."""
    db = project.connection
    return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("categories", "images", "boxes", "sqlite_sequence")}
