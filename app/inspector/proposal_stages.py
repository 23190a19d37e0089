"""Stages 3 and 4: the RPN's proposals before NMS, through NMS, the final ones, and the FPN level
each is pooled from (with its RoIAlign grid). No Qt."""

from __future__ import annotations

import numpy as np
import torch

from engine.detector.trace import Trace
from engine.detector.trace_queries import proposal_sampling_grid

from .anchor_stages import describe_anchor
from .hit_testing import pick
from .scene import (
    FADED,
    GRID,
    HIGHLIGHT,
    MISSED,
    SUPPRESSOR,
    BoxLayer,
    Chart,
    LegendEntry,
    LineLayer,
    PointLayer,
    Scene,
    score_colour,
)
from .stage_base import (
    Selection,
    StageContext,
    box_size,
    box_text,
    counts_by_level,
    drawn_note,
    level_colour,
    level_name,
    limited,
    nms_drawn_note,
    nms_faded_layers,
    nms_select,
    nms_sets,
    paragraph,
    resized_iou,
    table,
    title,
    valid_selection,
)

SCORE_BINS = 10


def _level_legend(trace: Trace) -> list[LegendEntry]:
    return [LegendEntry(level_colour(position), level.name)
            for position, level in enumerate(trace.levels)]


def _by_level_layers(trace: Trace, indices: torch.Tensor, name: str, **style) -> list[BoxLayer]:
    rpn = trace.rpn
    layers = []
    for position in range(len(trace.levels)):
        mine = indices[rpn.levels[indices] == position]
        layers.append(BoxLayer(rpn.boxes[mine].numpy().astype(np.float64),
                               level_colour(position), name=f"{name} {trace.levels[position].name}",
                               **style))
    return layers


def _candidate_info(trace: Trace, index: int) -> list[str]:
    rpn = trace.rpn
    anchor = describe_anchor(trace, int(rpn.anchors[index]))
    lines = [
        f"{level_name(trace, int(rpn.levels[index]))}, objectness {float(rpn.scores[index]):.3f} "
        f"(logit {float(rpn.logits[index]):.2f})",
        f"box {box_text(rpn.boxes[index])}, {box_size(rpn.boxes[index])}",
        f"from anchor {int(rpn.anchors[index])}: cell ({anchor['row']}, {anchor['col']}), size "
        f"{anchor['size']:g}, ratio {anchor['ratio']:g} (dashed)",
    ]
    if not bool(rpn.valid[index]):
        lines.append(f"dropped before NMS: smaller than {rpn.min_size:g} px or objectness "
                     f"below {rpn.score_thresh:g}")
    return lines


def _anchor_box(trace: Trace, index: int) -> np.ndarray:
    position, within = _anchor_position(trace, int(trace.rpn.anchors[index]))
    return trace.levels[position].anchors[within][None].numpy().astype(np.float64)


def _anchor_position(trace: Trace, anchor: int) -> tuple[int, int]:
    where = describe_anchor(trace, anchor)
    level = trace.levels[where["level"]]
    return where["level"], anchor - level.first_anchor


# ----------------------------------------------------------------------- 3a: before NMS


def _pre_nms_candidates(ctx: StageContext) -> torch.Tensor:
    """The valid candidates of the chosen level(s), all of them."""
    rpn = ctx.trace.rpn
    mask = rpn.valid.clone()
    if 0 <= ctx.options.level_filter < len(ctx.trace.levels):
        mask &= rpn.levels == ctx.options.level_filter
    return torch.where(mask)[0]


def _pre_nms_shown(ctx: StageContext) -> torch.Tensor:
    """The drawn ones: the best ``max_boxes``, best first."""
    return limited(_pre_nms_candidates(ctx), ctx.trace.rpn.scores, ctx.options.max_boxes)


