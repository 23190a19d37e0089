"""What did the user click? Pure functions over boxes in image pixels (no Qt).

A click is at image point (x, y); ``tolerance`` is how far from a box's border still counts as
on it, in image pixels (the canvas converts a few screen pixels at the current zoom).
"""

from __future__ import annotations

import numpy as np


def border_distance(boxes: np.ndarray, x: float, y: float) -> np.ndarray:
    """(N,) distance from (x, y) to each box's outline (0 on it), in pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = boxes.T
    inside = (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)
    # Inside: the nearest of the four edges. Outside: the distance to the rectangle.
    to_edge = np.minimum(np.minimum(x - x0, x1 - x), np.minimum(y - y0, y1 - y))
    dx = np.maximum(np.maximum(x0 - x, 0.0), x - x1)
    dy = np.maximum(np.maximum(y0 - y, 0.0), y - y1)
    return np.where(inside, to_edge, np.hypot(dx, dy))


def on_border(boxes: np.ndarray, x: float, y: float, tolerance: float = 3.0) -> int | None:
    """The box whose outline passes within ``tolerance`` of (x, y), the nearest winning (ties:
    the lower index), or None."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return None
    distance = border_distance(boxes, x, y)
    near = np.where(distance <= tolerance)[0]
    if near.size == 0:
        return None
    return int(near[np.argmin(distance[near])])


def smallest_containing(boxes: np.ndarray, x: float, y: float) -> int | None:
    """The smallest box containing (x, y) (ties: the lower index), or None."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return None
    x0, y0, x1, y1 = boxes.T
    inside = np.where((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1))[0]
    if inside.size == 0:
        return None
    areas = (x1 - x0)[inside] * (y1 - y0)[inside]
    return int(inside[np.argmin(areas)])


def box_at(boxes: np.ndarray, x: float, y: float, tolerance: float = 3.0) -> int | None:
    """The index of the box the user pointed at, or None.

    A click on a box's outline (within ``tolerance``) picks that box, the nearest outline
    winning, so any box can be reached even inside a larger one. A click elsewhere picks the
    smallest box containing the point (the most specific one). Ties go to the lower index
    (callers pass boxes best first).
    """
    hit = on_border(boxes, x, y, tolerance)
    return hit if hit is not None else smallest_containing(boxes, x, y)


def pick(groups: list[tuple[str, np.ndarray, np.ndarray]], x: float, y: float,
         tolerance: float = 3.0) -> tuple[str, int] | None:
    """Hit-test several groups of boxes: ``groups`` is a list of ``(kind, boxes (N, 4),
    ids (N,))`` in priority order. An outline within ``tolerance`` wins first (the first group
    with one), then the smallest containing box (the first group with one); the result is
    ``(kind, id)`` (ids map a group's rows back to whatever the boxes stand for)."""
    for finder in (lambda b: on_border(b, x, y, tolerance),
                   lambda b: smallest_containing(b, x, y)):
        for kind, boxes, ids in groups:
            hit = finder(boxes)
            if hit is not None:
                return kind, int(np.asarray(ids)[hit])
    return None
