"""Thumbnails: what load_image shows, smaller, decoded at reduced size where the format allows."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from engine.data.images import ImageLoadError, load_image, load_thumbnail


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def test_exif_examples_keep_the_displayed_orientation(shared_data):
    """18 photos with EXIF orientations 0-8: the thumbnail is the displayed picture, small."""
    files = sorted((shared_data / "exif_orientation").glob("*.jpg"))
    assert len(files) == 18
    for path in files:
        full = load_image(path)
        thumbnail = load_thumbnail(path, 120)
        assert thumbnail.mode == "RGB" and max(thumbnail.size) == 120
        assert thumbnail.width / thumbnail.height == pytest.approx(full.width / full.height,
                                                                   rel=0.02)
        reference = full.resize(thumbnail.size, Image.Resampling.BOX)
        # Same picture: a few grey levels apart on average (JPEG's reduced decoding and
        # a different filter); the picture upside down is tens of levels away.
        assert _mean_difference(thumbnail, reference) < 4, path.name
        upside_down = reference.transpose(Image.Transpose.ROTATE_180)
        assert _mean_difference(thumbnail, upside_down) > 20, path.name


@pytest.mark.parametrize("orientation", [1, 6])
def test_large_jpeg_thumbnail_matches_the_downscaled_image(tmp_path, orientation):
    # A smooth picture with detail at every scale, 1600x1200 stored.
    ys, xs = np.mgrid[0:1200, 0:1600].astype(np.float64)
    pixels = np.stack([xs / 1600 * 255, ys / 1200 * 255,
                       127 + 100 * np.sin(xs / 37) * np.cos(ys / 23)], axis=-1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90, exif=exif)
    thumbnail = load_thumbnail(path, 200)
    expected_size = (200, 150) if orientation == 1 else (150, 200)
    assert thumbnail.size == expected_size
    reference = load_image(path).resize(expected_size, Image.Resampling.BOX)
    assert _mean_difference(thumbnail, reference) < 3


def test_small_and_non_jpeg_images_are_converted_never_enlarged(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGBA", (30, 20), (255, 0, 0, 0)).save(path)
    thumbnail = load_thumbnail(path, 64)
    assert thumbnail.mode == "RGB" and thumbnail.size == (30, 20)
    assert thumbnail.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, as loading
    wide = tmp_path / "wide.png"
    Image.new("L", (500, 100), 90).save(wide)
    assert load_thumbnail(wide, 64).size == (64, 13)


def test_broken_and_missing_files_raise_image_load_error(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (400, 300), (10, 200, 30)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (truncated, text, tmp_path / "gone.jpg"):
        with pytest.raises(ImageLoadError, match=re.escape(path.name)):
            load_thumbnail(path, 64)
    with pytest.raises(ValueError, match="max_side"):
        load_thumbnail(good, 0)
