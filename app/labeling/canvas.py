"""The labeling canvas: one image with its boxes, zoom and pan, and box drawing and editing by
mouse and keyboard.

The canvas owns only view state (zoom, pan, selection, hover, a drag in progress). The boxes
are the editor's: the canvas shows what :meth:`LabelCanvas.set_boxes` gave it and, when the user
finishes a gesture (a drawn box, a move, a resize, a nudge), emits ``edit_requested`` with the
complete new box list and a description; the window turns that into an undoable edit and
hands the result back. Geometry (hit testing, handles, clamping) is in
:mod:`app.labeling.geometry`, tested without Qt.

Mouse: in *draw* mode (W) a left drag draws a box of the current class (edges snap to pixel
edges); in *select* mode (V,
Esc) a left click selects the box under the cursor (the smallest, so nested boxes stay
reachable), a drag on it moves it, a drag on a handle of the selected box or on a corner of any
box (within :data:`GRAB_PX` screen pixels) resizes it, and a drag on empty space pans.
The middle button pans in either mode; the wheel zooms about the cursor.
Keyboard (canvas focused): arrows nudge the selected box by 1 px (10 with Shift), or without a
selection ask for the previous / next image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QCursor,
    QFont,
    QFontMetricsF,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from engine.data.annotations import BoxRecord
from engine.data.project import CategoryRow

from . import geometry
from .geometry import Handle
from .image_loader import LoadedImage

SELECT, DRAW = "select", "draw"
HANDLE_PX = 7  # handle squares' size on screen
# How near (screen pixels, whatever the zoom) a press must be to a handle or corner to grab it:
# labelme's and CVAT's tolerance is about as large; a handle square alone is too small a target.
GRAB_PX = 12
MIN_ZOOM, MAX_ZOOM = 0.01, 64.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch (120 units) and per +/- key
# Above this many boxes on screen, tags are drawn only for boxes tall enough to hold one:
# a thousand overlapping tags hide the image and cost a frame's time.
TAGS_FOR_ALL_BELOW = 200
UNKNOWN_COLOR = "#ff00ff"

_CURSORS = {
    Handle.NW: Qt.CursorShape.SizeFDiagCursor, Handle.SE: Qt.CursorShape.SizeFDiagCursor,
    Handle.NE: Qt.CursorShape.SizeBDiagCursor, Handle.SW: Qt.CursorShape.SizeBDiagCursor,
    Handle.N: Qt.CursorShape.SizeVerCursor, Handle.S: Qt.CursorShape.SizeVerCursor,
    Handle.E: Qt.CursorShape.SizeHorCursor, Handle.W: Qt.CursorShape.SizeHorCursor,
    Handle.MOVE: Qt.CursorShape.SizeAllCursor,
}


@dataclass
class _Drag:
    """A gesture in progress. ``kind``: "draw", "edit" (move or resize box ``index`` by
    ``handle``) or "pan". Points are image pixels, except ``widget_start`` for panning."""

    kind: str
    start: tuple[float, float]
    widget_start: QPointF
    origin_start: QPointF
    index: int | None = None
    handle: Handle | None = None
    rect: geometry.Rect | None = None  # the live box (draw and edit)


class LabelCanvas(QWidget):
    """See the module docstring. Signals carry image-pixel coordinates."""

    edit_requested = Signal(object, str, object)  # boxes tuple, description, merge key
    selection_changed = Signal(object)  # box index or None
    cursor_moved = Signal(object)  # (x, y) in image pixels, or None outside the image
    view_changed = Signal()  # zoom or pan changed
    mode_changed = Signal(str)
    navigate_requested = Signal(int)  # -1 previous image, +1 next image
    class_needed = Signal()  # a box was drawn while the project has no class yet
    suggestion_selected = Signal(object)  # index into the editor's suggestions, or None
    suggestion_activated = Signal(int)  # double-clicked or Enter: accept this suggestion

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: LoadedImage | None = None
        self._message = ""
        self._boxes: tuple[BoxRecord, ...] = ()
        self._categories: dict[int, CategoryRow] = {}
        self._pens: dict[tuple[int, bool], QPen] = {}
        self.current_category: int | None = None
        self.mode = SELECT
        self.selected: int | None = None
        # A model's suggestions shown dashed: (index in the editor's list, box) pairs.
        self._suggestions: tuple[tuple[int, BoxRecord], ...] = ()
        self.selected_suggestion: int | None = None
        # The model's proposal for the review entry shown (drawn dotted on a white line).
        self.review_mark: BoxRecord | None = None
        self._hover: int | None = None
        self._cursor: tuple[float, float] | None = None
        self._drag: _Drag | None = None
        self._scale = 1.0
        self._origin = QPointF(0, 0)  # widget position of image pixel (0, 0)
        self._fitting = True  # refit when the widget resizes, until the user zooms or pans
        self._font = QFont(self.font())
        self._font.setPixelSize(12)
        self._font_metrics = QFontMetricsF(self._font)

    # --- content ----------------------------------------------------------------------------

    @property
    def image_size(self) -> tuple[int, int] | None:
        return None if self._image is None else self._image.size

    @property
    def boxes(self) -> tuple[BoxRecord, ...]:
        return self._boxes

    @property
    def image_loaded(self) -> LoadedImage | None:
        return self._image

    def set_image(self, image: LoadedImage | None, *, keep_view: bool = False) -> None:
        """Show ``image`` (None: nothing). ``keep_view``: the same image in better quality,
        keep zoom and pan; otherwise fit the new image to the window."""
        same_size = (image is not None and self._image is not None
                     and image.size == self._image.size)
        self._image = image
        self._message = ""
        self._drag = None
        if not (keep_view and same_size):
            self.fit()
        self.update()

    def set_message(self, text: str) -> None:
        """Show ``text`` instead of an image (a missing or unreadable file); boxes stay."""
        self._image = None
        self._message = text
        self.update()

    def set_boxes(self, boxes: tuple[BoxRecord, ...], selected: int | None = -1) -> None:
        """The boxes to show. ``selected``: the box to select (None: none; -1: keep the
        current selection if it still exists)."""
        self._boxes = tuple(boxes)
        if selected == -1:
            selected = self.selected if self.selected is not None and \
                self.selected < len(self._boxes) else None
        self._drag = None
        self._hover = None
        self._set_selected(selected)
        self.update()

    def set_suggestions(self, suggestions: tuple[tuple[int, BoxRecord], ...]) -> None:
        """The suggestions to show, as (index in the editor's list, box) pairs; the selected
        one stays selected if it is still shown."""
        self._suggestions = tuple(suggestions)
        shown = {index for index, _box in self._suggestions}
        if self.selected_suggestion not in shown:
            self._select_suggestion(None)
        self.update()

    def set_review_mark(self, box: BoxRecord | None) -> None:
        """Draw ``box`` as the model's proposal for the label under review (None: none)."""
        self.review_mark = box
        self.update()

    def _select_suggestion(self, index: int | None) -> None:
        if index != self.selected_suggestion:
            self.selected_suggestion = index
            self.suggestion_selected.emit(index)

    def set_categories(self, categories: list[CategoryRow]) -> None:
        self._categories = {category.id: category for category in categories}
        self._pens.clear()
        if self.current_category not in self._categories:
            self.current_category = categories[0].id if categories else None
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in (SELECT, DRAW):
            raise ValueError(f"unknown canvas mode {mode!r}")
        self._drag = None
        if mode != self.mode:
            self.mode = mode
            if mode == DRAW:
                # Keys 1-9 then pick the class for the next box instead of changing the box
                # that happened to be selected.
                self._set_selected(None)
            self.mode_changed.emit(mode)
        self._update_cursor_shape()
        self.update()

    def select(self, index: int | None) -> None:
        self._set_selected(index)
        self.update()

    def _set_selected(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self._boxes):
            index = None
        if index != self.selected:
            self.selected = index
            self.selection_changed.emit(index)

    # --- view transform -----------------------------------------------------------------------

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self._scale

    def image_to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(self._origin.x() + x * self._scale, self._origin.y() + y * self._scale)

    def widget_to_image(self, point: QPointF) -> tuple[float, float]:
        return ((point.x() - self._origin.x()) / self._scale,
                (point.y() - self._origin.y()) / self._scale)

    def image_rect_to_widget(self, box: geometry.Rect) -> QRectF:
        top_left = self.image_to_widget(box[0], box[1])
        return QRectF(top_left.x(), top_left.y(), (box[2] - box[0]) * self._scale,
                      (box[3] - box[1]) * self._scale)

    def fit(self) -> None:
        """The whole image in the window, centred."""
        self._fitting = True
        if self._image is None:
            return
        width, height = self._image.size
        margin = 8
        scale = min((self.width() - 2 * margin) / width, (self.height() - 2 * margin) / height)
        self._scale = min(max(scale, MIN_ZOOM), MAX_ZOOM)
        self._origin = QPointF((self.width() - width * self._scale) / 2,
                               (self.height() - height * self._scale) / 2)
        self.view_changed.emit()
        self.update()

    def set_zoom(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``scale`` keeping the image point under ``anchor`` (default: the centre)
        where it is."""
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        x, y = self.widget_to_image(anchor)
        self._scale = min(max(scale, MIN_ZOOM), MAX_ZOOM)
        self._origin = QPointF(anchor.x() - x * self._scale, anchor.y() - y * self._scale)
        self._fitting = False
        self.view_changed.emit()
        self.update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._scale * factor, anchor)

    def actual_size(self) -> None:
        """One image pixel per screen pixel (1:1)."""
        self.set_zoom(1.0)

    def pan_by(self, dx: float, dy: float) -> None:
        self._origin += QPointF(dx, dy)
        self._fitting = False
        self.view_changed.emit()
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        if self._fitting:
            self.fit()
        super().resizeEvent(event)

    # --- painting -----------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(event.rect(), QColor(48, 48, 52))
        if self._image is not None:
            self._paint_image(painter)
            self._paint_suggestions(painter)
            self._paint_boxes(painter)
            self._paint_review_mark(painter)
            if self.mode == DRAW and self._cursor is not None:
                self._paint_crosshair(painter)
        elif self._message:
            painter.setPen(QColor(230, 230, 230))
            painter.drawText(self.rect().adjusted(20, 20, -20, -20),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._message)
        painter.end()

    def _paint_image(self, painter: QPainter) -> None:
        image = self._image
        width, height = image.size
        # The smallest copy that still has at least one pixel per screen pixel.
        level = image.levels[0]
        for candidate in image.levels[1:]:
            if candidate.width() >= width * self._scale:
                level = candidate
        visible = QRectF(self.rect()).intersected(self.image_rect_to_widget((0, 0, width,
                                                                             height)))
        if visible.isEmpty():
            return
        x0, y0 = self.widget_to_image(visible.topLeft())
        x1, y1 = self.widget_to_image(visible.bottomRight())
        sx, sy = level.width() / width, level.height() / height
        source = QRectF(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
        # Smooth when shrinking or mildly enlarging; nearest neighbour from 2x on, so that a
        # user zoomed in to place an edge sees the real pixels.
        smooth = self._scale / sx < 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(visible, level, source)

    def _pen(self, category_id: int, emphasis: bool) -> QPen:
        pen = self._pens.get((category_id, emphasis))
        if pen is None:
            pen = QPen(self._color(category_id), 3 if emphasis else 2)
            pen.setCosmetic(True)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            self._pens[(category_id, emphasis)] = pen
        return pen

    def _color(self, category_id: int | None) -> QColor:
        category = self._categories.get(category_id)
        return QColor(category.color if category is not None else UNKNOWN_COLOR)

    def _tag_text(self, box: BoxRecord) -> str:
        category = self._categories.get(box.category_id)
        name = category.name if category is not None else f"class {box.category_id}?"
        if box.difficult:
            name += " (difficult)"
        if box.source == "predicted" and box.score is not None:
            name += f" {box.score:.2f}"
        return name

    def _paint_boxes(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setFont(self._font)
        view = QRectF(self.rect())
        drag = self._drag
        rects = []
        for index, box in enumerate(self._boxes):
            box_rect = geometry.rect(box)
            if drag is not None and drag.kind == "edit" and drag.index == index:
                box_rect = drag.rect
            widget_rect = self.image_rect_to_widget(box_rect)
            if widget_rect.intersects(view):
                rects.append((index, box, widget_rect))
        all_tags = len(rects) < TAGS_FOR_ALL_BELOW
        tag_height = self._font_metrics.height() + 2
        for index, box, widget_rect in rects:
            emphasis = index in (self.selected, self._hover)
            if emphasis:
                fill = self._color(box.category_id)
                fill.setAlpha(60 if index == self.selected else 35)
                painter.fillRect(widget_rect, fill)
            pen = self._pen(box.category_id, emphasis)
            if box.difficult:
                pen = QPen(pen)
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(widget_rect)
            if all_tags or emphasis or widget_rect.height() > 3 * tag_height:
                self._paint_tag(painter, box, widget_rect, tag_height)
        if self.selected is not None and self.selected < len(self._boxes):
            live = (drag.rect if drag is not None and drag.kind == "edit"
                    and drag.index == self.selected else geometry.rect(self._boxes[self.selected]))
            self._paint_handles(painter, live)
        if drag is not None and drag.kind == "draw" and drag.rect is not None:
            pen = QPen(self._color(self.current_category), 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawRect(self.image_rect_to_widget(drag.rect))

    def _paint_suggestions(self, painter: QPainter) -> None:
        """Dashed, with the class and score on a half-transparent tag below the top edge."""
        if not self._suggestions:
            return
        painter.setFont(self._font)
        tag_height = self._font_metrics.height() + 2
        for index, box in self._suggestions:
            widget_rect = self.image_rect_to_widget(geometry.rect(box))
            chosen = index == self.selected_suggestion
            color = self._color(box.category_id)
            if chosen:
                fill = QColor(color)
                fill.setAlpha(70)
                painter.fillRect(widget_rect, fill)
            pen = QPen(color, 3 if chosen else 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawRect(widget_rect)
            text = self._tag_text(box)
            tag = QRectF(widget_rect.left(), widget_rect.top(),
                         self._font_metrics.horizontalAdvance(text) + 6, tag_height)
            color.setAlpha(255 if chosen else 150)
            painter.fillRect(tag, color)
            painter.setPen(QColor("white"))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_review_mark(self, painter: QPainter) -> None:
        """The review's proposal: a dotted line in its class colour over a white one, tagged
        "model: CLASS" below its bottom edge, so it is told apart from labels and suggestions."""
        box = self.review_mark
        if box is None:
            return
        widget_rect = self.image_rect_to_widget(geometry.rect(box))
        for color, width, style in ((QColor("white"), 4, Qt.PenStyle.SolidLine),
                                    (self._color(box.category_id), 2, Qt.PenStyle.DotLine)):
            pen = QPen(color, width, style)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawRect(widget_rect)
        painter.setFont(self._font)
        text = f"model: {self._tag_text(box)}"
        tag_height = self._font_metrics.height() + 2
        tag = QRectF(widget_rect.left(), widget_rect.bottom(),
                     self._font_metrics.horizontalAdvance(text) + 6, tag_height)
        painter.fillRect(tag, QColor("white"))
        painter.setPen(QColor("black"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_tag(self, painter: QPainter, box: BoxRecord, widget_rect: QRectF,
                   tag_height: float) -> None:
        text = self._tag_text(box)
        width = self._font_metrics.horizontalAdvance(text) + 6
        top = widget_rect.top() - tag_height
        if top < 0:  # no room above: put the tag inside the box's top edge
            top = widget_rect.top()
        tag = QRectF(widget_rect.left(), top, width, tag_height)
        painter.fillRect(tag, self._color(box.category_id))
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_handles(self, painter: QPainter, box: geometry.Rect) -> None:
        painter.setPen(QPen(QColor("black"), 1))
        painter.setBrush(QBrush(QColor("white")))
        half = HANDLE_PX / 2
        for x, y in geometry.handle_points(box).values():
            point = self.image_to_widget(x, y)
            painter.drawRect(QRectF(point.x() - half, point.y() - half, HANDLE_PX, HANDLE_PX))
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _paint_crosshair(self, painter: QPainter) -> None:
        point = self.image_to_widget(*self._cursor)
        pen = QPen(QColor(255, 255, 255, 170), 1, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(QPointF(0, point.y()), QPointF(self.width(), point.y()))
        painter.drawLine(QPointF(point.x(), 0), QPointF(point.x(), self.height()))

    # --- mouse ----------------------------------------------------------------------------------

    def _tolerance(self) -> float:
        """Grabbing distance in image pixels: :data:`GRAB_PX` on screen at any zoom."""
        return GRAB_PX / self._scale

    def _image_point(self, event: QMouseEvent | QWheelEvent) -> tuple[float, float]:
        return self.widget_to_image(event.position())

    @staticmethod
    def _snapped(point: tuple[float, float]) -> tuple[float, float]:
        """The nearest pixel edge: box edges lie between pixels, and a mouse position is
        only as precise as a screen pixel, which at most zooms is not an image pixel."""
        return float(round(point[0])), float(round(point[1]))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._image is None:
            return
        point = self._image_point(event)
        button = event.button()
        if button == Qt.MouseButton.MiddleButton:
            self._start_pan(event)
        elif button == Qt.MouseButton.LeftButton and self.mode == DRAW:
            start = geometry.clamp_rect((*self._snapped(point), *self._snapped(point)),
                                        self._image.size)[:2]
            self._drag = _Drag("draw", start, event.position(), QPointF(self._origin))
        elif button == Qt.MouseButton.LeftButton:
            # Boxes and suggestions compete: the smallest under the cursor wins, and a
            # suggestion lying exactly on a box (the model found what is labeled) wins the tie,
            # so that it can be rejected.
            candidates = (*self._boxes, *(box for _index, box in self._suggestions))
            hit = geometry.hit_test(candidates, *point, self._tolerance(), self.selected)
            if hit is None:
                self._set_selected(None)
                self._select_suggestion(None)
                self._start_pan(event)
            elif hit[0] >= len(self._boxes):
                self._set_selected(None)
                self._select_suggestion(self._suggestions[hit[0] - len(self._boxes)][0])
            else:
                index, handle = hit
                self._select_suggestion(None)
                self._set_selected(index)
                self._drag = _Drag("edit", point, event.position(), QPointF(self._origin),
                                   index=index, handle=handle,
                                   rect=geometry.rect(self._boxes[index]))
        self.update()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self.mousePressEvent(event)
        if self.selected_suggestion is not None:
            self.suggestion_activated.emit(self.selected_suggestion)

    def _start_pan(self, event: QMouseEvent) -> None:
        self._drag = _Drag("pan", (0.0, 0.0), event.position(), QPointF(self._origin))
        self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._image is None:
            return
        point = self._image_point(event)
        width, height = self._image.size
        inside = 0 <= point[0] < width and 0 <= point[1] < height
        self._cursor = point if inside or self._drag is not None else None
        self.cursor_moved.emit(self._cursor and (min(max(point[0], 0), width),
                                                 min(max(point[1], 0), height)))
        drag = self._drag
        if drag is None:
            self._update_hover(point)
        elif drag.kind == "pan":
            delta = event.position() - drag.widget_start
            self._origin = drag.origin_start + delta
            self._fitting = False
            self.view_changed.emit()
        elif drag.kind == "draw":
            drag.rect = geometry.clamp_rect(
                geometry.normalized(*drag.start, *self._snapped(point)), self._image.size)
        elif drag.kind == "edit":
            original = geometry.rect(self._boxes[drag.index])
            if drag.handle is Handle.MOVE:
                dx, dy = self._snapped((point[0] - drag.start[0], point[1] - drag.start[1]))
                drag.rect = geometry.moved(original, dx, dy, self._image.size)
            else:
                drag.rect = geometry.resized(original, drag.handle, *self._snapped(point),
                                             self._image.size)
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        drag, self._drag = self._drag, None
        if drag is None or self._image is None:
            return
        if drag.kind == "draw":
            new = geometry.rect_from_drag(drag.start, self._snapped(self._image_point(event)),
                                          self._image.size)
            if new is not None:
                self._finish_draw(new)
        elif drag.kind == "edit" and drag.rect != geometry.rect(self._boxes[drag.index]):
            box = self._boxes[drag.index]
            changed = dataclasses.replace(box, x0=drag.rect[0], y0=drag.rect[1],
                                          x1=drag.rect[2], y1=drag.rect[3])
            boxes = (*self._boxes[:drag.index], changed, *self._boxes[drag.index + 1:])
            text = "Move box" if drag.handle is Handle.MOVE else "Resize box"
            self._boxes = boxes
            self.edit_requested.emit(boxes, text, None)
        self._update_cursor_shape()
        self.update()

    def _finish_draw(self, rect: geometry.Rect) -> None:
        if self.current_category is None:
            self.class_needed.emit()
            if self.current_category is None:
                return
        box = BoxRecord(*rect, self.current_category, source="manual")
        boxes = (*self._boxes, box)
        self._boxes = boxes
        self._set_selected(len(boxes) - 1)
        self.edit_requested.emit(boxes, "Draw box", None)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        if self._image is None:
            return
        notches = event.angleDelta().y() / 120
        if notches:
            self.zoom_by(WHEEL_STEP ** notches, event.position())

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._cursor = None
        self._hover = None
        self.cursor_moved.emit(None)
        self.update()
        super().leaveEvent(event)

    def _update_hover(self, point: tuple[float, float]) -> None:
        hit = None
        if self.mode == SELECT:
            hit = geometry.hit_test(self._boxes, *point, self._tolerance(), self.selected)
        self._hover = None if hit is None else hit[0]
        if self.mode == DRAW:
            self.setCursor(Qt.CursorShape.CrossCursor)
        elif hit is None:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.setCursor(QCursor(_CURSORS[hit[1]]))

    def _update_cursor_shape(self) -> None:
        self.setCursor(Qt.CursorShape.CrossCursor if self.mode == DRAW
                       else Qt.CursorShape.ArrowCursor)

    # --- keyboard -------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        steps = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0),
                 Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
        key = Qt.Key(event.key())
        if key in steps and self._image is not None:
            dx, dy = steps[key]
            if self.selected is None:
                self.navigate_requested.emit(1 if dx + dy > 0 else -1)
            else:
                step = 10 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
                self.nudge(dx * step, dy * step)
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                self.selected_suggestion is not None:
            self.suggestion_activated.emit(self.selected_suggestion)
            return
        if key == Qt.Key.Key_Escape:
            if self._drag is not None:
                self._drag = None
            elif self.mode == DRAW:
                self.set_mode(SELECT)
            else:
                self.select(None)
            self.update()
            return
        super().keyPressEvent(event)

    def nudge(self, dx: float, dy: float) -> None:
        """Move the selected box by ``(dx, dy)`` image pixels (kept inside the image).
        Successive nudges of one box merge into one undo step."""
        if self.selected is None or self._image is None:
            return
        index = self.selected
        box = self._boxes[index]
        rect = geometry.moved(box, dx, dy, self._image.size)
        if rect == geometry.rect(box):
            return
        changed = dataclasses.replace(box, x0=rect[0], y0=rect[1], x1=rect[2], y1=rect[3])
        boxes = (*self._boxes[:index], changed, *self._boxes[index + 1:])
        self._boxes = boxes
        self.edit_requested.emit(boxes, "Nudge box", ("nudge", index))
        self.update()


def zoom_percent(scale: float) -> str:
    """A zoom factor as the status bar shows it: 0.25 -> "25%", 0.034 -> "3.4%"."""
    percent = scale * 100
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.1f}%"
