"""Live training curves: every loss and the learning rate per step, AP and AP50 per epoch.

:class:`CurveData` gathers the numbers from protocol events (plain Python, no Qt);
:class:`TrainingPlots` draws them with pyqtgraph, redrawing at most every 200 ms however fast
the steps come.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

LOSS_NAMES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")
LOSS_COLORS = {"loss": "#000000", "loss_objectness": "#e6194b", "loss_rpn_box_reg": "#f58231",
               "loss_classifier": "#4363d8", "loss_box_reg": "#3cb44b"}
REDRAW_MS = 200


@dataclass
class CurveData:
    """Steps with their losses (``losses["loss"]`` is the total) and learning rate; epochs with
    their AP and AP50. A resumed run (a ``started`` event with ``resumed_at_step``) drops what
    came after that step: those steps are taken again."""

    steps: list[int] = field(default_factory=list)
    losses: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in ("loss", *LOSS_NAMES)})
    lr: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    ap: list[float] = field(default_factory=list)
    ap50: list[float] = field(default_factory=list)

    def add(self, event: dict) -> bool:
        """Take one protocol event; True when it changed the curves."""
        kind = event.get("event")
        if kind == "step":
            self.steps.append(event["step"])
            self.losses["loss"].append(event["loss"])
            for name in LOSS_NAMES:
                self.losses[name].append(event["losses"].get(name, float("nan")))
            self.lr.append(event["lr"])
            return True
        if kind == "eval":
            self._drop_epochs_from(event["epoch"])
            self.epochs.append(event["epoch"])
            self.ap.append(event["AP"])
            self.ap50.append(event["AP50"])
            return True
        if kind == "started" and event.get("resumed_at_step") is not None:
            return self._drop_steps_after(event["resumed_at_step"])
        return False

    def _drop_steps_after(self, step: int) -> bool:
        keep = sum(1 for s in self.steps if s <= step)
        if keep == len(self.steps):
            return False
        del self.steps[keep:], self.lr[keep:]
        for values in self.losses.values():
            del values[keep:]
        return True

    def _drop_epochs_from(self, epoch: int) -> None:
        keep = sum(1 for e in self.epochs if e < epoch)
        del self.epochs[keep:], self.ap[keep:], self.ap50[keep:]

    @classmethod
    def from_events(cls, events: list[dict], metrics: list[dict] | None = None) -> CurveData:
        """The curves of a run from its events; ``metrics`` (metrics.jsonl rows) fill in the
        evaluations when the events lack them (a run from the command line)."""
        data = cls()
        for event in events:
            data.add(event)
        if not data.epochs:
            for row in metrics or []:
                data.add({"event": "eval", **row})
        return data


class TrainingPlots(QWidget):
    """Three plots: the losses, the learning rate (per step) and AP/AP50 (per epoch)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data = CurveData()
        self.loss_plot = self._plot("Losses", "step")
        self.lr_plot = self._plot("Learning rate", "step")
        self.ap_plot = self._plot("Validation AP", "epoch")
        self.loss_curves = {
            name: self.loss_plot.plot([], [], name=name,
                                      pen=pg.mkPen(LOSS_COLORS[name],
                                                   width=2 if name == "loss" else 1))
            for name in ("loss", *LOSS_NAMES)}
        self.lr_curve = self.lr_plot.plot([], [], pen=pg.mkPen("#6a3d9a", width=2))
        self.ap_curve = self.ap_plot.plot([], [], name="AP", pen=pg.mkPen("#1f78b4", width=2),
                                          symbol="o", symbolSize=6, symbolBrush="#1f78b4")
        self.ap50_curve = self.ap_plot.plot([], [], name="AP50", pen=pg.mkPen("#33a02c", width=2),
                                            symbol="s", symbolSize=6, symbolBrush="#33a02c")
        self.ap_plot.setYRange(0, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for plot in (self.loss_plot, self.lr_plot, self.ap_plot):
            layout.addWidget(plot)
        self._redraw = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._redraw.timeout.connect(self.redraw)

    @staticmethod
    def _plot(title: str, x_label: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(background="w")
        plot.setTitle(title, color="#333333")
        plot.setLabel("bottom", x_label)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.addLegend(offset=(-10, 10))
        plot.setMinimumHeight(140)
        plot.setLimits(xMin=0)  # steps and epochs count from 1
        return plot

    def add_event(self, event: dict) -> None:
        if self.data.add(event) and not self._redraw.isActive():
            self._redraw.start()

    def show_data(self, data: CurveData) -> None:
        self.data = data
        self.redraw()

    def clear(self) -> None:
        self.show_data(CurveData())

    def redraw(self) -> None:
        data = self.data
        for name, curve in self.loss_curves.items():
            curve.setData(data.steps, data.losses[name])
        self.lr_curve.setData(data.steps, data.lr)
        self.ap_curve.setData(data.epochs, data.ap)
        self.ap50_curve.setData(data.epochs, data.ap50)
