"""PIL images to Qt images, the one conversion every view uses."""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QImage, QPixmap


def pil_to_qimage(image: Image.Image) -> QImage:
    """An RGB (or RGBA) PIL image -> a QImage that owns its pixels (safe across threads).

    Other modes are converted to RGB first; the engine's ``load_image`` already returns RGB.
    """
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    data = image.tobytes("raw", image.mode)
    fmt = QImage.Format.Format_RGB888 if image.mode == "RGB" else QImage.Format.Format_RGBA8888
    channels = 3 if image.mode == "RGB" else 4
    # QImage borrows ``data``; copy() gives it its own buffer before ``data`` goes away.
    return QImage(data, image.width, image.height, channels * image.width, fmt).copy()


def pil_to_qpixmap(image: Image.Image) -> QPixmap:
    """For the GUI thread only (QPixmap lives in the windowing system)."""
    return QPixmap.fromImage(pil_to_qimage(image))
