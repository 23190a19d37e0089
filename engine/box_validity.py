"""Is a box usable? The one rule for the store, the format readers, the training targets check
and the inspector's ground truth.

A box is float ``x0, y0, x1, y1`` in pixel edges of the displayed image (see the architecture
notes: a box covering a W x H image is ``(0, 0, W, H)``). In this order, a box

1. with a coordinate that is not a finite number (NaN, infinity, text) is refused;
2. with ``x1 < x0`` or ``y1 < y0`` (inverted) is refused;
3. with ``x1 == x0`` or ``y1 == y0`` (zero area: a click without a drag) is refused;
4. when the image size is known: a box lying entirely outside the image is refused; one partly
   outside by more than ``tolerance`` pixels is clipped to the image (policy ``"clip"``: the
   format readers, which report the change) or refused (policy ``"reject"``: the training
   targets check and the inspector, which must not change the user's box). An overshoot within
   ``tolerance`` is float round-off, not a box outside: ``"clip"`` clips it silently,
   ``"reject"`` keeps it as it is. Without a known size (``width``/``height`` None) only
   negative coordinates are clipped.

The store checks rules 1-3 only (it does not know every image's size; policy ``"reject"``,
no size). The reasons read after the word "box" ("box has zero or negative size: ...").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Policy = Literal["reject", "clip"]

# Overshoots smaller than this (pixels) are float noise of normalized formats (YOLO's 0..1).
CLIP_TOLERANCE = 1e-6
# Training and the inspector accept half a pixel: converted annotations round to pixel centres.
TARGET_TOLERANCE = 0.5

NOT_FINITE = "coordinates are not finite numbers"
INVERTED = "has zero or negative size: inverted (x1 < x0 or y1 < y0; boxes are x0, y0, x1, y1)"
ZERO_AREA = "has zero or negative size: zero width or height (zero area)"


@dataclass(frozen=True)
class BoxCheck:
    """The outcome of :func:`check_box`: ``box`` to use (clipped under policy "clip") and
    ``problem`` None, or ``box`` None and ``problem`` the reason it is refused. ``clipped`` is
    True when clipping moved a coordinate by more than the tolerance (worth a report line)."""

    box: tuple[float, float, float, float] | None
    problem: str | None = None
    clipped: bool = False


def check_box(box: tuple[object, object, object, object], width: float | None = None,
              height: float | None = None, *, policy: Policy = "reject",
              tolerance: float = CLIP_TOLERANCE) -> BoxCheck:
    """Check ``box`` against the rules of the module docstring (``width``/``height``: the
    displayed image's size in pixels, None when unknown)."""
    coords = [_number(value) for value in box]
    if len(coords) != 4 or any(value is None or not math.isfinite(value) for value in coords):
        return BoxCheck(None, NOT_FINITE)
    x0, y0, x1, y1 = coords  # type: ignore[misc]
    if x1 < x0 or y1 < y0:
        return BoxCheck(None, INVERTED)
    if x1 == x0 or y1 == y0:
        return BoxCheck(None, ZERO_AREA)
    right = math.inf if width is None else float(width)
    bottom = math.inf if height is None else float(height)
    if width is not None and height is not None and (
            x0 >= right or y0 >= bottom or x1 <= 0 or y1 <= 0):
        return BoxCheck(None, f"lies entirely outside the {width}x{height} image")
    overshoot = max(-x0, -y0, x1 - right, y1 - bottom)
    if overshoot <= 0:
        return BoxCheck((x0, y0, x1, y1))
    if policy == "reject":
        if overshoot > tolerance and width is not None and height is not None:
            return BoxCheck(None, f"lies outside the {width}x{height} image")
        return BoxCheck((x0, y0, x1, y1))
    clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, right), min(y1, bottom))
    return BoxCheck(clipped, None, overshoot > tolerance)


def box_problem(box: tuple[object, object, object, object], width: float | None = None,
                height: float | None = None, *, tolerance: float = TARGET_TOLERANCE) -> str | None:
    """Why ``box`` is refused under policy "reject", or None when it is usable as it is."""
    return check_box(box, width, height, policy="reject", tolerance=tolerance).problem


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    try:
        return float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