def pre_nms_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    rpn = trace.rpn
    candidates = _pre_nms_candidates(ctx)
    shown = _pre_nms_shown(ctx)
    scene = Scene(layers=_by_level_layers(trace, shown.flip(0), "candidates", alpha=0.7),
                  legend=_level_legend(trace))
    selection = valid_selection(ctx.selection, "rpn", rpn.boxes.shape[0])
    if selection is not None:
        scene.layers.append(BoxLayer(_anchor_box(trace, selection.index), HIGHLIGHT, width=1.5,
                                     dashed=True, name="anchor"))
        scene.layers.append(BoxLayer(rpn.boxes[selection.index][None].numpy(), HIGHLIGHT,
                                     width=3, name="selected"))
        scene.info = (title(f"Candidate {selection.index}")
                      + paragraph(*_candidate_info(trace, selection.index)))
    else:
        scene.info = paragraph("Click a box: its level, objectness, and the anchor it was "
                               "regressed from.")
    scene.caption = [
        f"3a · Before NMS: the top {rpn.pre_nms_top_n} anchors of each level by objectness, moved "
        f"by the RPN's box deltas and clipped: {rpn.boxes.shape[0]} candidates; "
        f"{int(rpn.valid.sum())} at least {rpn.min_size:g} px with objectness ≥ "
        f"{rpn.score_thresh:g}.",
        f"Shown by level: {counts_by_level(trace, rpn.levels[candidates])}"
        f"{drawn_note(candidates.numel(), ctx.options.max_boxes)}.",
    ]
    return scene


def pre_nms_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    rpn = ctx.trace.rpn
    shown = _pre_nms_shown(ctx)
    hit = pick([("rpn", rpn.boxes[shown].numpy(), shown.numpy())], x, y, ctx.tolerance)
    return None if hit is None else Selection(*hit)


# ----------------------------------------------------------------------- 3b: NMS


def _suppressed_by(post_or_rpn, index: int) -> torch.Tensor:
    return torch.where(post_or_rpn.suppressed_by == index)[0]


def rpn_nms_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    rpn = trace.rpn
    sets = nms_sets(ctx.trace.rpn, ctx.options)
    suppressed = sets["suppressed"]
    scene = Scene()
    scene.layers += nms_faded_layers(rpn.boxes, sets, 0.45, "kept beyond the top-k")
    scene.layers += _by_level_layers(trace, sets["final_shown"].flip(0), "proposals")
    selection = valid_selection(ctx.selection, "rpn", rpn.boxes.shape[0])
    scene.info = paragraph("Click a grey box to see which proposal suppressed it and their "
                           "IoU; click a coloured one to see what it suppressed.")
    if selection is not None:
        _nms_selection(scene, trace, rpn, selection.index, rpn.nms_thresh,
                       lambda i: level_name(trace, int(rpn.levels[i])), "level",
                       final_rank=_rank(rpn.final, selection.index))
    scene.legend = [*_level_legend(trace),
                    LegendEntry(FADED, "suppressed by NMS"),
                    LegendEntry(FADED, f"kept, beyond the top {rpn.post_nms_top_n}", "dashed"),
                    LegendEntry(SUPPRESSOR, "the suppressor of the clicked box")]
    scene.caption = [
        f"3b · NMS within each level at IoU {rpn.nms_thresh:g}: {int(rpn.nms_kept.sum())} of "
        f"{int(rpn.valid.sum())} kept, {suppressed.numel()} suppressed; the best "
        f"{rpn.post_nms_top_n} kept become the {rpn.final.numel()} proposals.",
        f"Proposals by level: {counts_by_level(trace, rpn.levels[rpn.final])}"
        f"{nms_drawn_note(sets, ctx.options)}.",
    ]
    return scene


def _rank(order: torch.Tensor, index: int) -> int:
    where = torch.where(order == index)[0]
    return int(where[0]) if where.numel() else -1


def _nms_selection(scene: Scene, trace: Trace, stage, index: int, threshold: float,
                   group_name, group_word: str, final_rank: int) -> None:
    """Draw and explain one NMS candidate: its suppressor and their IoU when it was removed,
    else what it removed. ``stage`` is the trace's RPN or postprocess part."""
    boxes, scores = stage.boxes, stage.scores
    suppressor = int(stage.suppressed_by[index])
    heading = (f"Candidate {index} ({group_name(index)}), score {float(scores[index]):.3f}, "
               f"{box_size(boxes[index])}")
    if suppressor >= 0:
        iou = resized_iou(trace, boxes[index], boxes[suppressor])
        scene.layers.append(BoxLayer(boxes[suppressor][None].numpy(), SUPPRESSOR, width=3,
                                     name="suppressor"))
        scene.layers.append(BoxLayer(boxes[index][None].numpy(), HIGHLIGHT, width=2.5,
                                     dashed=True, name="selected"))
        scene.info = title(heading) + paragraph(
            f"suppressed by candidate {suppressor} (yellow), same {group_word}, score "
            f"{float(scores[suppressor]):.3f}:",
            f"IoU {iou:.3f} > {threshold:g} (in the resized image, where NMS compared them)",
        )
        return
    removed = _suppressed_by(stage, index)
    scene.layers.append(BoxLayer(boxes[removed].numpy(), MISSED, dashed=True, alpha=0.8,
                                 name="removed by selected"))
    scene.layers.append(BoxLayer(boxes[index][None].numpy(), HIGHLIGHT, width=3,
                                 name="selected"))
    kept = bool(stage.nms_kept[index])
    status = ("kept by NMS" + (f", rank {final_rank + 1} of the output" if final_rank >= 0
                               else ", but beyond the top-k") if kept
              else "not considered by NMS (too small or below the score threshold)")
    rows = [[str(int(i)), f"{float(scores[i]):.3f}",
             f"{resized_iou(trace, boxes[index], boxes[i]):.3f}"]
            for i in removed[:12].tolist()]
    scene.info = title(heading) + paragraph(status, f"it suppressed {removed.numel()} "
                                                    "candidates (red dashed)")
    if rows:
        scene.info += table(["candidate", "score", "IoU"], rows)


