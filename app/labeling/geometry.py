"""Box geometry for the labeling canvas: hit testing, handles, drags. Pure: no Qt.

Coordinates are image pixels (float, pixel-edge convention: a box covering a W x H image is
``(0, 0, W, H)``). A box here is any object with ``x0, y0, x1, y1`` (the project's
``BoxRecord``); functions that change a box return a new ``(x0, y0, x1, y1)`` tuple and never
modify their input. ``bounds`` is the image size ``(width, height)``: every box a function
returns lies inside it, so a box can never leave its image.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

Rect = tuple[float, float, float, float]

# Smallest box a drag may create or a resize may leave, in image pixels: smaller ones are
# almost always a click that slipped, and a zero-width box is not a box.
MIN_BOX_SIZE = 2.0


class HasBox(Protocol):
    x0: float
    y0: float
    x1: float
    y1: float


class Handle(enum.Enum):
    """What part of a box a point is on. The eight resize handles are named by compass point;
    ``MOVE`` is the inside (drag to move)."""

    NW = "nw"
    N = "n"
    NE = "ne"
    E = "e"
    SE = "se"
    S = "s"
    SW = "sw"
    W = "w"
    MOVE = "move"

    @property
    def moves_left(self) -> bool:
        return self in (Handle.NW, Handle.W, Handle.SW)

    @property
    def moves_right(self) -> bool:
        return self in (Handle.NE, Handle.E, Handle.SE)

    @property
    def moves_top(self) -> bool:
        return self in (Handle.NW, Handle.N, Handle.NE)

    @property
    def moves_bottom(self) -> bool:
        return self in (Handle.SW, Handle.S, Handle.SE)


RESIZE_HANDLES = tuple(h for h in Handle if h is not Handle.MOVE)


def rect(box: HasBox | Rect) -> Rect:
    if isinstance(box, tuple):
        return box
    return (box.x0, box.y0, box.x1, box.y1)


def handle_points(box: HasBox | Rect) -> dict[Handle, tuple[float, float]]:
    """Where each resize handle sits: the corners and the middles of the sides."""
    x0, y0, x1, y1 = rect(box)
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    return {Handle.NW: (x0, y0), Handle.N: (xm, y0), Handle.NE: (x1, y0), Handle.E: (x1, ym),
            Handle.SE: (x1, y1), Handle.S: (xm, y1), Handle.SW: (x0, y1), Handle.W: (x0, ym)}


def handle_at(box: HasBox | Rect, x: float, y: float, tolerance: float) -> Handle | None:
    """The resize handle of ``box`` within ``tolerance`` (image pixels, Chebyshev distance) of
    ``(x, y)``, the nearest if several are; else MOVE when the point is inside; else None."""
    best, best_distance = None, tolerance
    for handle, (hx, hy) in handle_points(box).items():
        distance = max(abs(hx - x), abs(hy - y))
        if distance <= best_distance:
            best, best_distance = handle, distance
    if best is not None:
        return best
    x0, y0, x1, y1 = rect(box)
    if x0 <= x <= x1 and y0 <= y <= y1:
        return Handle.MOVE
    return None


CORNERS = (Handle.NW, Handle.NE, Handle.SE, Handle.SW)


def corner_at(boxes: Sequence[HasBox | Rect], x: float, y: float,
              tolerance: float) -> tuple[int, Handle] | None:
    """The box (index) and corner nearest to ``(x, y)`` within ``tolerance`` (image pixels,
    Chebyshev distance), each box's reach cut to a third of its smaller side; among equally
    near corners the smaller box, then the one drawn last. None: no corner that near."""
    best: tuple[float, float, int, Handle] | None = None
    for index, box in enumerate(boxes):
        x0, y0, x1, y1 = rect(box)
        reach = min(tolerance, min(x1 - x0, y1 - y0) / 3)
        points = handle_points(box)
        for handle in CORNERS:
            hx, hy = points[handle]
            distance = max(abs(hx - x), abs(hy - y))
            if distance > reach:
                continue
            key = (distance, (x1 - x0) * (y1 - y0), -index)
            if best is None or key < best[:3]:
                best = (*key, handle)
    if best is None:
        return None
    return -best[2], best[3]


def hit_test(boxes: Sequence[HasBox | Rect], x: float, y: float, tolerance: float,
             selected: int | None = None) -> tuple[int, Handle] | None:
    """Which box (index) and which part of it is under ``(x, y)``.

    The selected box's handles win (they are what the user sees and aims for), then the
    nearest corner of any box within ``tolerance`` (a corner drag resizes a box without a
    click to select it first, as in labelme and CVAT; a box's corners grab at most a third of
    its width and height, so a small box can still be moved by its inside, and a smaller box
the point is inside wins over a larger box's corner), then the smallest
    box containing the point, so that a small box drawn inside a large one stays reachable;
    among equal areas the one drawn last (on top). None: empty space.
    """
    if selected is not None and 0 <= selected < len(boxes):
        handle = handle_at(boxes[selected], x, y, tolerance)
        if handle is not None and handle is not Handle.MOVE:
            return selected, handle
    corner = corner_at(boxes, x, y, tolerance)
    if corner is not None and not _inside_smaller(boxes, x, y, corner[0]):
        return corner
    best: tuple[float, int] | None = None
    for index, box in enumerate(boxes):
        x0, y0, x1, y1 = rect(box)
        if x0 - tolerance <= x <= x1 + tolerance and y0 - tolerance <= y <= y1 + tolerance:
            area = (x1 - x0) * (y1 - y0)
            if best is None or area <= best[0]:
                best = (area, index)
    if best is None:
        return None
    index = best[1]
    if index == selected:
        handle = handle_at(boxes[index], x, y, tolerance)
        return index, handle if handle is not None else Handle.MOVE
    return index, Handle.MOVE


def _inside_smaller(boxes: Sequence[HasBox | Rect], x: float, y: float, index: int) -> bool:
    """Whether ``(x, y)`` lies inside a box smaller than ``boxes[index]`` (which then wins: a
    corner of a large box must not take over a small box drawn on it)."""
    x0, y0, x1, y1 = rect(boxes[index])
    area = (x1 - x0) * (y1 - y0)
    for other, box in enumerate(boxes):
        bx0, by0, bx1, by1 = rect(box)
        if (other != index and bx0 <= x <= bx1 and by0 <= y <= by1
                and (bx1 - bx0) * (by1 - by0) < area):
            return True
    return False


def clamp_rect(box: Rect, bounds: tuple[float, float]) -> Rect:
    """``box`` cut to the image (its corners clamped to ``[0, W] x [0, H]``)."""
    width, height = bounds
    x0, y0, x1, y1 = box
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
            min(max(x1, 0.0), width), min(max(y1, 0.0), height))


def normalized(x0: float, y0: float, x1: float, y1: float) -> Rect:
    """The same rectangle with x0 <= x1 and y0 <= y1."""
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def rect_from_drag(start: tuple[float, float], end: tuple[float, float],
                   bounds: tuple[float, float]) -> Rect | None:
    """The box a drawing drag from ``start`` to ``end`` makes, inside the image; None when it
    is smaller than :data:`MIN_BOX_SIZE` either way (a click, not a box)."""
    box = clamp_rect(normalized(*start, *end), bounds)
    if box[2] - box[0] < MIN_BOX_SIZE or box[3] - box[1] < MIN_BOX_SIZE:
        return None
    return box


def moved(box: HasBox | Rect, dx: float, dy: float, bounds: tuple[float, float]) -> Rect:
    """``box`` shifted by ``(dx, dy)`` as far as the image allows, keeping its size (a box
    larger than the image is first cut to it)."""
    x0, y0, x1, y1 = clamp_rect(rect(box), bounds)
    width, height = bounds
    dx = min(max(dx, -x0), width - x1)
    dy = min(max(dy, -y0), height - y1)
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def resized(box: HasBox | Rect, handle: Handle, x: float, y: float,
            bounds: tuple[float, float]) -> Rect:
    """``box`` with the edges ``handle`` controls moved to the point ``(x, y)`` (clamped to the
    image). Dragging an edge across the opposite one flips the box rather than inverting it;
    the result is at least :data:`MIN_BOX_SIZE` wide and high where the image allows."""
    if handle is Handle.MOVE:
        raise ValueError("resized() takes a resize handle; use moved() for MOVE")
    width, height = bounds
    x = min(max(x, 0.0), width)
    y = min(max(y, 0.0), height)
    x0, y0, x1, y1 = rect(box)
    if handle.moves_left:
        x0 = x
    if handle.moves_right:
        x1 = x
    if handle.moves_top:
        y0 = y
    if handle.moves_bottom:
        y1 = y
    x0, y0, x1, y1 = normalized(x0, y0, x1, y1)
    x0, x1 = _at_least(x0, x1, width)
    y0, y1 = _at_least(y0, y1, height)
    return (x0, y0, x1, y1)


def _at_least(low: float, high: float, limit: float) -> tuple[float, float]:
    """Widen ``[low, high]`` to MIN_BOX_SIZE inside ``[0, limit]`` if it is narrower."""
    if high - low >= MIN_BOX_SIZE:
        return low, high
    high = min(low + MIN_BOX_SIZE, limit)
    low = max(high - MIN_BOX_SIZE, 0.0)
    return low, high


def pasted(box: HasBox | Rect, bounds: tuple[float, float]) -> Rect | None:
    """A box copied from another image, fitted to this one (cut to it); None if nothing of it
    is left inside (the other image was larger and the box lay beyond this one's edge)."""
    x0, y0, x1, y1 = clamp_rect(rect(box), bounds)
    if x1 - x0 < MIN_BOX_SIZE or y1 - y0 < MIN_BOX_SIZE:
        return None
    return (x0, y0, x1, y1)
