"""Still pictures of a Trace, one per stage, for people without the GUI (``frcnn inspect``).

Each function takes the Trace and the image it was made from (as displayed, RGB) and returns
a new image with the stage drawn over it and a caption with the stage's numbers. Where a stage
has thousands of boxes only the best-scoring ``MAX_BOXES`` are drawn, and the caption says so.
The GUI draws the same stages interactively; these are for reports and scripts.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .trace import Trace

MAX_BOXES = 300
MAX_LABELS = 20
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128), (128, 128, 0),
]
TARGET_COLOUR = (0, 255, 0)
MISSED_COLOUR = (255, 0, 0)
FADED_COLOUR = (160, 160, 160)


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


class _Canvas:
    """The image enlarged to at least ``MIN_WIDTH`` pixels (so small images stay legible), with
    a line width and font sized to it; boxes are given in the image's own pixels. The caption
    goes in a band above the image, so it never hides what it describes."""

    MIN_WIDTH = 960

    def __init__(self, image: Image.Image) -> None:
        image = image.convert("RGB")
        self.zoom = max(1.0, self.MIN_WIDTH / image.width)
        if self.zoom > 1:
            size = (round(image.width * self.zoom), round(image.height * self.zoom))
            image = image.resize(size, Image.Resampling.BILINEAR)
        else:
            image = image.copy()
        self.image = image
        self.draw = ImageDraw.Draw(self.image)
        self.width = max(1, round(image.width / 480))
        self.font = ImageFont.load_default(size=max(12, round(image.width / 64)))

    def box(self, box, fill, width: int | None = None) -> None:
        x0, y0, x1, y1 = (float(v) * self.zoom for v in box)
        self.draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=fill,
                            width=width or self.width)

    def label(self, box, text: str, fill, below: bool = False) -> None:
        """``text`` at the box's top left (inside), or under it when ``below`` and there is
        room."""
        x0, y0, _, y1 = (float(v) * self.zoom for v in box)
        height = self.draw.textbbox((0, 0), text, font=self.font)[3]
        y = y1 + 2 if below and y1 + height + 2 < self.image.height else y0 + 1
        left, top, right, bottom = self.draw.textbbox((x0 + 1, y), text, font=self.font)
        self.draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
        self.draw.text((x0 + 1, y), text, fill=fill, font=self.font)

    def caption(self, lines: list[str]) -> Image.Image:
        """The picture with ``lines`` wrapped to its width in a dark band above it."""
        average = self.draw.textlength("abcdefghij", font=self.font) / 10
        wrapped = [part for line in lines
                   for part in textwrap.wrap(line, max(20, int(self.image.width / average) - 2))]
        line_height = self.draw.textbbox((0, 0), "Ag", font=self.font)[3] + 4
        band = line_height * len(wrapped) + 6
        picture = Image.new("RGB", (self.image.width, self.image.height + band), (24, 24, 24))
        picture.paste(self.image, (0, band))
        draw = ImageDraw.Draw(picture)
        for index, line in enumerate(wrapped):
            draw.text((6, 3 + index * line_height), line, fill=(255, 255, 255), font=self.font)
        return picture


def _best(scores: torch.Tensor, limit: int = MAX_BOXES) -> torch.Tensor:
    """Indices of the ``limit`` highest scores, best last (drawn on top)."""
    order = torch.argsort(scores, descending=True)[:limit]
    return order.flip(0)


def _shown(total: int) -> str:
    return f" (best {MAX_BOXES} drawn)" if total > MAX_BOXES else ""


def anchors_overlay(trace: Trace, image: Image.Image, level_index: int) -> Image.Image:
    """One level: its objectness (the best anchor per cell, sigmoid) as a heat map, and the
    cell's anchors drawn at the cell the RPN likes most and at the image centre."""
    level = trace.levels[level_index]
    height, width = level.feature_size
    per_cell = torch.sigmoid(level.objectness.view(height, width, -1)).amax(dim=2)
    sy, sx = trace.scale
    # The feature grid covers the padded image; cell (i, j) sits at (j, i) * stride there.
    covered = (round(width * level.stride[1] / sx), round(height * level.stride[0] / sy))
    heat = Image.fromarray((per_cell.numpy() * 255).astype(np.uint8)).resize(
        covered, Image.Resampling.NEAREST).crop((0, 0, *image.size))
    red = Image.merge("RGB", (heat, Image.new("L", heat.size), Image.new("L", heat.size)))
    canvas = _Canvas(Image.blend(image.convert("RGB"), red, 0.45))
    per_location = level.anchor_sizes.numel()
    anchors = level.anchors.view(height * width, per_location, 4)
    best_cell = int(per_cell.flatten().argmax())
    centre_cell = (height // 2) * width + width // 2
    for cell in (centre_cell, best_cell):
        for k in range(per_location):
            canvas.box(anchors[cell, k], colour(k))
    shapes = ", ".join(
        f"{size:g}px {ratio:g}" for size, ratio in zip(level.anchor_sizes.tolist(),
                                                       level.anchor_ratios.tolist())
    )
    return canvas.caption([
        f"{level.name}: stride {level.stride[1]}, {width}x{height} cells, "
        f"{per_location} anchors per cell ({shapes}), {level.num_anchors} anchors",
        f"red: objectness of the best anchor per cell (max {float(per_cell.max()):.2f}); "
        "boxes: the anchors of the centre cell and of the most confident cell",
    ])


def anchor_matching_overlay(trace: Trace, image: Image.Image) -> Image.Image:
    """The target boxes, the positive anchors (coloured by the box they match) and the boxes
    no anchor covers well enough."""
    matching = trace.anchor_matching
    canvas = _Canvas(image)
    anchors = torch.cat([level.anchors for level in trace.levels])
    positives = torch.where(matching.labels == 1)[0]
    for index in positives[_best(matching.best_iou[positives])].tolist():
        canvas.box(anchors[index], colour(int(matching.matched_box[index])), width=1)
    uncovered = set(matching.uncovered.tolist())
    for index, box in enumerate(trace.target_boxes):
        fill = MISSED_COLOUR if index in uncovered else TARGET_COLOUR
        canvas.box(box, fill, width=canvas.width * 2)
        text = f"box {index}: best anchor IoU {float(matching.box_best_iou[index]):.2f}"
        canvas.label(box, text, fill, below=True)
    counts = [int((matching.labels == value).sum()) for value in (1, 0, -1)]
    return canvas.caption([
        f"anchor matching (IoU >= {matching.fg_iou_thresh:g} positive, < "
        f"{matching.bg_iou_thresh:g} negative): {counts[0]} positive, {counts[1]} negative, "
        f"{counts[2]} ignored{_shown(len(positives))}",
        f"sampled for the loss: {int(matching.sampled_positive.sum())} positive, "
        f"{int(matching.sampled_negative.sum())} negative; red boxes: no anchor reaches "
        f"IoU {matching.fg_iou_thresh:g} ({len(uncovered)})",
    ])


def proposals_overlay(trace: Trace, image: Image.Image, after_nms: bool) -> Image.Image:
    """RPN candidates before NMS (the valid pre-NMS top-k) or the final proposals, coloured by
    FPN level."""
    rpn = trace.rpn
    canvas = _Canvas(image)
    chosen = rpn.final if after_nms else torch.where(rpn.valid)[0]
    for index in chosen[_best(rpn.scores[chosen])].tolist():
        canvas.box(rpn.boxes[index], colour(int(rpn.levels[index])), width=1)
    per_level = ", ".join(
        f"{level.name} {int((rpn.levels[chosen] == i).sum())}"
        for i, level in enumerate(trace.levels)
    )
    if after_nms:
        title = (f"proposals after NMS (IoU {rpn.nms_thresh:g} within each level) and the "
                 f"top {rpn.post_nms_top_n}: {len(chosen)}{_shown(len(chosen))}")
        detail = f"suppressed by NMS: {int((rpn.suppressed_by >= 0).sum())}; by level: {per_level}"
    else:
        title = (f"proposals before NMS: top {rpn.pre_nms_top_n} per level, "
                 f"{rpn.boxes.shape[0]} candidates, {len(chosen)} large enough and scoring "
                 f">= {rpn.score_thresh:g}{_shown(len(chosen))}")
        detail = f"by level: {per_level}"
    return canvas.caption([title, detail])


def roi_levels_overlay(trace: Trace, image: Image.Image) -> Image.Image:
    """The proposals coloured by the FPN level they are pooled from."""
    levels, rpn = trace.roi_levels, trace.rpn
    canvas = _Canvas(image)
    proposals = rpn.proposals
    for index in _best(rpn.scores[rpn.final]).tolist():
        canvas.box(proposals[index], colour(int(levels.level[index]) - levels.k_min), width=1)
    legend = ", ".join(
        f"{name} (stride {2 ** k}): {int((levels.level == k).sum())}"
        for k, name in zip(range(levels.k_min, levels.k_max + 1), levels.level_names)
    )
    return canvas.caption([
        f"ROI pooling level: k = floor({levels.canonical_level} + log2(sqrt(w h) / "
        f"{levels.canonical_size})), clamped to {levels.k_min}..{levels.k_max} (resized pixels)",
        legend,
    ])


def postprocess_overlay(
    trace: Trace, image: Image.Image, stage: str, class_names: dict[int, str]
) -> Image.Image:
    """One postprocessing stage: "above_score", "large_enough", "nms" or "detections"."""
    post = trace.postprocess
    canvas = _Canvas(image)
    everything = torch.arange(post.scores.shape[0])
    if stage == "above_score":
        chosen, title = everything, f"candidates scoring above {post.score_thresh:g}"
    elif stage == "large_enough":
        chosen = torch.where(post.large_enough)[0]
        title = f"... and at least {post.min_size:g} px wide and high"
    elif stage == "nms":
        chosen = torch.where(post.nms_kept)[0]
        title = f"... after NMS per class (IoU {post.nms_thresh:g}); grey: suppressed"
        suppressed = torch.where(post.suppressed_by >= 0)[0]
        for index in suppressed[_best(post.scores[suppressed])].tolist():
            canvas.box(post.boxes[index], FADED_COLOUR, width=1)
    elif stage == "detections":
        chosen = post.final
        title = f"detections: the best {post.detections_per_img} after NMS"
    else:
        raise ValueError(f"unknown postprocessing stage {stage!r}")
    drawn = chosen[_best(post.scores[chosen])].tolist()
    for rank, index in enumerate(reversed(drawn)):
        label = int(post.labels[index])
        canvas.box(post.boxes[index], colour(label))
        if rank < MAX_LABELS:
            name = class_names.get(label, str(label))
            canvas.label(post.boxes[index], f"{name} {float(post.scores[index]):.2f}",
                         colour(label))
    labels_note = f"; the best {MAX_LABELS} labelled" if len(chosen) > MAX_LABELS else ""
    return canvas.caption([f"{title}: {len(chosen)}{_shown(len(chosen))}{labels_note}"])


def stage_overlays(
    trace: Trace, image: Image.Image, class_names: dict[int, str] | None = None
) -> dict[str, Image.Image]:
    """Every stage's picture, by file name, in pipeline order."""
    class_names = class_names or {}
    digits = max(2, int(math.log10(len(trace.levels) + 10)) + 1)
    pictures: dict[str, Image.Image] = {}
    step = 0

    def add(name: str, picture: Image.Image) -> None:
        nonlocal step
        step += 1
        pictures[f"{step:0{digits}d}_{name}.png"] = picture

    for index, level in enumerate(trace.levels):
        add(f"anchors_{_file_safe(level.name)}", anchors_overlay(trace, image, index))
    if trace.anchor_matching is not None:
        add("anchor_matching", anchor_matching_overlay(trace, image))
    add("proposals_before_nms", proposals_overlay(trace, image, after_nms=False))
    add("proposals_after_nms", proposals_overlay(trace, image, after_nms=True))
    add("roi_levels", roi_levels_overlay(trace, image))
    for stage in ("above_score", "large_enough", "nms", "detections"):
        add(f"postprocess_{stage}", postprocess_overlay(trace, image, stage, class_names))
    return pictures


def _file_safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def write_inspection_report(
    trace: Trace,
    image: Image.Image,
    out_dir: str | os.PathLike,
    class_names: dict[int, str] | None = None,
) -> list[Path]:
    """Write every stage's picture and ``summary.json`` (the counts at every stage, the
    settings, the detections with class names) into ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in stage_overlays(trace, image, class_names).items():
        picture.save(out_dir / name)
        written.append(out_dir / name)
    summary = trace.summary()
    names = class_names or {}
    summary["detection_list"] = [
        {"label": int(label), "name": names.get(int(label), str(int(label))),
         "score": round(float(score), 5), "box": [round(float(v), 2) for v in box]}
        for box, label, score in zip(trace.detections.boxes, trace.detections.labels,
                                     trace.detections.scores)
    ]
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=1))
    written.append(summary_path)
    return written
