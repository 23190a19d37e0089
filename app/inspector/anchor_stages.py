"""Stages 1 and 2: the anchors of one FPN level with its objectness, and how the anchors
match the image's labelled boxes. No Qt."""

from __future__ import annotations

import numpy as np
import torch

from engine.detector.trace import Trace
from engine.detector.trace_queries import (
    anchor_cell_at,
    anchor_level,
    best_anchors_per_box,
    cell_anchor_indices,
)

from .hit_testing import pick
from .scene import (
    FOUND,
    HIGHLIGHT,
    IGNORED,
    MISSED,
    NEGATIVE,
    BoxLayer,
    Heatmap,
    Lattice,
    LegendEntry,
    PointLayer,
    Scene,
    TextLabel,
    palette,
)
from .stage_base import (
    Selection,
    StageContext,
    all_anchors,
    box_size,
    box_text,
    drawn_note,
    fixed_value,
    level_colour,
    limited,
    paragraph,
    table,
    title,
    valid_selection,
)


def _level_position(trace: Trace, position: int) -> int:
    return min(max(int(position), 0), len(trace.levels) - 1)


def _cell_probs(trace: Trace, position: int) -> torch.Tensor:
    """(H, W, A) objectness probabilities of one level's anchors."""
    level = trace.levels[position]
    height, width = level.feature_size
    return torch.sigmoid(level.objectness.float()).view(height, width, -1)


def describe_anchor(trace: Trace, anchor: int) -> dict:
    """Where global anchor ``anchor`` sits: level position and name, cell, size and ratio."""
    position, within = anchor_level(trace, anchor)
    level = trace.levels[position]
    per_cell = level.anchor_sizes.numel()
    cell, k = divmod(within, per_cell)
    row, col = divmod(cell, level.feature_size[1])
    return {"level": position, "name": level.name, "row": row, "col": col, "k": k,
            "size": float(level.anchor_sizes[k]), "ratio": float(level.anchor_ratios[k])}


# ----------------------------------------------------------------------- 1: anchors

GRID_NOTE = ("squares centred on anchor centres, (column, row) × stride {stride} px: "
             "the grid starts half a cell above and left of the image")


