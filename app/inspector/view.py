"""The pipeline inspector view: run a checkpoint on one image and step through its stages.

Layout: a bar on top (checkpoint chooser, progress, export), the stage list with Previous/Next,
the stage's options and the rerun settings on the left, the image with the stage drawn over it
in the middle (caption above, legend below), and what was clicked (with a chart) on the right.

The run state (which checkpoint and image, the first run, reruns, the background precompute,
the generation that drops late results) is an :class:`~app.inspector.session.InspectorSession`,
without Qt; this widget forwards the user's choices to it and draws what it reports. Every
model call runs on one :class:`~app.workers.TaskRunner` thread; the GUI thread only draws
Traces (plain data).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import file_dialogs
from app.qt_images import pil_to_qimage
from app.workers import TaskRunner
from engine.detector.checkpoint import LoadedDetector
from engine.detector.class_map import Category
from engine.detector.trace import Trace

from .charts import StageChart
from .controls import InspectionControls
from .ground_truth import GroundTruth
from .scene import LegendEntry
from .session import InspectorSession
from .stage_canvas import StageCanvas
from .stages import (
    SELECTION_DEPENDS_ON,
    STAGES,
    Selection,
    StageContext,
    ViewOptions,
    available_stages,
    build_scene,
    neighbour,
    select_at,
    stage,
)

# Clicks within this many screen pixels of a box's outline hit it (at any zoom; as the Label
# tab's grab tolerance, a target a mouse hits without aiming at single pixels).
CLICK_TOLERANCE_PX = 8


class InspectorView(QWidget):
    """See the module docstring. Signals: ``trace_changed`` when a new Trace is shown,
    ``scene_changed`` when the stage's picture was rebuilt, ``busy_changed(bool)`` around a
    checkpoint load or a first run, ``failed(str)`` with a message the user also sees."""

    trace_changed = Signal()
    scene_changed = Signal()
    busy_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = TaskRunner(self, name="inspector")
        self.session = InspectorSession(self._runner, self, display=pil_to_qimage,
                                        visible=self.isVisible)
        self._trace: Trace | None = None
        self._offered: list[Path] = []
        self._stage_key = STAGES[0].key
        self._selections: dict = {}
        self._options = ViewOptions()
        self._build_ui()
        self._update_enabled()

    # ------------------------------------------------------------------ layout

    def _build_ui(self) -> None:
        self.checkpoint_box = QComboBox()
        self.checkpoint_box.setMinimumContentsLength(18)
        self.checkpoint_box.setToolTip("The checkpoint to inspect (newest first)")
        self.checkpoint_box.activated.connect(self._checkpoint_chosen)
        self.open_button = QPushButton("Open checkpoint…")
        self.open_button.clicked.connect(self._open_checkpoint_dialog)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.status = QLabel("Choose a checkpoint and an image.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Show the whole image (or double-click it)")
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setToolTip("Save the current stage view as a PNG image")
        self.export_button.clicked.connect(self._export_dialog)
        top = QHBoxLayout()
        top.addWidget(QLabel("Checkpoint:"))
        top.addWidget(self.checkpoint_box, 1)
        top.addWidget(self.open_button)
        top.addWidget(self.progress)
        top.addWidget(self.status, 2)
        top.addWidget(self.fit_button)
        top.addWidget(self.export_button)

        self.stage_list = QListWidget()
        for item in STAGES:
            entry = QListWidgetItem(item.label)
            entry.setData(Qt.ItemDataRole.UserRole, item.key)
            self.stage_list.addItem(entry)
        self.stage_list.setCurrentRow(0)
        self.stage_list.currentItemChanged.connect(self._stage_item_changed)
        self.previous_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        steps = QHBoxLayout()
        steps.addWidget(self.previous_button)
        steps.addWidget(self.next_button)

        self.level_box = QComboBox()
        self.level_box.currentIndexChanged.connect(lambda i: self._set_option("level", max(i, 0)))
        self.level_filter_box = QComboBox()
        self.level_filter_box.currentIndexChanged.connect(
            lambda i: self._set_option("level_filter", i - 1))
        self.suppressed_check = QCheckBox("Show suppressed")
        self.suppressed_check.setChecked(self._options.show_suppressed)
        self.suppressed_check.toggled.connect(lambda v: self._set_option("show_suppressed", v))
        self.ignored_check = QCheckBox("Show ignored anchors")
        self.ignored_check.setChecked(self._options.show_ignored)
        self.ignored_check.toggled.connect(lambda v: self._set_option("show_ignored", v))
        self.sampled_check = QCheckBox("Sampled mini-batch only")
        self.sampled_check.toggled.connect(lambda v: self._set_option("sampled_only", v))
        self.max_boxes_box = QSpinBox()
        self.max_boxes_box.setRange(10, 10000)
        self.max_boxes_box.setSingleStep(50)
        self.max_boxes_box.setValue(self._options.max_boxes)
        self.max_boxes_box.setKeyboardTracking(False)
        self.max_boxes_box.setToolTip("Draw only the best this-many boxes of each kind "
                                      "(counts always cover all)")
        self.max_boxes_box.valueChanged.connect(lambda v: self._set_option("max_boxes", v))
        self.options_group = QGroupBox("Stage options")
        options = QFormLayout(self.options_group)
        options.addRow("Level", self.level_box)
        options.addRow("Levels", self.level_filter_box)
        options.addRow(self.suppressed_check)
        options.addRow(self.ignored_check)
        options.addRow(self.sampled_check)
        options.addRow("Draw at most", self.max_boxes_box)
        self._option_widgets = {
            "level": (self.level_box, options.labelForField(self.level_box)),
            "level_filter": (self.level_filter_box, options.labelForField(self.level_filter_box)),
            "show_suppressed": (self.suppressed_check, None),
            "show_ignored": (self.ignored_check, None),
            "sampled_only": (self.sampled_check, None),
            "max_boxes": (self.max_boxes_box, options.labelForField(self.max_boxes_box)),
        }
        self.controls = InspectionControls()
        self.controls.changed.connect(self.session.change_settings)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("<b>Stages</b>"))
        left_layout.addWidget(self.stage_list, 1)
        left_layout.addLayout(steps)
        left_layout.addWidget(self.options_group)
        left_layout.addWidget(self.controls)

        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        self.canvas = StageCanvas()
        self.canvas.clicked.connect(self._canvas_clicked)
        self.canvas.view_changed.connect(self._view_moved)
        self.fit_button.clicked.connect(self.canvas.fit)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        # The canvas's dark background, so that light swatches (white, yellow) show.
        self.legend.setStyleSheet("QLabel { background: #202020; color: #e0e0e0; "
                                  "padding: 3px; }")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        # What to do, in place of the picture, while there is none to show.
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.hint.setMargin(24)
        self.centre = QWidget()
        centre_layout = QVBoxLayout(self.centre)
        centre_layout.setContentsMargins(4, 4, 4, 4)
        centre_layout.addWidget(self.hint, 1)
        centre_layout.addWidget(self.caption)
        centre_layout.addWidget(self.canvas, 1)
        centre_layout.addWidget(self.legend)

        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        info_scroll = QScrollArea()
        info_scroll.setWidgetResizable(True)
        info_scroll.setWidget(self.info)
        self.chart = StageChart()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(info_scroll, 2)
        right_layout.addWidget(self.chart, 1)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.centre)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 800, 300])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self._show_stage_options()

    # ------------------------------------------------------------------ the contract

    def set_checkpoints(self, paths: list[Path]) -> None:
        """Offer these checkpoints (newest first); the first is loaded when none is chosen.
        The chosen one is loaded again when its file changed since (a training run rewrites
        ``best.pt`` and ``last.pt``)."""
        self.checkpoint_box.clear()
        self._offered = [Path(path) for path in paths]
        for path in paths:
            self._add_checkpoint_item(Path(path))
        if self.session.checkpoint is not None:
            self.on_checkpoint(self.session.checkpoint)
        self.session.offer_checkpoints([Path(path) for path in paths])

    def set_image(self, path: Path, boxes: list[tuple[float, float, float, float]],
                  category_ids: list[int], categories: list[Category] | None = None) -> None:
        """Inspect the image at ``path`` with its labelled ``boxes`` (project ``category_ids``;
        ``categories`` the project's, which :mod:`engine.detector.class_map` matches to the
        checkpoint's classes); see :mod:`app.inspector.ground_truth` for boxes left out."""
        self.session.set_image(path, boxes, category_ids, categories)
        self._update_enabled()

    def shutdown(self) -> None:
        """Cancel queued work and wait for the running task (the window calls this on close)."""
        self.session.close()
        self._runner.shutdown()

    # ------------------------------------------------------------------ more API

    def load_checkpoint(self, path: Path) -> None:
        """Load ``path`` off the GUI thread and inspect the current image with it."""
        self.session.load_checkpoint(path)

    @property
    def trace(self) -> Trace | None:
        """The Trace on screen (None before the first run finishes)."""
        return self._trace

    @property
    def stage_key(self) -> str:
        return self._stage_key

    @property
    def busy(self) -> bool:
        return self.session.busy

    @property
    def ground_truth_boxes(self) -> GroundTruth | None:
        return self.session.ground_truth

    def set_stage(self, key: str) -> None:
        """Show stage ``key`` (one of :data:`app.inspector.stages.STAGE_KEYS`)."""
        stage(key)  # a clear error for an unknown key
        for row in range(self.stage_list.count()):
            if self.stage_list.item(row).data(Qt.ItemDataRole.UserRole) == key:
                self.stage_list.setCurrentRow(row)
                return

    def set_selection(self, selection: Selection | None) -> None:
        """Select an item of the current stage as a click on it would (None: the default)."""
        if selection is None:
            self._selections.pop(self._stage_key, None)
        else:
            self._selections[self._stage_key] = selection
        self.refresh()

    def set_option(self, name: str, value) -> None:
        """Set a :class:`~app.inspector.stages.ViewOptions` field through its widget."""
        widget = self._option_widgets[name][0]
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QSpinBox):
            widget.setValue(int(value))
        else:  # the level combos: "level" counts from 0, "level_filter" from -1 (all)
            widget.setCurrentIndex(int(value) + (1 if name == "level_filter" else 0))

    def step(self, direction: int) -> None:
        """The next (+1) or previous (-1) available stage."""
        self.set_stage(neighbour(self._stage_key, self._trace, direction))

    def export_png(self, path: Path) -> Path:
        """Save the stage view as shown (caption, image with overlays, legend) to ``path``."""
        path = Path(path)
        if not self.centre.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    # ------------------------------------------------------------------ what the session says
    # (app.inspector.session.SessionListener)

    def on_checkpoint(self, path: Path) -> None:
        self._add_checkpoint_item(path)
        self.checkpoint_box.setCurrentIndex(self.checkpoint_box.findData(str(path)))

    def on_image(self, display) -> None:
        self.canvas.set_image(display)

    def on_detector(self, _detector: LoadedDetector) -> None:
        self.controls.set_settings(self.session.settings)

    def on_busy(self, busy: bool, text: str) -> None:
        self.progress.setVisible(busy)
        self.status.setText(html.escape(text))
        self.status.setToolTip("")
        self._update_enabled()
        self.busy_changed.emit(busy)

    def on_status(self, text: str) -> None:
        self.status.setText(html.escape(text))

    def on_failure(self, message: str) -> None:
        self.status.setText(f"<span style='color:#d04040'>{html.escape(message)}</span>")
        self.status.setToolTip(message)
        self.failed.emit(message)

    def on_trace(self, trace: Trace | None) -> None:
        self._show_trace(trace)

    # ------------------------------------------------------------------ showing

    def _show_trace(self, trace: Trace | None) -> None:
        previous, self._trace = self._trace, trace
        self._forget_stale_selections(previous, trace)
        if trace is not None and not self.session.rerun_in_flight:
            self.controls.set_settings(trace.settings)
        self._update_levels(previous, trace)
        self._update_stage_availability()
        self._update_enabled()
        self.refresh()
        if trace is not None:
            self.trace_changed.emit()

    def _forget_stale_selections(self, previous: Trace | None, trace: Trace | None) -> None:
        if previous is None or trace is None or previous.levels is not trace.levels:
            self._selections.clear()
            return
        changed = {"postprocess"} | ({"rpn"} if previous.rpn is not trace.rpn else set())
        for key in [k for k in self._selections if SELECTION_DEPENDS_ON[k] in changed]:
            del self._selections[key]

    def _update_levels(self, previous: Trace | None, trace: Trace | None) -> None:
        names = [level.name for level in trace.levels] if trace is not None else []
        if previous is not None and trace is not None and [
                level.name for level in previous.levels] == names:
            return
        for box, entries in ((self.level_box, names),
                             (self.level_filter_box, ["All levels", *names])):
            box.blockSignals(True)
            box.clear()
            box.addItems(entries)
            box.blockSignals(False)
        self._options.level = min(self._options.level, max(0, len(names) - 1))
        self._options.level_filter = -1
        self.level_box.setCurrentIndex(self._options.level if names else -1)
        self.level_filter_box.setCurrentIndex(0)

    def _update_stage_availability(self) -> None:
        available = {item.key for item in available_stages(self._trace)}
        for row, item in enumerate(STAGES):
            entry = self.stage_list.item(row)
            enabled = self._trace is None or item.key in available
            flags = entry.flags()
            entry.setFlags(flags | Qt.ItemFlag.ItemIsEnabled if enabled
                           else flags & ~Qt.ItemFlag.ItemIsEnabled)
            entry.setToolTip("" if enabled else "Needs labelled boxes on the image")
        if self._trace is not None and self._stage_key not in available:
            self.set_stage(STAGES[0].key)

    def _update_enabled(self) -> None:
        ready = self._trace is not None and not self.session.busy
        self.controls.setEnabled(ready)
        self.export_button.setEnabled(self._trace is not None)
        for widget in (self.previous_button, self.next_button, self.options_group):
            widget.setEnabled(self._trace is not None)
        # Nothing to show yet: say what to do instead of blank controls and an empty picture.
        shown = self._trace is not None
        self.controls.setVisible(shown)
        self.options_group.setVisible(shown and bool(stage(self._stage_key).options))
        for widget in (self.caption, self.canvas, self.legend):
            widget.setVisible(shown)
        self.hint.setVisible(not shown)
        if not shown:
            self.hint.setText(self.hint_text())

    def hint_text(self) -> str:
        """What the tab says while it has no trace to show: how to get one."""
        session = self.session
        if session.busy:
            return "<p>Running the model on the image…</p>"
        if session.checkpoint is None and not self._offered:
            return ("<h3>No trained model to inspect yet</h3>"
                    "<p>Train one on the <b>Train</b> tab (the CPU preset trains the demo "
                    "project in minutes), or open a checkpoint file (<b>Open checkpoint…</b> "
                    "above).</p><p>The inspector then runs it on the Label tab's current image "
                    "and steps through every stage of the detector: anchors, matching, "
                    "proposals, NMS, the box head.</p>")
        if session.image_path is None:
            return ("<h3>No image</h3><p>Choose an image on the <b>Label</b> tab, then come "
                    "back: the inspector runs the checkpoint on it.</p>")
        if session.checkpoint is None:
            return ("<h3>Choose a checkpoint</h3><p>Pick one in the <b>Checkpoint</b> list "
                    "above, or open a checkpoint file (<b>Open checkpoint…</b>).</p>")
        return ("<p>The model could not run on this image: the message above says why. Choose "
                "another checkpoint or image.</p>")

    def _context(self) -> StageContext:
        return StageContext(self._trace, self.session.classes, self.session.ground_truth,
                            self._options,
                            self._selections.get(self._stage_key),
                            tolerance=CLICK_TOLERANCE_PX / max(self.canvas.zoom, 1e-6))

    def refresh(self) -> None:
        """Rebuild the current stage's picture from the trace, options and selection."""
        if self._trace is None:
            self.canvas.set_scene(None)
            self.caption.setText("")
            self.legend.setText("")
            self.info.setText("")
            self.chart.show_chart(None)
            self.scene_changed.emit()
            return
        scene = build_scene(self._stage_key, self._context())
        self.canvas.set_scene(scene)
        # Setting a label's text lays it out again even when it is the same (tens of ms for a
        # table): a slider move often leaves the caption, legend or info as they were.
        for label, text in ((self.caption, "\n".join(scene.caption)),
                            (self.legend, _legend_html(scene.legend)), (self.info, scene.info)):
            if label.text() != text:
                label.setText(text)
        self.chart.show_chart(scene.chart)
        self.scene_changed.emit()

    # ------------------------------------------------------------------ user actions

    def _stage_item_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if current is None:
            return
        self._stage_key = current.data(Qt.ItemDataRole.UserRole)
        self._show_stage_options()
        self.refresh()

    def _show_stage_options(self) -> None:
        used = set(stage(self._stage_key).options)
        for name, (widget, label) in self._option_widgets.items():
            widget.setVisible(name in used)
            if label is not None:
                label.setVisible(name in used)
        self.options_group.setVisible(bool(used) and self._trace is not None)

    def _set_option(self, name: str, value) -> None:
        setattr(self._options, name, value)
        self.refresh()

    def _canvas_clicked(self, x: float, y: float) -> None:
        if self._trace is not None:
            self.set_selection(select_at(self._stage_key, self._context(), x, y))

    def _view_moved(self) -> None:
        pass  # labels are placed at paint time; nothing to rebuild

    def _checkpoint_chosen(self, index: int) -> None:
        path = self.checkpoint_box.itemData(index)
        if path and Path(path) != self.session.checkpoint:
            self.load_checkpoint(Path(path))

    def _add_checkpoint_item(self, path: Path) -> None:
        if self.checkpoint_box.findData(str(path)) < 0:
            self.checkpoint_box.addItem(f"{path.parent.name}/{path.name}", str(path))
            self.checkpoint_box.setItemData(self.checkpoint_box.count() - 1, str(path),
                                            Qt.ItemDataRole.ToolTipRole)

    def _open_checkpoint_dialog(self) -> None:
        checkpoint = self.session.checkpoint
        start = str(checkpoint.parent) if checkpoint else ""
        path, _ = file_dialogs.get_open_file_name(self, "Open checkpoint", start,
                                                  "Checkpoints (*.pt);;All files (*)")
        if path:
            self.load_checkpoint(Path(path))

    def _export_dialog(self) -> None:
        image_path = self.session.image_path
        stem = image_path.stem if image_path else "inspect"
        path, _ = file_dialogs.get_save_file_name(self, "Export stage as PNG",
                                                  f"{stem}-{self._stage_key}.png", "PNG (*.png)")
        if path:
            try:
                self.export_png(Path(path))
            except OSError as error:
                self.status.setText(html.escape(str(error)))

    # ------------------------------------------------------------------ Qt events

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.session.shown()


def _legend_html(entries: list[LegendEntry]) -> str:
    symbols = {"box": "□", "dashed": "┅", "dot": "●", "fill": "■"}
    return "&nbsp;&nbsp; ".join(
        f"<span style='color:{entry.colour}'>{symbols.get(entry.style, '■')}</span>&nbsp;"
        f"{html.escape(entry.text)}" for entry in entries)
