"""The image with a stage drawn over it: zoom with the wheel, pan by dragging, click to ask.

:class:`StageCanvas` paints a :class:`~app.inspector.scene.Scene` (plain data) over an image and
reports clicks as image pixels (``clicked(x, y)``). Boxes, lines and dots use cosmetic pens, so
they keep their screen width at any zoom; text labels are drawn in screen space. Double-click
(or :meth:`fit`) shows the whole image.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from .scene import BoxLayer, Heatmap, LineLayer, PointLayer, Scene, heat_rgba

# A press that moves less than this (screen pixels) before release is a click, not a drag.
CLICK_SLOP = 4
# Grid lines closer than this on screen would be a grey wash: the lattice is then not drawn.
MIN_LATTICE_SPACING = 6.0
MIN_ZOOM, MAX_ZOOM = 0.02, 64.0
# The image is kept scaled to the current zoom up to this many pixels (about 64 MB).
MAX_SCALED_PIXELS = 16_000_000
BACKGROUND = QColor(32, 32, 32)
# The grey that faded (alpha < 1) outlines are mixed toward.
NEUTRAL = 0.5


class StageCanvas(QWidget):
    """See the module docstring. ``view_changed`` fires after a zoom or pan, ``painted`` after
    each repaint (for the benchmark and tests that wait for the screen to be up to date)."""

    clicked = Signal(float, float)
    view_changed = Signal()
    painted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._image: QImage | None = None
        self._scene: Scene | None = None
        self._prepared: list[tuple[object, list]] = []
        self._heat_image: QImage | None = None
        self._scaled: QImage | None = None
        self._scaled_for: tuple | None = None
        self._zoom = 1.0
        self._offset = QPointF(0.0, 0.0)  # widget position of image pixel (0, 0)
        self._fitted = True
        self._press: QPointF | None = None
        self._press_offset = QPointF()
        self._dragging = False
        self.paint_count = 0

    # ----------------------------------------------------------------- content

    def set_image(self, image: QImage | None) -> None:
        """Show ``image`` (fitted to the widget); None clears the canvas."""
        self._image = image
        self._fitted = True
        self._fit_now()
        self.update()

    def image_size(self) -> tuple[int, int]:
        return (self._image.width(), self._image.height()) if self._image is not None else (0, 0)

    def set_scene(self, scene: Scene | None) -> None:
        """Draw ``scene`` over the image (None: the image alone)."""
        self._scene = scene
        self._prepared = [(layer, _qt_items(layer)) for layer in (scene.layers if scene else [])]
        self._heat_image = _heat_image(scene.heatmap) if scene and scene.heatmap else None
        self.update()

    def scene(self) -> Scene | None:
        return self._scene

    # ----------------------------------------------------------------- geometry

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self._zoom

    def image_to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(self._offset.x() + x * self._zoom, self._offset.y() + y * self._zoom)

    def widget_to_image(self, point: QPointF) -> tuple[float, float]:
        return ((point.x() - self._offset.x()) / self._zoom,
                (point.y() - self._offset.y()) / self._zoom)

    def fit(self) -> None:
        """Show the whole image, centred."""
        self._fitted = True
        self._fit_now()
        self.update()
        self.view_changed.emit()

    def zoom_by(self, factor: float, around: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the image point under ``around`` (widget coordinates,
        default the centre) where it is."""
        around = around if around is not None else QPointF(self.width() / 2, self.height() / 2)
        x, y = self.widget_to_image(around)
        self._zoom = min(max(self._zoom * factor, MIN_ZOOM), MAX_ZOOM)
        self._offset = QPointF(around.x() - x * self._zoom, around.y() - y * self._zoom)
        self._fitted = False
        self.update()
        self.view_changed.emit()

    def show_rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Zoom and pan so that the image rectangle fills the widget (centred)."""
        width, height = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
        self._zoom = min(max(min(self.width() / width, self.height() / height), MIN_ZOOM),
                         MAX_ZOOM)
        self._offset = QPointF(self.width() / 2 - (x0 + x1) / 2 * self._zoom,
                               self.height() / 2 - (y0 + y1) / 2 * self._zoom)
        self._fitted = False
        self.update()
        self.view_changed.emit()

    def _fit_now(self) -> None:
        if self._image is None or self._image.width() == 0 or self._image.height() == 0:
            self._zoom, self._offset = 1.0, QPointF()
            return
        margin = 8
        width, height = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        self._zoom = min(width / self._image.width(), height / self._image.height())
        self._offset = QPointF((self.width() - self._image.width() * self._zoom) / 2,
                               (self.height() - self._image.height() * self._zoom) / 2)

    # ----------------------------------------------------------------- events

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self._fitted:
            self._fit_now()
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
            self._press_offset = QPointF(self._offset)
            self._dragging = False
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None:
            return
        delta = event.position() - self._press
        if not self._dragging and math.hypot(delta.x(), delta.y()) < CLICK_SLOP:
            return
        self._dragging = True
        self._fitted = False
        self._offset = self._press_offset + delta
        self.setCursor(Qt.CursorShape.ClosedHandCursor)
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        was_drag, self._press = self._dragging, None
        self._dragging = False
        self.unsetCursor()
        if was_drag:
            self.view_changed.emit()
        elif self._image is not None:
            x, y = self.widget_to_image(event.position())
            self.clicked.emit(x, y)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.fit()
        event.accept()

    # ----------------------------------------------------------------- painting

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        try:
            self.paint(painter)
        finally:
            painter.end()
        self.paint_count += 1
        self.painted.emit()

    def paint(self, painter: QPainter) -> None:
        """Everything, onto ``painter`` (a widget or an export image of the same size)."""
        painter.fillRect(QRectF(0, 0, self.width(), self.height()), BACKGROUND)
        if self._image is None:
            painter.setPen(QColor("#bbbbbb"))
            painter.drawText(QRectF(0, 0, self.width(), self.height()),
                             Qt.AlignmentFlag.AlignCenter, "No image")
            return
        self._paint_image(painter)
        transform = QTransform(self._zoom, 0, 0, self._zoom, self._offset.x(), self._offset.y())
        painter.setTransform(transform)
        scene = self._scene
        if scene is not None:
            if self._heat_image is not None:
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
                painter.drawImage(QRectF(*_rect(scene.heatmap.rect)), self._heat_image)
            if scene.lattice is not None:
                self._paint_lattice(painter, scene)
            for layer, items in self._prepared:
                # Axis-aligned boxes and grid lines look the same without antialiasing, which
                # costs several times more (dashed outlines most); round dots need it.
                painter.setRenderHint(QPainter.RenderHint.Antialiasing,
                                      isinstance(layer, PointLayer))
                _paint_layer(painter, layer, items)
        painter.resetTransform()
        if scene is not None:
            self._paint_labels(painter, scene)

    def _paint_image(self, painter: QPainter) -> None:
        """The image at the current zoom, from a copy scaled once per zoom (smoothly when
        zoomed out, pixel for pixel when in): scaling a photo on every repaint would cost more
        than a rerun. Past ``MAX_SCALED_PIXELS`` (deep zoom) only the visible part is drawn,
        through the painter's transform."""
        image = self._image
        size = (max(1, round(image.width() * self._zoom)),
                max(1, round(image.height() * self._zoom)))
        target = QRectF(self._offset.x(), self._offset.y(), size[0], size[1])
        if size[0] * size[1] > MAX_SCALED_PIXELS:
            painter.setTransform(QTransform(self._zoom, 0, 0, self._zoom, self._offset.x(),
                                            self._offset.y()))
            painter.drawImage(QPointF(0, 0), image)
            painter.resetTransform()
            return
        if self._scaled is None or self._scaled_for != (id(image), size):
            mode = (Qt.TransformationMode.SmoothTransformation if self._zoom < 1
                    else Qt.TransformationMode.FastTransformation)
            self._scaled = image.scaled(*size, Qt.AspectRatioMode.IgnoreAspectRatio, mode)
            self._scaled_for = (id(image), size)
        painter.drawImage(target.topLeft(), self._scaled)

    def _paint_lattice(self, painter: QPainter, scene: Scene) -> None:
        lattice = scene.lattice
        (ox, oy), (sx, sy), (nx, ny) = lattice.origin, lattice.step, lattice.count
        if min(sx, sy) * self._zoom < MIN_LATTICE_SPACING:
            return
        # Only the lines inside the visible part of the image.
        left, top = self.widget_to_image(QPointF(0, 0))
        right, bottom = self.widget_to_image(QPointF(self.width(), self.height()))
        first_x = max(0, math.floor((left - ox) / sx))
        last_x = min(nx - 1, math.ceil((right - ox) / sx))
        first_y = max(0, math.floor((top - oy) / sy))
        last_y = min(ny - 1, math.ceil((bottom - oy) / sy))
        y_span = (oy + first_y * sy, oy + last_y * sy)
        x_span = (ox + first_x * sx, ox + last_x * sx)
        lines = [QLineF(ox + i * sx, y_span[0], ox + i * sx, y_span[1])
                 for i in range(first_x, last_x + 1)]
        lines += [QLineF(x_span[0], oy + j * sy, x_span[1], oy + j * sy)
                  for j in range(first_y, last_y + 1)]
        painter.setPen(_pen(lattice.colour, 1.0, lattice.alpha))
        painter.drawLines(lines)

    def _paint_labels(self, painter: QPainter, scene: Scene) -> None:
        metrics = QFontMetrics(painter.font())
        for label in scene.labels:
            point = self.image_to_widget(label.x, label.y)
            rect = metrics.boundingRect(label.text).adjusted(-3, -1, 3, 1)
            rect.moveTopLeft(point.toPoint())
            # Keep the tag inside the widget.
            rect.moveLeft(min(max(rect.left(), 0), max(0, self.width() - rect.width())))
            rect.moveTop(min(max(rect.top(), 0), max(0, self.height() - rect.height())))
            painter.fillRect(rect, QColor(0, 0, 0, round(190 * label.alpha)))
            colour = QColor(label.colour)
            colour.setAlphaF(max(0.0, min(1.0, label.alpha)))
            painter.setPen(colour)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label.text)