def anchors_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    position = _level_position(trace, ctx.options.level)
    level = trace.levels[position]
    height, width = level.feature_size
    per_cell = level.anchor_sizes.numel()
    probs = _cell_probs(trace, position)
    best = probs.amax(dim=2)
    sy, sx = trace.scale
    stride_y, stride_x = level.stride
    # Cell (i, j)'s anchors are centred at (j, i) * stride in the resized image; its heat-map
    # square and grid lines are centred there too.
    step = (stride_x / sx, stride_y / sy)
    origin = (-0.5 * step[0], -0.5 * step[1])
    rect = (origin[0], origin[1], origin[0] + width * step[0], origin[1] + height * step[1])
    selection = ctx.selection
    if selection is None or selection.kind != "cell" or selection.level != position or not (
            0 <= selection.row < height and 0 <= selection.col < width):
        flat = int(best.flatten().argmax())
        selection = Selection("cell", level=position, row=flat // width, col=flat % width)
    row, col = selection.row, selection.col
    indices = cell_anchor_indices(level, row, col)
    scene = Scene(heatmap=Heatmap(best.numpy(), rect),
                  lattice=Lattice(origin, step, (width + 1, height + 1)))
    for k, index in enumerate(indices.tolist()):
        scene.layers.append(BoxLayer(level.anchors[index][None].numpy().astype(np.float64),
                                     palette(k), width=2, name=f"anchor {k}"))
    centre = np.array([[col * step[0], row * step[1]]])
    scene.layers.append(PointLayer(centre, HIGHLIGHT, radius=3, name="cell centre"))
    scene.legend = [
        LegendEntry(palette(k), f"{float(size):g} px, ratio {float(ratio):g} (h/w)")
        for k, (size, ratio) in enumerate(zip(level.anchor_sizes, level.anchor_ratios))
    ] + [LegendEntry("#ff8000", "objectness of the cell's best anchor", "fill")]
    best_value = float(best.max())
    best_cell = divmod(int(best.flatten().argmax()), width)
    # Said on the picture too: a grid half a cell up and left of the image looks like a
    # registration bug to whoever does not know where anchors are centred.
    scene.labels.append(TextLabel(
        origin[0], origin[1], GRID_NOTE.format(stride=stride_x), "#ffd060", focus=True))
    scene.caption = [
        f"1 · Anchors of {level.name}: stride {stride_x} px in the resized image (×{sx:.3g}), "
        f"{width}×{height} cells × {per_cell} anchors = {level.num_anchors} anchors.",
        f"Heat: the objectness (sigmoid) of each cell's best anchor; highest {best_value:.2f} at "
        f"cell {best_cell}. Each square is centred where its anchors are centred, (column, row) "
        f"× stride (torchvision's grid, from the image's top-left corner), so the grid reaches "
        f"half a cell beyond the image's top and left edges. Click a location to see its "
        f"anchors.",
    ]
    rows = [[str(k), f"{float(level.anchor_sizes[k]):g}", f"{float(level.anchor_ratios[k]):g}",
             box_size(level.anchors[index]), f"{float(probs[row, col, k]):.3f}"]
            for k, index in enumerate(indices.tolist())]
    scene.info = (
        title(f"{level.name} cell (row {row}, column {col})")
        + paragraph(f"centre ({col * step[0]:.1f}, {row * step[1]:.1f}) px in the image")
        + table(["#", "size", "h/w", "box", "objectness"], rows)
    )
    return scene


def anchors_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    trace = ctx.trace
    position = _level_position(trace, ctx.options.level)
    cell = anchor_cell_at(trace.levels[position], trace.scale, x, y)
    if cell is None:
        return None
    return Selection("cell", level=position, row=cell[0], col=cell[1])


# ----------------------------------------------------------------------- 2: matching


def _level_mask(trace: Trace, level_filter: int) -> torch.Tensor:
    mask = torch.ones(trace.num_anchors, dtype=torch.bool)
    if 0 <= level_filter < len(trace.levels):
        mask[:] = False
        level = trace.levels[level_filter]
        mask[level.first_anchor:level.first_anchor + level.num_anchors] = True
    return mask


def _target_name(ctx: StageContext, row: int) -> str:
    return ctx.classes.name(int(ctx.trace.target_labels[row]))


def _matching_sets(ctx: StageContext) -> dict[str, torch.Tensor]:
    """Anchor indices drawn as positive, ignored and negative under the current options."""
    trace, options = ctx.trace, ctx.options
    matching = trace.anchor_matching
    in_level = _level_mask(trace, options.level_filter)
    positive = (matching.labels == 1) & in_level
    if options.sampled_only:
        positive &= matching.sampled_positive
        ignored = torch.zeros_like(positive)
        negative = matching.sampled_negative & in_level
    else:
        ignored = (matching.labels == -1) & in_level if options.show_ignored else \
            torch.zeros_like(positive)
        negative = torch.zeros_like(positive)  # tens of thousands: only the sampled ones
    # Best first by IoU; the ignored ones (often thousands) limited to the best max_boxes.
    return {"positive": limited(torch.where(positive)[0], matching.best_iou, positive.numel()),
            "ignored": limited(torch.where(ignored)[0], matching.best_iou, options.max_boxes),
            "negative": limited(torch.where(negative)[0], matching.best_iou, negative.numel())}


def matching_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    matching = trace.anchor_matching
    anchors = all_anchors(trace)
    sets = _matching_sets(ctx)
    scene = Scene()
    scene.layers.append(BoxLayer(anchors[sets["ignored"]].numpy(), IGNORED, alpha=0.5,
                                 name="ignored"))
    scene.layers.append(BoxLayer(anchors[sets["negative"]].numpy(), NEGATIVE, alpha=0.8,
                                 name="negative"))
    positive = sets["positive"]
    boxes = trace.target_boxes
    for row in range(boxes.shape[0]):
        mine = positive[matching.matched_box[positive] == row]
        scene.layers.append(BoxLayer(anchors[mine].numpy(), palette(row), name=f"positive {row}"))
    best = fixed_value(trace, "best anchors", lambda: best_anchors_per_box(trace, k=3))
    uncovered = set(matching.uncovered.tolist())
    best_boxes = anchors[best.anchors.reshape(-1)].numpy() if best.anchors.numel() else \
        np.zeros((0, 4))
    scene.layers.append(BoxLayer(best_boxes, HIGHLIGHT, width=1.5, dashed=True,
                                 name="best anchors"))
    for row in range(boxes.shape[0]):
        scene.layers.append(BoxLayer(boxes[row][None].numpy(), palette(row), width=3.5,
                                     name=f"target {row}"))
        scene.labels.append(TextLabel(
            float(boxes[row][0]), float(boxes[row][3]),
            f"{_target_name(ctx, row)} {float(matching.box_best_iou[row]):.2f}",
            MISSED if row in uncovered else FOUND, focus=True))
    selection = ctx.selection
    if valid_selection(selection, "anchor", trace.num_anchors):
        scene.layers.append(BoxLayer(anchors[selection.index][None].numpy(), HIGHLIGHT,
                                     width=3, name="selected"))
    elif valid_selection(selection, "target", boxes.shape[0]):
        # The clicked box's best anchors, each with its IoU (drawn on top of everything).
        row = selection.index
        mine = best.anchors[row]
        scene.layers.append(BoxLayer(anchors[mine].numpy(), HIGHLIGHT, width=2, dashed=True,
                                     name="anchor"))
        scene.layers.append(BoxLayer(boxes[row][None].numpy(), HIGHLIGHT, width=3,
                                     name="selected"))
        for anchor, iou in zip(mine.tolist(), best.ious[row].tolist()):
            scene.labels.append(TextLabel(float(anchors[anchor][0]), float(anchors[anchor][1]),
                                          f"IoU {iou:.2f}", HIGHLIGHT, focus=True))
    counts = [int((matching.labels == value).sum()) for value in (1, 0, -1)]
    ignored_total = int(((matching.labels == -1) & _level_mask(trace, ctx.options.level_filter))
                        .sum())
    scene.caption = [
        f"2 · Anchor matching: IoU ≥ {matching.fg_iou_thresh:g} positive, < "
        f"{matching.bg_iou_thresh:g} negative, in between ignored: {counts[0]} positive, "
        f"{counts[1]} negative, {counts[2]} ignored.",
        f"Sampled for the RPN loss: {int(matching.sampled_positive.sum())} positive + "
        f"{int(matching.sampled_negative.sum())} negative. Boxes no anchor reaches "
        f"{matching.fg_iou_thresh:g} with (red label): {len(uncovered)} of {boxes.shape[0]}."
        + (drawn_note(ignored_total, ctx.options.max_boxes).replace("best", "ignored: best")
           if ctx.options.show_ignored and not ctx.options.sampled_only else ""),
    ]
    scene.legend = [
        LegendEntry(palette(0), "labelled box (thick) and its positive anchors (thin)"),
        LegendEntry(IGNORED, "ignored"),
        LegendEntry(NEGATIVE, "sampled negative (with 'sampled only')"),
        LegendEntry(HIGHLIGHT, "each box's 3 best anchors", "dashed"),
        LegendEntry(FOUND, "label: best anchor IoU, an anchor covers it", "fill"),
        LegendEntry(MISSED, f"label: no anchor reaches {matching.fg_iou_thresh:g}", "fill"),
    ]
    scene.info = _matching_info(ctx, best, anchors) + _level_count_table(trace)
    return scene


def _level_count_table(trace: Trace) -> str:
    matching = trace.anchor_matching
    rows = []
    for level in trace.levels:
        part = slice(level.first_anchor, level.first_anchor + level.num_anchors)
        labels = matching.labels[part]
        rows.append([level.name, str(int((labels == 1).sum())), str(int((labels == -1).sum())),
                     str(int((labels == 0).sum())),
                     f"{int(matching.sampled_positive[part].sum())} + "
                     f"{int(matching.sampled_negative[part].sum())}"])
    return title("Per level") + table(["level", "positive", "ignored", "negative", "sampled"],
                                      rows)


def _matching_info(ctx: StageContext, best, anchors: torch.Tensor) -> str:
    trace, selection = ctx.trace, ctx.selection
    matching = trace.anchor_matching
    if valid_selection(selection, "target", trace.target_boxes.shape[0]):
        row = selection.index
        rows = []
        for anchor, iou in zip(best.anchors[row].tolist(), best.ious[row].tolist()):
            where = describe_anchor(trace, anchor)
            label = {1: "positive", 0: "negative", -1: "ignored"}[int(matching.labels[anchor])]
            rows.append([where["name"], f"({where['row']}, {where['col']})",
                         f"{where['size']:g}", f"{where['ratio']:g}", f"{iou:.3f}", label])
        matched = int(((matching.labels == 1) & (matching.matched_box == row)).sum())
        return (title(f"Box {row} ({_target_name(ctx, row)}), {box_size(trace.target_boxes[row])}")
                + paragraph(f"{matched} positive anchors; its best anchors:")
                + table(["level", "cell", "size", "h/w", "IoU", "label"], rows))
    if valid_selection(selection, "anchor", trace.num_anchors):
        anchor = selection.index
        where = describe_anchor(trace, anchor)
        label = {1: "positive", 0: "negative", -1: "ignored"}[int(matching.labels[anchor])]
        box = int(matching.matched_box[anchor])
        return (title(f"Anchor {anchor}: {label}")
                + paragraph(f"{where['name']} cell ({where['row']}, {where['col']}), size "
                            f"{where['size']:g}, ratio {where['ratio']:g}",
                            f"box {box_text(anchors[anchor])}",
                            f"IoU {float(matching.best_iou[anchor]):.3f} with box {box}"
                            + (" (sampled)" if bool(matching.sampled_positive[anchor]
                                                    | matching.sampled_negative[anchor]) else "")))
    return paragraph("Click a box for its best anchors, or an anchor for its match.")


def matching_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    trace = ctx.trace
    anchors = all_anchors(trace)
    sets = _matching_sets(ctx)
    targets = trace.target_boxes.numpy()
    groups = [("target", targets, np.arange(targets.shape[0]))]
    for name in ("positive", "negative", "ignored"):
        indices = sets[name]  # best first already
        groups.append(("anchor", anchors[indices].numpy(), indices.numpy()))
    hit = pick(groups, x, y, ctx.tolerance)
    return None if hit is None else Selection(hit[0], hit[1])


__all__ = ["anchors_scene", "anchors_select", "describe_anchor", "level_colour",
           "matching_scene", "matching_select"]