def rpn_nms_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    return nms_select(ctx.trace.rpn, "rpn", ctx, x, y)


# ----------------------------------------------------------------------- 3c: final proposals


def final_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    rpn = trace.rpn
    proposals = rpn.proposals
    scores = rpn.scores[rpn.final]
    shown = ctx.options.max_boxes
    scene = Scene()
    # Low scores first, so the confident proposals are drawn on top.
    bins = torch.clamp((scores * SCORE_BINS).long(), max=SCORE_BINS - 1)
    for value in range(SCORE_BINS):
        mine = bins[:shown] == value
        scene.layers.append(BoxLayer(proposals[:shown][mine].numpy().astype(np.float64),
                                     score_colour((value + 0.5) / SCORE_BINS),
                                     name=f"objectness {value / SCORE_BINS:.1f}"))
    selection = valid_selection(ctx.selection, "proposal", proposals.shape[0])
    if selection is not None:
        index = selection.index
        candidate = int(rpn.final[index])
        scene.layers.append(BoxLayer(proposals[index][None].numpy(), HIGHLIGHT, width=3,
                                     name="selected"))
        scene.info = title(f"Proposal {index} (rank {index + 1})") + paragraph(
            *_candidate_info(trace, candidate))
    else:
        scene.info = paragraph("Click a proposal for its objectness and level.")
    scene.legend = [LegendEntry(score_colour(v), f"objectness {v:g}") for v in
                    (0.0, 0.25, 0.5, 0.75, 1.0)]
    low = float(scores.min()) if scores.numel() else 0.0
    scene.caption = [
        f"3c · The {proposals.shape[0]} proposals the box head receives, coloured by "
        f"objectness (dark low, yellow high; lowest {low:.2f})"
        f"{drawn_note(proposals.shape[0], shown)}.",
        f"By level: {counts_by_level(trace, rpn.levels[rpn.final])}.",
    ]
    return scene


def _proposal_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    """Final proposals are in decreasing objectness already: index order is best first, and
    the drawn ones are the first ``max_boxes``."""
    proposals = ctx.trace.rpn.proposals[: ctx.options.max_boxes]
    hit = pick([("proposal", proposals.numpy(), np.arange(proposals.shape[0]))], x, y,
               ctx.tolerance)
    return None if hit is None else Selection(*hit)


final_select = _proposal_select


# ----------------------------------------------------------------------- 4: ROI levels


