"""Loading images: the one function every other module calls.

What a viewer shows is what we use: EXIF orientation is applied, so box coordinates refer to
the displayed image. Palette, grayscale, alpha, CMYK, 16- and 32-bit integer and 32-bit float
images become 8-bit RGB (see :func:`to_rgb` for how their values map to 0..255).

Possible decompression bombs (a small file that decodes to gigabytes) are refused with a clear
error instead of exhausting memory: images of more than :func:`max_image_pixels` pixels
(Pillow's default, 89,478,485, about 89 megapixels). Real cameras make larger photos (a
102-megapixel 11648 x 8736 one); the user raises the limit with the environment variable
``FRCNN_MAX_IMAGE_PIXELS`` (a number, or ``none`` for no limit; child processes such as the
training worker inherit it), which ``frcnn --max-image-pixels`` and
:func:`set_max_image_pixels` set. The refusal says how.

:func:`load_thumbnail` is the same image, small, decoded at reduced size where the format
allows (JPEG): for lists and quick previews.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .paths import unreachable_reason
from .store_files import StoreFileError, refuse_store_file


class ImageLoadError(ValueError):
    """An image file that cannot be used, with the path and the reason."""


MAX_PIXELS_VARIABLE = "FRCNN_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default (Image.MAX_IMAGE_PIXELS)


def max_image_pixels() -> int | None:
    """The most pixels an image may have (None: no limit): ``FRCNN_MAX_IMAGE_PIXELS`` when set
    (a positive number, or "none"), else :data:`DEFAULT_MAX_IMAGE_PIXELS`. ValueError for a
    value that is neither."""
    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{MAX_PIXELS_VARIABLE}={text!r}: give a number of pixels (e.g. "
                         f"120000000) or none")
    return int(text)


def set_max_image_pixels(limit: int | None) -> None:
    """Set the limit for this process and the processes it starts (through the environment);
    None removes it."""
    if limit is not None and limit <= 0:
        raise ValueError(f"the image pixel limit must be positive, not {limit}")
    os.environ[MAX_PIXELS_VARIABLE] = "none" if limit is None else str(int(limit))


def _bomb_error(path: Path, error: Exception) -> ImageLoadError:
    limit = max_image_pixels()
    match = re.search(r"\((\d+) pixels\)", str(error))
    pixels = int(match.group(1)) if match else None
    size = f"{pixels:,} pixels" if pixels else "too many pixels"
    # This image's pixels rounded up to whole megapixels (twice the limit when unknown).
    suggest = -(-(pixels or 2 * (limit or 1)) // 1_000_000) * 1_000_000
    return ImageLoadError(
        f"{path}: refused, {size} is more than the limit of {limit:,} (a protection against "
        f"decompression bombs: small files that decode to gigabytes). If you trust this image, "
        f"raise the limit: set the environment variable {MAX_PIXELS_VARIABLE}={suggest} (or "
        f"run frcnn --max-image-pixels {suggest} ...)")


def _apply_pixel_limit() -> None:
    """Pillow warns above ``MAX_IMAGE_PIXELS`` (we make that an error) and fails above twice."""
    Image.MAX_IMAGE_PIXELS = max_image_pixels()


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` as displayed (EXIF-rotated), in 8-bit RGB."""
    return _decode(Path(path))


def load_thumbnail(path: str | os.PathLike, max_side: int) -> Image.Image:
    """The image at ``path`` as :func:`load_image` shows it, at most ``max_side`` pixels on
    its long side (never enlarged), in 8-bit RGB.

    Fast on large JPEGs: the decoder reduces by 1/2, 1/4 or 1/8 while decoding (to no less
    than the final size), so a 12-megapixel photo is decoded at about the size asked for; the
    orientation and a final resize follow. Other formats decode whole, then shrink. Refuses
    what :func:`load_image` refuses, with the same :class:`ImageLoadError`.
    """
    if max_side < 1:
        raise ValueError(f"a thumbnail needs max_side >= 1, not {max_side}")
    image = _decode(Path(path), reduce_to=max_side)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return image


