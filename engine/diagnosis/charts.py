"""The diagnosis's charts as PNG files, drawn with Pillow.

The CLI writes charts wherever it runs, with no display and without Qt (the engine never
imports it), and the charts are simple bars: Pillow's drawing is enough, and it is already a
dependency. The app draws the same data in its own interactive charts (``app.diagnosis``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .anchor_fit import HALF_IOU, POSITIVE_IOU
from .diagnose import Diagnosis
from .funnel import FATE_TITLES, FATES, INSPECTOR_STAGE
from .tide import ERROR_TITLES, ERROR_TYPES

STAGE_COLORS = {"anchors": (214, 39, 40), "proposals": (255, 127, 14),
                "classification": (148, 103, 189), "nms": (140, 86, 75),
                "detected": (44, 160, 44)}
BAR_COLOR = (31, 119, 180)
TEXT, GRID, BACKGROUND = (30, 30, 30), (210, 210, 210), (255, 255, 255)


def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float],
              colors: Sequence[tuple[int, int, int]] | None = None,
              value_text: Sequence[str] | None = None, width: int = 720) -> Image.Image:
    """A horizontal bar chart: one row per label, bars scaled to the largest value."""
    font, title_font = _font(13), _font(16)
    row, left, right, top = 24, 230, 90, 40
    height = top + row * len(labels) + 16
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), title, fill=TEXT, font=title_font)
    top_value = max([v for v in values if v > 0], default=1.0)
    span = width - left - right
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row
        draw.text((12, y + 4), label, fill=TEXT, font=font)
        length = int(span * max(value, 0.0) / top_value)
        color = colors[i] if colors else BAR_COLOR
        draw.rectangle([left, y + 3, left + max(length, 1), y + row - 4], fill=color)
        text = value_text[i] if value_text else f"{value:g}"
        draw.text((left + length + 6, y + 4), text, fill=TEXT, font=font)
    return image


def funnel_chart(diagnosis: Diagnosis) -> Image.Image:
    total = diagnosis.base.funnel.total
    boxes = max(diagnosis.base.funnel.boxes, 1)
    return bar_chart(
        f"Where the {diagnosis.base.funnel.boxes} boxes of {diagnosis.split} end up",
        [FATE_TITLES[f] for f in FATES], [total[f] for f in FATES],
        [STAGE_COLORS[INSPECTOR_STAGE[f]] for f in FATES],
        [f"{total[f]}  ({100 * total[f] / boxes:.0f}%)" for f in FATES])


def dap_chart(diagnosis: Diagnosis) -> Image.Image:
    tide = diagnosis.base.tide
    return bar_chart(
        f"TIDE: AP50 {tide.ap:.1f}; AP points gained by fixing each error type",
        [ERROR_TITLES[k] for k in ERROR_TYPES], [tide.dap[k] for k in ERROR_TYPES],
        value_text=[f"{tide.dap[k]:.2f}  ({tide.counts[k]})" for k in ERROR_TYPES])


def anchor_chart(diagnosis: Diagnosis) -> Image.Image:
    """Per FPN level (and over all levels) the histogram of each box's best anchor IoU, with
    the 0.5 and 0.7 lines; the suggestion's share below."""
    fit, suggestion = diagnosis.fit, diagnosis.suggestion
    names = [*fit.level_names, "all levels"]
    histograms = [fit.histogram(i) for i in range(len(fit.level_names))] + [fit.histogram()]
    font, title_font = _font(12), _font(16)
    panel_w, panel_h, columns = 230, 150, 3
    rows = -(-len(names) // columns)
    width, height = 20 + columns * (panel_w + 20), 50 + rows * (panel_h + 40) + 50
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), f"Best anchor IoU per box ({len(fit.boxes)} boxes of {diagnosis.split})",
              fill=TEXT, font=title_font)
    peak = max(max(h) for h in histograms) or 1
    for k, (name, counts) in enumerate(zip(names, histograms)):
        x0 = 20 + (k % columns) * (panel_w + 20)
        y0 = 50 + (k // columns) * (panel_h + 40)
        values = fit.best_iou if k == len(names) - 1 else fit.level_iou[:, k]
        share = float((values >= POSITIVE_IOU).double().mean()) if values.numel() else 0.0
        draw.text((x0, y0), f"{name}: {100 * share:.0f}% at >= {POSITIVE_IOU}", fill=TEXT,
                  font=font)
        base = y0 + panel_h + 16
        draw.line([x0, base, x0 + panel_w, base], fill=GRID)
        bin_w = panel_w / len(counts)
        for b, count in enumerate(counts):
            h = int((panel_h - 10) * count / peak)
            left = bin_w * b
            color = STAGE_COLORS["detected"] if (b + 0.5) / len(counts) >= POSITIVE_IOU else \
                BAR_COLOR
            draw.rectangle([x0 + left, base - h, x0 + left + bin_w - 1, base], fill=color)
        for line in (HALF_IOU, POSITIVE_IOU):
            x = x0 + panel_w * line
            draw.line([x, y0 + 18, x, base], fill=(200, 0, 0))
        draw.text((x0, base + 2), "0", fill=TEXT, font=font)
        draw.text((x0 + panel_w - 8, base + 2), "1", fill=TEXT, font=font)
    after = suggestion.after.settings
    now, suggested = (100 * fit.share(POSITIVE_IOU) for fit in (suggestion.before,
                                                                 suggestion.after))
    draw.text((12, height - 40), f"share at {POSITIVE_IOU} on the project's boxes: {now:.1f}% "
              f"now, {suggested:.1f}% suggested", fill=TEXT, font=font)
    draw.text((12, height - 22),
              f"suggested: sizes {[list(s) for s in after.sizes]}, ratios "
              f"{list(after.aspect_ratios[0])}, input {after.min_size}/{after.max_size}",
              fill=TEXT, font=font)
    return image


def what_if_chart(diagnosis: Diagnosis) -> Image.Image | None:
    """AP50 and detected boxes of the base run and each what-if."""
    if not diagnosis.what_ifs:
        return None
    runs = [diagnosis.base, *diagnosis.what_ifs]
    labels = ["as trained"] + [f"what-if {i}" for i in range(1, len(runs))]
    return bar_chart("AP50 per settings", labels, [r.evaluation.ap50 for r in runs],
                     value_text=[f"AP50 {r.evaluation.ap50:.3f}  AP {r.evaluation.ap:.3f}  "
                                 f"found {r.funnel.total['detected']}" for r in runs],
                     width=820)


def write_charts(diagnosis: Diagnosis, folder: Path) -> list[Path]:
    """funnel.png, dap.png, anchor_iou.png (and what_if.png after a what-if) in ``folder``."""
    written = []
    charts = {"funnel.png": funnel_chart(diagnosis), "dap.png": dap_chart(diagnosis),
              "anchor_iou.png": anchor_chart(diagnosis), "what_if.png": what_if_chart(diagnosis)}
    for name, image in charts.items():
        if image is None:
            continue
        path = folder / name
        image.save(path)
        written.append(path)
    return written
