"""Thumbnails for lists: loaded on a worker thread when a view asks, newest request first,
kept in a cache bounded in bytes.

    loader = ThumbnailLoader(side=64, parent=panel)
    loader.thumbnail_ready.connect(repaint_row)      # (key): get(key) or problem(key) now answers
    pixmap = loader.get(key)                         # None until loaded
    if pixmap is None:
        loader.request(key, path)                    # the view is painting this row now
    loader.keep_only(keys_in_view)                   # after a scroll: drop what is not in view

Requests wait on a stack, not a queue: a fast scroll asks for hundreds of rows, and the ones
the user sees now are the last asked for, so they load first; the ones scrolled past are
dropped by :meth:`ThumbnailLoader.keep_only`. The work runs on an :class:`app.workers.TaskRunner`,
two tasks in its queue at most, so the stack (on the GUI thread) decides the order.
A file that cannot be loaded is remembered as "missing" or "unreadable" and not asked again
until :meth:`ThumbnailLoader.forget`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection, Iterable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPixmap

from app.qt_images import pil_to_qimage
from app.workers import TaskRunner
from engine.data.images import ImageLoadError, load_thumbnail

_log = logging.getLogger(__name__)

# Problems a load can find (the same words as ImageRow.problem).
MISSING = "missing"
UNREADABLE = "unreadable"
# Enough to keep the worker busy while the GUI thread hands it the next request; more would
# let older requests run ahead of newer ones.
_IN_FLIGHT = 2


def load_thumbnail_image(path: Path, side: int) -> tuple[QImage | None, str | None]:
    """On the worker thread: ``(thumbnail, None)``, or ``(None, "missing" | "unreadable")``.

    ``side``: the longest side in device pixels.
    """
    try:
        image = load_thumbnail(path, side)
    except ImageLoadError:
        return None, (UNREADABLE if path.is_file() else MISSING)
    return pil_to_qimage(image), None


class ThumbnailLoader(QObject):
    """Thumbnails keyed by an int (an image id), ``side`` logical pixels on their long side.

    ``scale``: device pixels per logical pixel (the screen's ratio), so thumbnails are sharp on
    high-DPI screens; ``cache_bytes`` bounds the pixels kept (least recently used go first).
    Everything but the loading itself happens on the thread that made the loader.
    """

    thumbnail_ready = Signal(int)  # key: its thumbnail or its problem is now known

    def __init__(self, side: int, *, scale: float = 1.0, cache_bytes: int = 64 << 20,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.scale = scale
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, QPixmap] = OrderedDict()
        self._cached_bytes = 0
        self._problems: dict[int, str] = {}
        self._waiting: OrderedDict[int, Path] = OrderedDict()  # the stack: newest last
        self._running: set[int] = set()
        # Bumped by clear(): results of work started before it are dropped.
        self._generation = 0
        self._stopped = False
        self._runner = TaskRunner(self, name="thumbnails")

    # --- what views call --------------------------------------------------------------------

    def get(self, key: int) -> QPixmap | None:
        """The cached thumbnail (marked as recently used), or None."""
        pixmap = self._cache.get(key)
        if pixmap is not None:
            self._cache.move_to_end(key)
        return pixmap

    def problem(self, key: int) -> str | None:
        """"missing" or "unreadable" when loading ``key`` failed, else None."""
        return self._problems.get(key)

    def request(self, key: int, path: Path) -> None:
        """Load ``key`` from ``path`` soon, before anything asked for earlier. Nothing happens
        when it is cached, failed already, or being loaded."""
        if self._stopped or key in self._cache or key in self._problems or key in self._running:
            return
        self._waiting[key] = path
        self._waiting.move_to_end(key)
        self._pump()

    def keep_only(self, keys: Collection[int]) -> None:
        """Drop waiting requests for keys not in ``keys`` (rows no longer in view)."""
        for key in [key for key in self._waiting if key not in keys]:
            del self._waiting[key]

    def forget(self, keys: Iterable[int]) -> None:
        """Drop the cached thumbnails and problems of ``keys`` (their files changed)."""
        for key in keys:
            pixmap = self._cache.pop(key, None)
            if pixmap is not None:
                self._cached_bytes -= _bytes(pixmap)
            self._problems.pop(key, None)
            self._waiting.pop(key, None)

    def clear(self) -> None:
        """Forget everything (another project); work already running is ignored when done."""
        self._generation += 1
        self._cache.clear()
        self._cached_bytes = 0
        self._problems.clear()
        self._waiting.clear()
        self._running.clear()

    @property
    def waiting(self) -> int:
        """Requests not yet started."""
        return len(self._waiting)

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing loading."""
        return not self._waiting and not self._running

    @property
    def cached_bytes(self) -> int:
        return self._cached_bytes

    def shutdown(self) -> None:
        """Stop loading: drop what waits and wait for the running load to end."""
        self._stopped = True
        self._waiting.clear()
        self._runner.shutdown()

    # --- internals --------------------------------------------------------------------------

    def _pump(self) -> None:
        """Hand the newest waiting requests to the worker while it has room."""
        while self._waiting and len(self._running) < _IN_FLIGHT and not self._stopped:
            key, path = self._waiting.popitem(last=True)
            self._running.add(key)
            generation = self._generation
            self._runner.submit(
                load_thumbnail_image, path, round(self.side * self.scale),
                on_done=lambda result, key=key, generation=generation:
                    self._loaded(key, generation, result),
                on_error=lambda error, details, key=key, generation=generation:
                    self._failed(key, generation, details))

    def _loaded(self, key: int, generation: int,
                result: tuple[QImage | None, str | None]) -> None:
        if generation != self._generation:
            self._pump()
            return
        self._running.discard(key)
        image, problem = result
        if image is None:
            self._problems[key] = problem or UNREADABLE
        else:
            pixmap = QPixmap.fromImage(image)
            pixmap.setDevicePixelRatio(self.scale)
            self._store(key, pixmap)
        self._pump()
        self.thumbnail_ready.emit(key)

    def _failed(self, key: int, generation: int, details: str) -> None:
        # Not a bad file (those come back as problems): a bug. Say so, mark the image, go on.
        _log.error("thumbnail %s failed:\n%s", key, details)
        self._loaded(key, generation, (None, UNREADABLE))

    def _store(self, key: int, pixmap: QPixmap) -> None:
        self._cache[key] = pixmap
        self._cached_bytes += _bytes(pixmap)
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _old_key, old = self._cache.popitem(last=False)
            self._cached_bytes -= _bytes(old)


def _bytes(pixmap: QPixmap) -> int:
    return pixmap.width() * pixmap.height() * max(pixmap.depth(), 8) // 8