def _decode(path: Path, *, reduce_to: int | None = None) -> Image.Image:
    """Open, check, decode, apply the EXIF orientation and convert to RGB: what both loaders
    share. ``reduce_to``: let a JPEG decoder shrink the image while decoding, keeping its long
    side at least this many pixels."""
    _refuse_store_file(path)
    _apply_pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if reduce_to is not None and opened.format == "JPEG":
                    opened.draft(None, _draft_size(opened.size, reduce_to))
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except FileNotFoundError as error:
        reason = unreachable_reason(path, missing="file not found")
        raise ImageLoadError(f"{path}: {reason or 'file not found'}") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _bomb_error(path, error) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        if isinstance(error, OSError) and error.errno == errno.ELOOP:
            raise ImageLoadError(f"{path}: {unreachable_reason(path)}") from error
        raise ImageLoadError(f"{path}: not a readable image ({error})") from error
    return to_rgb(image)


def _draft_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The stored ``(width, height)`` scaled so its long side is ``max_side``: the smallest
    size a JPEG draft may decode to (draft keeps both sides at least this large). Stored, not
    displayed, orientation: the long side is the same either way."""
    scale = min(1.0, max_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparent areas become white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return Image.fromarray(_gray_to_8_bits(image)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _gray_to_8_bits(image: Image.Image) -> np.ndarray:
    """A 16- or 32-bit integer or 32-bit float grayscale image as 8-bit values.

    - float images whose values lie in [0, 1] (the usual float convention): times 255;
    - values that are all >= 0: divided by the largest (so the brightest pixel is 255 and 0
      stays black: 16-bit scans that use only part of their range stay visible);
    - signed values below 0 (an int32 or float image with a -500 background): the range from
      the smallest to the largest value is stretched to 0..255, never wrapped around.

    NaN and infinite values (float images) count as 0.
    """
    array = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(array)
    array = np.where(finite, array, 0.0)
    low, high = (array.min(), array.max()) if array.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0 and high <= 1:
        scaled = array * 255
    elif low >= 0:
        scaled = array / (high if high > 0 else 1.0) * 255
    else:
        scaled = (array - low) / (high - low if high > low else 1.0) * 255
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> (3, H, W) float32 tensor in [0, 1], the detector's input."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)


def load_image_tensor(path: str | os.PathLike) -> torch.Tensor:
    """:func:`load_image` then :func:`image_to_tensor`."""
    return image_to_tensor(load_image(path))


# EXIF orientations 5-8 store the image transposed: the displayed width is the stored height.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
def _refuse_store_file(path: Path) -> None:
    """A project's database is never opened as an image: closing it would drop this
    process's SQLite locks on it (see :mod:`engine.data.store_files`)."""
    try:
        refuse_store_file(path, "an image")
    except StoreFileError as error:
        raise ImageLoadError(str(error)) from None


_EXIF_ORIENTATION_TAG = 0x0112


def image_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(width, height, orientation)`` of the image as displayed, reading only the header.

    ``orientation`` is the EXIF orientation tag (1 when absent or invalid, e.g. 0); for
    orientations 5-8 the displayed width is the stored height. Raises :class:`ImageLoadError`
    for anything :func:`load_image` would refuse that the header already reveals.
    """
    path = Path(path)
    _refuse_store_file(path)
    _apply_pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                Image._decompression_bomb_check(opened.size)
                if opened.format == "PNG":
                    # Pillow finds a PNG's EXIF only by decoding every pixel; walk the chunks.
                    orientation = _png_orientation(path)
                else:
                    orientation = opened.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except FileNotFoundError as error:
        reason = unreachable_reason(path, missing="file not found")
        raise ImageLoadError(f"{path}: {reason or 'file not found'}") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _bomb_error(path, error) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        if isinstance(error, OSError) and error.errno == errno.ELOOP:
            raise ImageLoadError(f"{path}: {unreachable_reason(path)}") from error
        raise ImageLoadError(f"{path}: not a readable image ({error})") from error
    if orientation not in range(1, 9):
        orientation = 1
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return width, height, orientation


def _png_orientation(path: Path) -> int:
    """The EXIF orientation in a PNG's eXIf chunk (1 when there is none), reading only the
    chunk headers: what ``getexif()`` gives after decoding, at the cost of a few seeks."""
    with open(path, "rb") as stream:
        stream.seek(8)  # the PNG signature
        while header := stream.read(8):
            if len(header) < 8:
                break
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"eXIf":
                exif = Image.Exif()
                exif.load(stream.read(length))
                return exif.get(_EXIF_ORIENTATION_TAG, 1)
            if kind == b"IEND":
                break
            stream.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return 1


def file_hash(path: str | os.PathLike) -> str:
    """Hex BLAKE2b-128 of the file's bytes: finds the same image under another name or place."""
    _refuse_store_file(Path(path))
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
