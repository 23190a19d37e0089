"""Float and signed-integer images decode to what they show, and the decompression-bomb limit
can be raised by the user (the refusal says how)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.data.images import ImageLoadError, image_size, load_image


def _values(path) -> list[int]:
    return sorted(set(np.asarray(load_image(path))[..., 0].ravel().tolist()))


def test_a_float_tiff_in_0_to_1_is_scaled_not_black(tmp_path):
    array = np.full((8, 10), 0.2, dtype=np.float32)
    array[2:5, 3:7] = 0.9
    Image.fromarray(array, mode="F").save(tmp_path / "float.tif")
    assert _values(tmp_path / "float.tif") == [51, 229]  # float32 0.9 is 0.89999998


def test_a_signed_int32_tiff_with_a_negative_background_does_not_wrap(tmp_path):
    array = np.full((8, 10), -500, dtype=np.int32)
    array[2:5, 3:7] = 1000
    Image.fromarray(array).save(tmp_path / "signed.tif")
    with Image.open(tmp_path / "signed.tif") as opened:
        assert opened.mode.startswith("I")
    # -500 is the darkest value: black; 1000 the brightest: white (not 214, a wrapped -500).
    assert _values(tmp_path / "signed.tif") == [0, 255]


def test_a_float_image_with_nan_and_large_values_stays_in_range(tmp_path):
    array = np.array([[np.nan, 0.0, 50.0, 100.0]], dtype=np.float32).repeat(4, axis=0)
    Image.fromarray(array, mode="F").save(tmp_path / "f.tif")
    assert _values(tmp_path / "f.tif") == [0, 128, 255]


def test_the_pixel_limit_is_kept_and_the_refusal_says_how_to_raise_it(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    Image.new("RGB", (40, 30)).save(path)  # 1200 pixels
    monkeypatch.setenv("FRCNN_MAX_IMAGE_PIXELS", "1000")
    for read in (load_image, image_size):
        with pytest.raises(ImageLoadError) as error:
            read(path)
        message = str(error.value)
        assert str(path) in message and "1,200 pixels" in message and "1,000" in message
        assert "FRCNN_MAX_IMAGE_PIXELS=1000000" in message and "--max-image-pixels" in message
    monkeypatch.setenv("FRCNN_MAX_IMAGE_PIXELS", "1200")
    assert load_image(path).size == (40, 30)
    monkeypatch.setenv("FRCNN_MAX_IMAGE_PIXELS", "none")
    assert image_size(path)[:2] == (40, 30)
    monkeypatch.setenv("FRCNN_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="FRCNN_MAX_IMAGE_PIXELS='lots'"):
        load_image(path)


def test_the_cli_option_raises_the_limit_for_the_command(tmp_path, monkeypatch, capsys):
    path = tmp_path / "photo.png"
    Image.new("RGB", (40, 30)).save(path)
    monkeypatch.setenv("FRCNN_MAX_IMAGE_PIXELS", "1000")
    assert main(["add-images", str(path), "--project", str(tmp_path / "a")]) == 0
    assert "1 left out" in capsys.readouterr().out
    assert main(["--max-image-pixels", "2000", "add-images", str(path),
                 "--project", str(tmp_path / "b")]) == 0
    assert "added 1 image " in capsys.readouterr().out
