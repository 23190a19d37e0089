"""The Diagnose tab's charts (pyqtgraph): horizontal bars for the stage funnel and TIDE's dAP,
histograms of the best anchor IoU per FPN level. Each chart keeps the values it shows
(``values``), so tests and screenshots can read them."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QWidget

from engine.diagnosis.anchor_fit import HALF_IOU, POSITIVE_IOU, AnchorFit
from engine.diagnosis.funnel import FATE_TITLES, FATES, INSPECTOR_STAGE, FunnelCounts
from engine.diagnosis.tide import ERROR_TITLES, ERROR_TYPES, TideResult

STAGE_COLORS = {"anchors": "#d62728", "proposals": "#ff7f0e", "classification": "#9467bd",
                "nms": "#8c564b", "detected": "#2ca02c"}


class BarChart(pg.PlotWidget):
    """Horizontal bars, one per label, top to bottom."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMinimumHeight(220)
        self.getPlotItem().setTitle(title)
        self.values: list[float] = []
        self.labels: list[str] = []

    def show_bars(self, labels: Sequence[str], values: Sequence[float],
                  colors: Sequence[str] | None = None, title: str | None = None) -> None:
        self.clear()
        self.labels, self.values = list(labels), [float(v) for v in values]
        count = len(values)
        positions = list(range(count))[::-1]  # the first label on top
        brushes = [QColor(c) for c in (colors or ["#1f77b4"] * count)]
        self.addItem(pg.BarGraphItem(x0=[0] * count, y=positions, height=0.7, width=self.values,
                                     brushes=brushes, pens=[pg.mkPen(None)] * count))
        for position, value in zip(positions, self.values):
            text = pg.TextItem(f"{value:g}", color="#222", anchor=(0, 0.5))
            text.setPos(value, position)
            self.addItem(text)
        plot = self.getPlotItem()
        plot.getAxis("left").setTicks([[(p, label) for p, label in zip(positions, labels)]])
        plot.setXRange(0, max([1.0, *self.values]) * 1.25, padding=0)
        plot.setYRange(-0.6, count - 0.4, padding=0)
        if title is not None:
            plot.setTitle(title)


class FunnelChart(BarChart):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Where the boxes end up", parent)

    def show_funnel(self, counts: FunnelCounts) -> None:
        self.show_bars([FATE_TITLES[f] for f in FATES], [counts.total[f] for f in FATES],
                       [STAGE_COLORS[INSPECTOR_STAGE[f]] for f in FATES],
                       f"Where the {counts.boxes} boxes end up")


class DapChart(BarChart):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("TIDE: AP points gained by fixing each error type", parent)

    def show_tide(self, tide: TideResult) -> None:
        self.show_bars([f"{ERROR_TITLES[k]} ({tide.counts[k]})" for k in ERROR_TYPES],
                       [round(tide.dap[k], 2) for k in ERROR_TYPES],
                       title=f"TIDE (AP50 {tide.ap:.1f}): dAP per error type")


class AnchorHistograms(QWidget):
    """One histogram of the boxes' best anchor IoU per FPN level, and one over all levels, with
    lines at 0.5 and 0.7."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.plots: list[pg.PlotWidget] = []
        self.histograms: dict[str, list[int]] = {}

    def show_fit(self, fit: AnchorFit) -> None:
        for plot in self.plots:
            plot.setParent(None)
            plot.deleteLater()
        self.plots = []
        names = [*fit.level_names, "all levels"]
        self.histograms = {name: fit.histogram(i) for i, name in enumerate(fit.level_names)}
        self.histograms["all levels"] = fit.histogram()
        for k, name in enumerate(names):
            counts = self.histograms[name]
            values = fit.best_iou if name == "all levels" else fit.level_iou[:, k]
            share = float((values >= POSITIVE_IOU).double().mean()) if values.numel() else 0.0
            plot = pg.PlotWidget(background="w")
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMinimumHeight(130)
            plot.getPlotItem().setTitle(f"{name}: {100 * share:.0f}% at {POSITIVE_IOU}")
            width = 1.0 / len(counts)
            centres = [(i + 0.5) * width for i in range(len(counts))]
            colors = [QColor(STAGE_COLORS["detected"] if c >= POSITIVE_IOU else "#1f77b4")
                      for c in centres]
            plot.addItem(pg.BarGraphItem(x=centres, height=counts, width=width * 0.9,
                                         brushes=colors, pens=[pg.mkPen(None)] * len(counts)))
            dashed = pg.mkPen("#c00", style=Qt.PenStyle.DashLine)
            for line in (HALF_IOU, POSITIVE_IOU):
                plot.addItem(pg.InfiniteLine(line, pen=dashed))
            plot.setXRange(0, 1, padding=0)
            self.grid.addWidget(plot, k // 3, k % 3)
            self.plots.append(plot)
