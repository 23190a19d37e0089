"""The chart beside the canvas (pyqtgraph): a stage's :class:`~app.inspector.scene.Chart`
drawn as bars - the proposals per pooled level, a proposal's class probabilities."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

from .scene import Chart

HIGHLIGHT_PEN = pg.mkPen("#ffffff", width=2)


class StageChart(pg.PlotWidget):
    """Shows one :class:`Chart` or nothing (hidden)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(180)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.chart: Chart | None = None
        self._bars: pg.BarGraphItem | None = None
        self.hide()

    def show_chart(self, chart: Chart | None) -> None:
        if chart == self.chart and (chart is None) == self.isHidden():
            return  # e.g. a score-threshold change leaves a proposal's class scores as they were
        self.chart = chart
        self.clear()
        self._bars = None
        if chart is None:
            self.hide()
            return
        positions = list(range(len(chart.values)))
        pens = [HIGHLIGHT_PEN if index == chart.highlight else pg.mkPen(None)
                for index in positions]
        self._bars = pg.BarGraphItem(x=positions, height=chart.values, width=0.7,
                                     brushes=[QColor(c) for c in chart.colours], pens=pens)
        self.addItem(self._bars)
        plot = self.getPlotItem()
        plot.setTitle(chart.title)
        axis = plot.getAxis("bottom")
        axis.setTicks([[(index, _short(label)) for index, label in enumerate(chart.labels)]])
        plot.setLabel("left", chart.y_label)
        top = chart.y_max if chart.y_max is not None else max([1.0, *chart.values]) * 1.1
        plot.setYRange(0, top, padding=0)
        plot.setXRange(-0.6, len(chart.values) - 0.4, padding=0)
        self.show()


def _short(label: str, limit: int = 10) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
