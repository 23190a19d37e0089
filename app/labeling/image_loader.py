"""Loading the canvas's images off the GUI thread: a quick preview first, then the full image,
with the neighbours prefetched so that stepping through a folder is instant.

For a 12-megapixel JPEG a full decode takes a few hundred milliseconds; a preview decoded at
reduced size (:func:`engine.data.images.load_thumbnail`) takes a few tens, so the canvas shows
something at once and sharpens when the full image arrives. Each loaded image comes as a
:class:`LoadedImage`: the pixels at full resolution plus smaller copies (halving down to
:data:`SMALLEST_LEVEL`), so the canvas can draw a zoomed-out view from a copy near the screen's
size instead of scaling 12 megapixels on every repaint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QImage

from engine.data.images import ImageLoadError, load_image, load_thumbnail

from ..qt_images import pil_to_qimage
from ..workers import Task, TaskRunner

# JPEGs decode at 1/4 scale for this (a 4000x3000 photo: 1000x750), a quarter of the work
# of 1/2; enough for a first look at a typical canvas, sharpened when the full image comes.
PREVIEW_SIDE = 960
SMALLEST_LEVEL = 512
# Full images kept decoded: the current one, both neighbours and the one before (about 36 MB
# each for 12 megapixels).
CACHE_SIZE = 4


@dataclass(frozen=True)
class LoadedImage:
    """An image ready to draw. ``levels[0]`` is the largest copy (the full image, or the
    preview when ``full`` is False); each next one is half the size. ``size`` is the image's
    displayed size in pixels, the space its boxes live in, whatever copy is at hand."""

    path: Path
    size: tuple[int, int]
    levels: tuple[QImage, ...]
    full: bool


def build_levels(image: QImage) -> tuple[QImage, ...]:
    """``image`` and its halvings down to about :data:`SMALLEST_LEVEL` on the long side."""
    levels = [image]
    while max(levels[-1].width(), levels[-1].height()) > 2 * SMALLEST_LEVEL:
        last = levels[-1]
        levels.append(last.scaled(max(1, last.width() // 2), max(1, last.height() // 2),
                                  Qt.AspectRatioMode.IgnoreAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation))
    return tuple(levels)


def _load_full(path: Path) -> LoadedImage:
    qimage = pil_to_qimage(load_image(path))
    return LoadedImage(path, (qimage.width(), qimage.height()), build_levels(qimage), True)


def _load_preview(path: Path, size: tuple[int, int] | None) -> LoadedImage:
    qimage = pil_to_qimage(load_thumbnail(path, PREVIEW_SIDE))
    if size is None:
        size = (qimage.width(), qimage.height())
    return LoadedImage(path, size, (qimage,), False)


class ImageLoader(QObject):
    """Loads images for the canvas. :meth:`request` asks for one image: ``on_image`` is called
    (on the GUI thread) with a preview and then the full image, or ``on_error`` with the
    reason. Previews decode on their own thread, so a full decode in progress (a prefetch)
    never delays the preview of the image the user just asked for; a newer request drops what
    is still queued for images no longer wanted."""

    def __init__(self, on_image: Callable[[LoadedImage], None],
                 on_error: Callable[[Path, str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_image = on_image
        self._on_error = on_error
        self._previews = TaskRunner(self, name="image-preview")
        self._decoder = TaskRunner(self, name="image-decoder")
        self._cache: OrderedDict[Path, LoadedImage] = OrderedDict()
        self._preview_task: Task | None = None
        self._full_tasks: dict[Path, Task] = {}  # queued or running full decodes, by path
        self._wanted: Path | None = None

    def request(self, path: Path, size: tuple[int, int] | None = None,
                prefetch: tuple[Path, ...] = ()) -> None:
        """Show ``path`` (displayed ``size`` when the store knows it); then decode ``prefetch``
        in the background."""
        self._wanted = path
        if self._preview_task is not None:
            self._preview_task.cancel()
            self._preview_task = None
        still_wanted = {path, *prefetch}
        for other in [p for p in self._full_tasks if p not in still_wanted]:
            self._full_tasks.pop(other).cancel()
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            self._on_image(cached)
        else:
            self._preview_task = self._previews.submit(
                _load_preview, path, size, on_done=self._preview_done,
                on_error=lambda error, _details: self._fail(path, error))
            self._decode(path)
        for other in prefetch:
            if other not in self._cache:
                self._decode(other)

    def _decode(self, path: Path) -> None:
        if path in self._full_tasks:  # already queued or running (e.g. as a prefetch)
            return

        def failed(error: BaseException, _details: str) -> None:
            self._full_tasks.pop(path, None)
            self._fail(path, error)

        self._full_tasks[path] = self._decoder.submit(_load_full, path, on_done=self._full_done,
                                                      on_error=failed)

    def forget(self, path: Path | None = None) -> None:
        """Drop ``path`` (all when None) from the cache, e.g. after its file changed."""
        if path is None:
            self._cache.clear()
        else:
            self._cache.pop(path, None)

    def shutdown(self) -> None:
        self._previews.shutdown()
        self._decoder.shutdown()

    def _preview_done(self, image: LoadedImage) -> None:
        self._preview_task = None
        # A preview that comes after its full image must not replace it.
        if image.path == self._wanted and image.path not in self._cache:
            self._on_image(image)

    def _full_done(self, image: LoadedImage) -> None:
        self._full_tasks.pop(image.path, None)
        self._cache[image.path] = image
        self._cache.move_to_end(image.path)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        if image.path == self._wanted:
            if self._preview_task is not None:
                self._preview_task.cancel()
                self._preview_task = None
            self._on_image(image)

    def _fail(self, path: Path, error: BaseException) -> None:
        if path != self._wanted:
            return
        if isinstance(error, ImageLoadError):
            self._on_error(path, str(error))
        else:
            self._on_error(path, f"{path}: cannot be shown ({type(error).__name__}: {error})")