def roi_levels_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    levels, rpn = trace.roi_levels, trace.rpn
    proposals = rpn.proposals
    scene = Scene()
    names = levels.level_names
    ks = list(range(levels.k_min, levels.k_max + 1))
    shown = ctx.options.max_boxes
    for k, name in zip(ks, names):
        mine = levels.level[:shown] == k
        scene.layers.append(BoxLayer(proposals[:shown][mine].numpy().astype(np.float64),
                                     level_colour(k - levels.k_min), alpha=0.75,
                                     name=f"pooled from {name}"))
    counts = [int((levels.level == k).sum()) for k in ks]
    selection = valid_selection(ctx.selection, "proposal", proposals.shape[0])
    if selection is None and proposals.shape[0]:
        selection = Selection("proposal", 0)
    highlight = -1
    if selection is not None:
        highlight = int(levels.level[selection.index]) - levels.k_min
        _draw_pooling(scene, trace, selection.index)
    scene.chart = Chart("histogram", "Proposals per pooled level", list(names),
                        [float(c) for c in counts],
                        [level_colour(i) for i in range(len(names))], highlight,
                        y_label="proposals")
    scene.legend = [LegendEntry(level_colour(k - levels.k_min), f"{name} (stride {2 ** k})")
                    for k, name in zip(ks, names)]
    scene.legend += [LegendEntry(GRID, "RoIAlign bins (7×7)"),
                     LegendEntry(GRID, "bilinear sample points (2×2 per bin)", "dot"),
                     LegendEntry(FADED, "feature-map positions of that level", "dot")]
    scene.caption = [
        f"4 · ROI level (FPN eq. 1): k = ⌊{levels.canonical_level} + log2(√(wh) / "
        f"{levels.canonical_size})⌋ on the resized image, clamped to [{levels.k_min}, "
        f"{levels.k_max}]: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts))
        + f"{drawn_note(proposals.shape[0], shown)}.",
        "Click a proposal for its numbers and the 7×7 RoIAlign grid it is pooled on.",
    ]
    return scene


def _draw_pooling(scene: Scene, trace: Trace, index: int) -> None:
    levels, rpn = trace.roi_levels, trace.rpn
    pooling = proposal_sampling_grid(trace, index)
    grid = pooling.grid
    box = rpn.proposals[index]
    x0, y0, x1, y1 = (float(v) for v in box)
    gx0, gx1 = float(grid.x_edges[0]), float(grid.x_edges[-1])
    gy0, gy1 = float(grid.y_edges[0]), float(grid.y_edges[-1])
    lines = [(float(x), gy0, float(x), gy1) for x in grid.x_edges]
    lines += [(gx0, float(y), gx1, float(y)) for y in grid.y_edges]
    # The level's feature-map positions around the box: feature cell j is read at j * stride.
    sy, sx = trace.scale
    stride_y, stride_x = trace.levels[pooling.level].stride
    cols = np.arange(np.floor(gx0 * sx / stride_x) - 1, np.ceil(gx1 * sx / stride_x) + 2)
    rows = np.arange(np.floor(gy0 * sy / stride_y) - 1, np.ceil(gy1 * sy / stride_y) + 2)
    if cols.size * rows.size <= 40_000:
        fx, fy = np.meshgrid(cols * stride_x / sx, rows * stride_y / sy)
        scene.layers.append(PointLayer(np.stack([fx.ravel(), fy.ravel()], 1), FADED, radius=1.5,
                                       alpha=0.8, name="feature positions"))
    scene.layers.append(BoxLayer(box[None].numpy(), HIGHLIGHT, width=3, name="selected"))
    scene.layers.append(LineLayer(np.array(lines), GRID, alpha=0.9, name="roi bins"))
    scene.layers.append(PointLayer(grid.sample_points().numpy().astype(np.float64), GRID,
                                   radius=1.5, name="roi samples"))
    w_resized, h_resized = (x1 - x0) * sx, (y1 - y0) * sy
    sqrt_area = float(levels.sqrt_area[index])
    raw = float(levels.raw_level[index])
    floor = int(np.floor(raw))
    k = pooling.k
    clamp_note = "" if floor == k else f" → clamped to [{levels.k_min}, {levels.k_max}]: {k}"
    bin_w = (float(grid.x_edges[1]) - float(grid.x_edges[0])) * sx
    bin_h = (float(grid.y_edges[1]) - float(grid.y_edges[0])) * sy
    scene.info = title(f"Proposal {index}: pooled from {pooling.level_name}") + paragraph(
        f"objectness {float(rpn.scores[rpn.final[index]]):.3f}, box {box_text(box)}",
        f"w × h = {w_resized:.1f} × {h_resized:.1f} px in the resized image (×{sx:.3g})",
        f"√(w·h) = {sqrt_area:.1f}",
        f"k = ⌊{levels.canonical_level} + log2({sqrt_area:.1f} / {levels.canonical_size})⌋ = "
        f"⌊{raw:.3f}⌋ = {floor}{clamp_note}",
        f"→ {pooling.level_name}, stride {pooling.stride} px",
        f"RoIAlign: 7×7 bins of {bin_w:.1f}×{bin_h:.1f} resized px = "
        f"{bin_w / stride_x:.2f}×{bin_h / stride_y:.2f} feature cells, 2×2 bilinear samples per "
        "bin (196 reads)",
    )


roi_levels_select = _proposal_select
