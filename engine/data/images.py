"""Loading images: the one function every other module calls.

What a viewer shows is what we use: EXIF orientation is applied, so box coordinates refer to
the displayed image. Palette, grayscale, alpha, CMYK and 16-bit images become 8-bit RGB.
Decompression bombs (beyond Pillow's limit, about 179 megapixels) are refused with a clear
error instead of exhausting memory. :func:`load_thumbnail` is the same image, small, decoded
at reduced size where the format allows (JPEG): for lists and quick previews.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .store_files import StoreFileError, refuse_store_file


class ImageLoadError(ValueError):
    """An image file that cannot be used, with the path and the reason."""


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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if reduce_to is not None and opened.format == "JPEG":
                    opened.draft(None, _draft_size(opened.size, reduce_to))
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except FileNotFoundError as error:
        raise ImageLoadError(f"{path}: file not found") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageLoadError(
            f"{path}: refused, too many pixels for a photo (a possible decompression bomb): {error}"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
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
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16- or 32-bit grayscale: scale the full range down to 8 bits.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size and array.max() > 0 else 1.0
        return Image.fromarray((array / peak * 255).round().astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


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
        raise ImageLoadError(f"{path}: file not found") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageLoadError(
            f"{path}: refused, too many pixels for a photo (a possible decompression bomb): {error}"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
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
