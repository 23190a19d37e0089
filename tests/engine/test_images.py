"""The one image loader: displayed orientation, any mode to RGB, bombs refused; header sizes
agree with what loading shows."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from engine.data.images import ImageLoadError, image_size, load_image


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("suffix", ["png", "jpg"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_header_size_is_the_displayed_size(tmp_path, suffix, orientation):
    path = tmp_path / f"photo.{suffix}"
    Image.new("RGB", (64, 32), (200, 10, 10)).save(path, exif=_exif(orientation))
    width, height, found = image_size(path)
    assert found == orientation
    assert (width, height) == load_image(path).size
    assert (width, height) == ((32, 64) if orientation in (6, 8) else (64, 32))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_every_mode_loads_as_rgb(tmp_path, mode):
    path = tmp_path / ("image.tiff" if mode in ("CMYK", "I;16") else "image.png")
    pixels = np.full((8, 12), 1000 if mode == "I;16" else 100, dtype=np.uint16 if mode == "I;16"
                     else np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (12, 8)


def test_unreadable_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    Image.new("RGB", (40, 40)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    for path in (empty, truncated, tmp_path / "missing.jpg"):
        with pytest.raises(ImageLoadError, match=re.escape(path.name)):
            load_image(path)
    with pytest.raises(ImageLoadError, match=re.escape("empty.jpg")):
        image_size(empty)


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    monkeypatch.setenv("FRCNN_MAX_IMAGE_PIXELS", "1000")
    path = tmp_path / "bomb.png"
    Image.new("L", (100, 100)).save(path)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        image_size(path)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)
