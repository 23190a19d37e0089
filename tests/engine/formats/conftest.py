"""Helpers for the format tests: tiny images written with Pillow, records to write."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.data.annotations import AnnotationSet, BoxRecord, Category, ImageRecord


def write_image(path: Path, size: tuple[int, int] = (64, 48), *, orientation: int | None = None,
                color: tuple[int, int, int] = (40, 90, 160)) -> Path:
    """A small solid image at ``path`` (format from the suffix), optionally with an EXIF
    orientation tag (JPEG only). ``size`` is the stored width, height."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    if orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif)
    return path


@pytest.fixture
def sample_set(tmp_path: Path) -> AnnotationSet:
    """Three images (two splits and none) with integral and fractional boxes, 2 categories."""
    images = tmp_path / "source"
    first = write_image(images / "café photo 1.jpg", (64, 48))
    second = write_image(images / "b.png", (40, 30))
    third = write_image(images / "empty.jpg", (20, 20))
    return AnnotationSet(
        categories=[Category(1, "cat"), Category(2, "dog")],
        images=[
            ImageRecord(first, 64, 48, [
                BoxRecord(0, 0, 10, 20, 1),
                BoxRecord(5.5, 6.25, 30.75, 40, 2, difficult=True, truncated=True)],
                split="train", status="done"),
            ImageRecord(second, 40, 30, [BoxRecord(1, 2, 40, 30, 2)], split="val"),
            ImageRecord(third, 20, 20, [], split=None),
        ],
        root=tmp_path)


def box_table(annotations: AnnotationSet) -> dict[str, list[tuple]]:
    """Image file name -> sorted (category name, x0, y0, x1, y1, difficult, truncated) rows:
    what a round trip must keep, independent of ids and paths."""
    names = annotations.category_names()
    return {Path(image.path).name: sorted(
        (names[b.category_id], b.x0, b.y0, b.x1, b.y1, b.difficult, b.truncated)
        for b in image.boxes) for image in annotations.images}


def entries(annotations: AnnotationSet, action: str | None = None) -> list:
    return [e for e in annotations.report if action is None or e.action == action]