def _rect(values: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = values
    return x0, y0, x1 - x0, y1 - y0


def _pen(colour: str, width: float, alpha: float = 1.0, dashed: bool = False,
         opaque: bool = False) -> QPen:
    """A cosmetic pen. ``opaque``: show ``alpha`` by mixing the colour toward grey instead of
    blending with the picture, which the raster engine does about ten times slower (150
    translucent boxes took 10 ms a repaint, opaque ones 1 ms)."""
    alpha = max(0.0, min(1.0, alpha))
    qcolour = QColor(colour)
    if opaque and alpha < 1:
        qcolour = QColor.fromRgbF(*(alpha * c + (1 - alpha) * NEUTRAL for c in (
            qcolour.redF(), qcolour.greenF(), qcolour.blueF())))
    else:
        qcolour.setAlphaF(alpha)
    pen = QPen(qcolour, width)
    pen.setCosmetic(True)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


def _qt_items(layer) -> list:
    """The layer's geometry as Qt objects, built once per scene rather than once per paint."""
    if isinstance(layer, BoxLayer):
        return [QRectF(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in layer.boxes.tolist()]
    if isinstance(layer, LineLayer):
        return [QLineF(*segment) for segment in np.asarray(layer.lines).reshape(-1, 4).tolist()]
    if isinstance(layer, PointLayer):
        return [QPointF(x, y) for x, y in np.asarray(layer.points).reshape(-1, 2).tolist()]
    raise TypeError(f"unknown layer {type(layer).__name__}")


def _paint_layer(painter: QPainter, layer, items: list) -> None:
    if not items:
        return
    if isinstance(layer, BoxLayer):
        painter.setPen(_pen(layer.colour, layer.width, layer.alpha, layer.dashed, opaque=True))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRects(items)
    elif isinstance(layer, LineLayer):
        painter.setPen(_pen(layer.colour, layer.width, layer.alpha, opaque=True))
        painter.drawLines(items)
    else:
        pen = _pen(layer.colour, 2 * layer.radius, layer.alpha)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        painter.drawPoints(items)


def _heat_image(heatmap: Heatmap) -> QImage:
    rgba = np.ascontiguousarray(heat_rgba(heatmap.values, heatmap.alpha))
    height, width = rgba.shape[:2]
    image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
    return image.copy()  # own the pixels: ``rgba`` goes away
