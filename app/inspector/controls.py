"""The settings an inspection rerun may change, as sliders and spin boxes.

:class:`InspectionControls` emits ``changed(overrides)`` (a dict of
:data:`engine.detector.inspection.OVERRIDES` names to values) whenever the user changes one;
box-head settings re-run postprocessing only, RPN settings the proposal filtering and then the
box head for proposals not seen before (see ``engine/detector/inspection.py``). Spin boxes emit
when editing is finished (Enter or leaving the field), sliders while they move: the view runs
only the latest request when several arrive during a rerun.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.detector.inspection import ROI_OVERRIDES


@dataclass(frozen=True)
class Setting:
    """One control: the override ``key``, its label, range, step, and whether it is a
    fraction (slider + decimal box) or a count (integer box)."""

    key: str
    label: str
    minimum: float
    maximum: float
    step: float
    fraction: bool
    tooltip: str


SETTINGS = (
    Setting("box_score_thresh", "Score threshold", 0.0, 1.0, 0.01, True,
            "Candidates whose class probability is at most this are dropped (box head)."),
    Setting("box_nms_thresh", "NMS IoU", 0.0, 1.0, 0.01, True,
            "Per-class NMS removes a box overlapping a better one of its class by more than "
            "this IoU."),
    Setting("box_detections_per_img", "Detections per image", 1, 1000, 1, False,
            "At most this many detections, the best first."),
    Setting("rpn_nms_thresh", "RPN NMS IoU", 0.0, 1.0, 0.01, True,
            "The RPN's NMS (within each FPN level) at this IoU."),
    Setting("rpn_pre_nms_top_n", "Pre-NMS top-k per level", 1, 10000, 50, False,
            "The RPN keeps this many best-scoring anchors of each level before NMS."),
    Setting("rpn_post_nms_top_n", "Post-NMS top-k", 1, 10000, 50, False,
            "The best this-many proposals after NMS go to the box head."),
)
# Slider resolution: 0.005 per step, and at least SLIDER_MIN_WIDTH px wide on a row of its own
# (a 10 px drag then moves a value by about 0.05 at most, not 0.4 as on a 30 px slider).
SLIDER_STEPS = 200
SLIDER_MIN_WIDTH = 200


class InspectionControls(QWidget):
    """Two groups (box head, RPN) of settings; see the module docstring."""

    changed = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes: dict[str, QDoubleSpinBox | QSpinBox] = {}
        self.sliders: dict[str, QSlider] = {}
        self._quiet = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        groups = {"Box head": QFormLayout(), "RPN": QFormLayout()}
        for group_name, form in groups.items():
            box = QGroupBox(group_name)
            box.setLayout(form)
            layout.addWidget(box)
        for setting in SETTINGS:
            form = groups["Box head"] if setting.key in ROI_OVERRIDES else groups["RPN"]
            form.addRow(setting.label, self._make(setting))
            if setting.key in self.sliders:  # under its label and box, the panel's full width
                form.addRow(self.sliders[setting.key])
        layout.addStretch(1)

    def _make(self, setting: Setting) -> QWidget:
        if setting.fraction:
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
        else:
            spin = QSpinBox()
        spin.setRange(setting.minimum, setting.maximum)
        spin.setSingleStep(setting.step)
        spin.setKeyboardTracking(False)  # emit on Enter, not on every typed digit
        spin.setToolTip(setting.tooltip)
        spin.setObjectName(setting.key)
        spin.valueChanged.connect(lambda _value, key=setting.key: self._edited(key))
        self.boxes[setting.key] = spin
        if not setting.fraction:
            return spin
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, SLIDER_STEPS)
        slider.setSingleStep(1)  # arrow keys: 0.005
        slider.setPageStep(10)  # Page Up/Down: 0.05
        slider.setMinimumWidth(SLIDER_MIN_WIDTH)
        slider.setToolTip(setting.tooltip)
        slider.setObjectName(f"{setting.key}_slider")
        slider.valueChanged.connect(lambda value, key=setting.key: self._slid(key, value))
        self.sliders[setting.key] = slider
        return spin

    # ----------------------------------------------------------------- values

    def settings(self) -> dict[str, float]:
        """The current values as overrides (counts as ints)."""
        return {key: (box.value() if isinstance(box, QDoubleSpinBox) else int(box.value()))
                for key, box in self.boxes.items()}

    def set_settings(self, values: dict[str, float]) -> None:
        """Show ``values`` (e.g. a trace's settings) without emitting ``changed``."""
        self._quiet = True
        try:
            for key, value in values.items():
                if key in self.boxes:
                    self.boxes[key].setValue(value)
                    if key in self.sliders:
                        self.sliders[key].setValue(round(float(value) * SLIDER_STEPS))
        finally:
            self._quiet = False

    def _slid(self, key: str, position: int) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self.boxes[key].setValue(position / SLIDER_STEPS)
        finally:
            self._quiet = False
        self.changed.emit(self.settings())

    def _edited(self, key: str) -> None:
        if self._quiet:
            return
        if key in self.sliders:
            self._quiet = True
            try:
                self.sliders[key].setValue(round(self.boxes[key].value() * SLIDER_STEPS))
            finally:
                self._quiet = False
        self.changed.emit(self.settings())
