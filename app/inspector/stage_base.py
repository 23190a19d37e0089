"""The vocabulary the stages share: what the user chose (options, the clicked item), what a
stage is, and small helpers for captions and info tables. No Qt.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import box_iou

from engine.detector.trace import Trace

from .ground_truth import GroundTruth
from .hit_testing import pick
from .scene import FADED, PALETTE, BoxLayer, Scene, palette

# Text labels drawn on the image at most (the best-scoring first); the rest are in the info.
MAX_LABELS = 20


@dataclass
class ViewOptions:
    """The per-stage choices in the side panel.

    ``level``: the FPN level (position in ``trace.levels``) the anchors stage shows;
    ``level_filter``: -1 for all levels, else the one level the matching and pre-NMS stages
    show; ``show_suppressed``: draw what NMS removed; ``show_ignored``: draw the anchors between
    the matching thresholds; ``sampled_only``: only the sampled mini-batch (negatives included);
    ``max_boxes``: in stages with hundreds of boxes, draw only the best this-many of each kind
    (the caption says so; counts always cover all of them).
    """

    level: int = 0
    level_filter: int = -1
    show_suppressed: bool = False  # survivors first: what NMS removed only on demand
    show_ignored: bool = False
    sampled_only: bool = False
    max_boxes: int = 150


@dataclass(frozen=True)
class Selection:
    """The item the user clicked. ``kind`` and what ``index`` points into:

    - ``"cell"``: an anchor grid cell (``level``, ``row``, ``col``; ``index`` unused);
    - ``"target"``: a row of ``trace.target_boxes``;
    - ``"anchor"``: a global anchor index (all levels concatenated);
    - ``"rpn"``: an RPN candidate (``trace.rpn`` arrays);
    - ``"proposal"``: a final proposal (``trace.rpn.proposals``, the box head's rows);
    - ``"candidate"``: a postprocessing candidate (``trace.postprocess`` arrays);
    - ``"detection"``: a row of ``trace.detections``.
    """

    kind: str
    index: int = -1
    level: int = -1
    row: int = -1
    col: int = -1


@dataclass
class Classes:
    """Detector class id -> display name and colour (0 is the background)."""

    names: dict[int, str] = field(default_factory=dict)
    colours: dict[int, str] = field(default_factory=dict)

    def name(self, class_id: int) -> str:
        return self.names.get(int(class_id), f"class {int(class_id)}")

    def colour(self, class_id: int) -> str:
        return self.colours.get(int(class_id)) or PALETTE[(int(class_id) - 1) % len(PALETTE)]


@dataclass
class StageContext:
    """Everything a stage needs to draw: the trace, class names, the image's labelled boxes
    (None when it has none), the options, the current selection (None: the stage's default)
    and the click tolerance in image pixels."""

    trace: Trace
    classes: Classes = field(default_factory=Classes)
    ground_truth: GroundTruth | None = None
    options: ViewOptions = field(default_factory=ViewOptions)
    selection: Selection | None = None
    tolerance: float = 3.0


@dataclass(frozen=True)
class Stage:
    """One step of the inspector. ``build`` draws it; ``select`` turns a click at image point
    (x, y) into a :class:`Selection` (None: nothing there). ``options`` names the
    :class:`ViewOptions` fields it uses; ``needs_target``: only for images with boxes."""

    key: str
    number: str
    title: str
    build: Callable[[StageContext], Scene]
    select: Callable[[StageContext, float, float], Selection | None]
    options: tuple[str, ...] = ()
    needs_target: bool = False

    @property
    def label(self) -> str:
        return f"{self.number}  {self.title}"

    def available(self, trace: Trace | None) -> bool:
        if trace is None:
            return False
        return not self.needs_target or trace.anchor_matching is not None


# ----------------------------------------------------------------------- helpers

# Values derived from the parts of a trace no setting changes (the levels and anchors, the
# matching), computed once per image: reruns build new Traces that share those parts.
_fixed_cache: dict = {"owner": None, "values": {}}


def fixed_value(trace: Trace, name: str, compute: Callable[[], object]):
    """``compute()`` once per image (per ``trace.levels`` object) and per ``name``."""
    if _fixed_cache["owner"] is not trace.levels:
        _fixed_cache["owner"], _fixed_cache["values"] = trace.levels, {}
    values = _fixed_cache["values"]
    if name not in values:
        values[name] = compute()
    return values[name]


def all_anchors(trace: Trace) -> torch.Tensor:
    """(R, 4) the anchors of every level, concatenated in level order (global anchor ids)."""
    return fixed_value(trace, "anchors", lambda: torch.cat([lv.anchors for lv in trace.levels]))


def level_colour(position: int) -> str:
    """The colour of FPN level ``position`` wherever levels are shown."""
    return palette(position)


def level_name(trace: Trace, position: int) -> str:
    return trace.levels[position].name if 0 <= position < len(trace.levels) else f"L{position}"


def counts_by_level(trace: Trace, levels: torch.Tensor) -> str:
    """"P2 12, P3 40, ..." for a tensor of level positions."""
    return ", ".join(f"{level.name} {int((levels == position).sum())}"
                     for position, level in enumerate(trace.levels))


def box_size(box) -> str:
    x0, y0, x1, y1 = (float(v) for v in box)
    return f"{x1 - x0:.0f}×{y1 - y0:.0f} px"


def box_text(box) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in box) + ")"


def resized_iou(trace: Trace, a, b) -> float:
    """IoU of two original-image boxes measured in the resized image, where NMS compared
    them."""
    sy, sx = trace.scale
    factor = torch.tensor([sx, sy, sx, sy])
    first = torch.as_tensor(a, dtype=torch.float32).reshape(1, 4) * factor
    second = torch.as_tensor(b, dtype=torch.float32).reshape(1, 4) * factor
    return float(box_iou(first, second)[0, 0])


def table(header: list[str], rows: list[list[str]]) -> str:
    """A small HTML table for the info panel (cells are escaped)."""
    head = "".join(f"<th align='left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table cellspacing='0' cellpadding='2'><tr>{head}</tr>{body}</table>"


def paragraph(*lines: str) -> str:
    """Escaped lines joined as one HTML paragraph."""
    return "<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>"


def title(text: str) -> str:
    return f"<p><b>{html.escape(text)}</b></p>"


def rows_of(boxes: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(boxes[mask] as an (N, 4) array, their indices)."""
    indices = torch.where(mask)[0]
    return boxes[indices].numpy().astype(np.float64).reshape(-1, 4), indices.numpy()


def nms_sets(stage, options) -> dict[str, torch.Tensor]:
    """An NMS stage's candidates (the RPN's proposals or the per-class detections: anything
    with ``nms_kept``, ``suppressed_by``, ``final`` and ``scores``), as index sets best first:
    ``final`` (kept and within the top-k), ``beyond`` (kept past the top-k), ``suppressed``;
    ``*_shown`` the drawn ones of each. ``options.max_boxes`` limits the drawn boxes of all
    three together, survivors first: the final ones, then those beyond the top-k, then (only
    when ``options.show_suppressed`` is on) the suppressed ones, each best first."""
    final = torch.zeros_like(stage.nms_kept)
    final[stage.final] = True
    sets = {"final": stage.final,
            "beyond": best_first(torch.where(stage.nms_kept & ~final)[0], stage.scores),
            "suppressed": best_first(torch.where(stage.suppressed_by >= 0)[0], stage.scores)}
    left = max(0, int(options.max_boxes))
    for name in ("final", "beyond", "suppressed"):
        shown = sets[name][:left] if name != "suppressed" or options.show_suppressed \
            else sets[name][:0]
        sets[f"{name}_shown"] = shown
        left -= shown.numel()
    return sets


def nms_drawn_note(sets: dict[str, torch.Tensor], options) -> str:
    """What an NMS stage's caption says about the boxes not drawn (see :func:`nms_sets`)."""
    names = ("final", "beyond", "suppressed")
    total = sum(sets[name].numel() for name in names
                if name != "suppressed" or options.show_suppressed)
    drawn = sum(sets[f"{name}_shown"].numel() for name in names)
    note = f" ({drawn} of {total} drawn, survivors first)" if drawn < total else ""
    if not options.show_suppressed and sets["suppressed"].numel():
        note += "; the suppressed are hidden (tick Show suppressed)"
    return note


def nms_faded_layers(boxes: torch.Tensor, sets: dict[str, torch.Tensor], alpha: float,
                     beyond: str) -> list[BoxLayer]:
    """What an NMS stage draws behind its survivors: the suppressed boxes faded, and those
    kept past the top-k (named ``beyond``) faded and dashed. ``sets`` from :func:`nms_sets`."""
    return [BoxLayer(boxes[sets["suppressed_shown"]].numpy(), FADED, alpha=alpha,
                     name="suppressed"),
            BoxLayer(boxes[sets["beyond_shown"]].numpy(), FADED, dashed=True, alpha=alpha,
                     name=beyond)]


def nms_select(stage, kind: str, ctx: StageContext, x: float, y: float) -> Selection | None:
    """The drawn box of an NMS stage (see :func:`nms_sets`) under ``(x, y)``, as a selection
    of ``kind`` ("rpn" or "candidate") with its candidate index."""
    sets = nms_sets(stage, ctx.options)
    groups = [(kind, stage.boxes[sets[name]].numpy(), sets[name].numpy())
              for name in ("final_shown", "beyond_shown", "suppressed_shown")]
    hit = pick(groups, x, y, ctx.tolerance)
    return None if hit is None else Selection(*hit)


def best_first(indices: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``indices`` ordered by decreasing ``scores[indices]`` (hit tests prefer the best)."""
    if indices.numel() == 0:
        return indices
    return indices[torch.argsort(scores[indices], descending=True, stable=True)]


def limited(indices: torch.Tensor, scores: torch.Tensor, limit: int) -> torch.Tensor:
    """The best ``limit`` of ``indices`` by ``scores``, best first."""
    return best_first(indices, scores)[: max(0, int(limit))]


def drawn_note(total: int, limit: int) -> str:
    """" (best N drawn)" when only some of ``total`` boxes are drawn, else ""."""
    return f" (best {limit} drawn)" if total > limit else ""


def valid_selection(selection: Selection | None, kind: str, count: int) -> Selection | None:
    """``selection`` if it is of ``kind`` and its index is below ``count``, else None."""
    if selection is None or selection.kind != kind or not 0 <= selection.index < count:
        return None
    return selection
