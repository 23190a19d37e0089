"""What a stage draws, as plain data: the canvas paints a :class:`Scene`, tests read it.

Coordinates are the original image's pixels (as the Trace's); widths and radii are screen
pixels, so lines stay thin at any zoom. Colours are ``"#rrggbb"`` strings. Layers are drawn in
list order (later on top); labels are drawn last, in screen space, so they stay legible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Distinct colours for levels, anchor shapes and target boxes (the overlays' palette).
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000",
)
POSITIVE = "#3cb44b"
NEGATIVE = "#4363d8"
IGNORED = "#f5a623"
MISSED = "#ff3030"
FOUND = "#3cff6a"
FADED = "#a0a0a0"
HIGHLIGHT = "#ffffff"
SUPPRESSOR = "#ffe119"
GRID = "#00e5ff"
# Viridis at five stops, for scores from 0 (dark blue) to 1 (yellow).
_VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
                    dtype=np.float64)


def palette(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def score_colour(value: float) -> str:
    """A colour for ``value`` in [0, 1] on the viridis scale (clamped)."""
    position = min(max(float(value), 0.0), 1.0) * (len(_VIRIDIS) - 1)
    low = min(int(position), len(_VIRIDIS) - 2)
    rgb = _VIRIDIS[low] + (_VIRIDIS[low + 1] - _VIRIDIS[low]) * (position - low)
    return "#{:02x}{:02x}{:02x}".format(*(round(v) for v in rgb))


def heat_rgba(values: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 4) uint8 RGBA: transparent black at 0 through red to
    opaque yellow at 1, so low objectness leaves the image visible."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    rgba = np.empty((*v.shape, 4), dtype=np.uint8)
    rgba[..., 0] = np.round(255 * np.minimum(1.0, 2 * v))
    rgba[..., 1] = np.round(255 * np.clip(2 * v - 1, 0.0, 1.0))
    rgba[..., 2] = 0
    rgba[..., 3] = np.round(255 * alpha * v)
    return rgba


@dataclass
class BoxLayer:
    """``boxes`` (N, 4) x0, y0, x1, y1, all drawn in one style."""

    boxes: np.ndarray
    colour: str
    width: float = 1.0
    alpha: float = 1.0
    dashed: bool = False
    name: str = ""


@dataclass
class PointLayer:
    """``points`` (N, 2) x, y drawn as dots of ``radius`` screen pixels."""

    points: np.ndarray
    colour: str
    radius: float = 2.0
    alpha: float = 1.0
    name: str = ""


@dataclass
class LineLayer:
    """``lines`` (N, 4) x0, y0, x1, y1 segments."""

    lines: np.ndarray
    colour: str
    width: float = 1.0
    alpha: float = 1.0
    name: str = ""


@dataclass
class Heatmap:
    """``values`` (H, W) in [0, 1] stretched over ``rect`` (x0, y0, x1, y1), one cell per
    value, drawn without smoothing (each cell is a feature-map position)."""

    values: np.ndarray
    rect: tuple[float, float, float, float]
    alpha: float = 0.55


@dataclass
class Lattice:
    """Grid lines ``step`` (x, y) apart starting at ``origin`` (x, y), ``count`` (nx, ny)
    lines per axis; the canvas draws it only where the lines are far enough apart on screen
    to be a grid rather than a grey wash."""

    origin: tuple[float, float]
    step: tuple[float, float]
    count: tuple[int, int]
    colour: str = "#ffffff"
    alpha: float = 0.25


@dataclass
class TextLabel:
    """``text`` with its top left at image point (x, y) (nudged on screen to stay inside the
    view), on a dark tag, in ``colour``. ``focus``: about the selected item or a labelled box,
    so never dimmed."""

    x: float
    y: float
    text: str
    colour: str = "#ffffff"
    alpha: float = 1.0
    focus: bool = False


@dataclass
class LegendEntry:
    """A swatch (``style``: "box", "dashed", "dot", "fill") in ``colour`` and its meaning."""

    colour: str
    text: str
    style: str = "box"


@dataclass
class Chart:
    """A bar chart beside the canvas. ``kind`` "bars" (one bar per label) or "histogram"
    (bars of counts); ``highlight`` the bar to emphasise (-1 for none)."""

    kind: str
    title: str
    labels: list[str]
    values: list[float]
    colours: list[str]
    highlight: int = -1
    y_label: str = ""
    y_max: float | None = None


@dataclass
class Scene:
    """Everything one stage shows: image overlays, the caption above the image, the legend
    under it, the info panel's HTML (about the clicked item), and an optional chart."""

    layers: list[BoxLayer | PointLayer | LineLayer] = field(default_factory=list)
    heatmap: Heatmap | None = None
    lattice: Lattice | None = None
    labels: list[TextLabel] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)
    info: str = ""
    chart: Chart | None = None

    def layer(self, name: str) -> BoxLayer | PointLayer | LineLayer:
        """The layer called ``name`` (for tests and the benchmark)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers: {[layer.name for layer in self.layers]}")

    def count(self, name: str) -> int:
        """How many items the layer ``name`` draws (0 when there is no such layer)."""
        for layer in self.layers:
            if layer.name == name:
                items = getattr(layer, "boxes", None)
                if items is None:
                    items = getattr(layer, "points", None)
                if items is None:
                    items = layer.lines
                return len(items)
        return 0


def as_boxes(values) -> np.ndarray:
    """Any (N, 4) tensor, array or list -> a float64 (N, 4) array (empty (0, 4) for none)."""
    array = np.asarray(values.numpy() if hasattr(values, "numpy") else values, dtype=np.float64)
    return array.reshape(-1, 4)
