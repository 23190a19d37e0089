"""The pipeline inspector view: run a checkpoint on one image and step through its stages.

Layout: a bar on top (checkpoint chooser, progress, export), the stage list with Previous/Next,
the stage's options and the rerun settings on the left, the image with the stage drawn over it
in the middle (caption above, legend below), and what was clicked (with a chart) on the right.

Threads: every model call (loading a checkpoint, the first run, reruns, the background
precompute of the box head) runs on one :class:`~app.workers.TaskRunner` thread, in order, so
the model and the :class:`~engine.detector.Inspection` are never used by two threads at once.
Results carry the *generation* they were started in; a result from before the latest image or
checkpoint change is dropped. While a rerun is running, further setting changes wait, and only
the latest is run after it. The GUI thread only draws Traces (plain data).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from PIL import Image
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
from app.workers import Task, TaskRunner
from engine.data.images import image_to_tensor, load_image
from engine.detector import Inspection
from engine.detector.checkpoint import LoadedDetector, load_detector
from engine.detector.inspection import ROI_OVERRIDES, RPN_OVERRIDES
from engine.detector.trace import Trace

from .charts import StageChart
from .controls import InspectionControls, is_rpn_change
from .ground_truth import GroundTruth, ground_truth
from .scene import LegendEntry
from .stage_canvas import StageCanvas
from .stages import (
    SELECTION_DEPENDS_ON,
    STAGES,
    Classes,
    Selection,
    StageContext,
    ViewOptions,
    available_stages,
    build_scene,
    neighbour,
    select_at,
    stage,
)

# Clicks within this many screen pixels of a box's outline hit it.
CLICK_TOLERANCE_PX = 5
# Box head outputs computed per step of the background precompute: small, so that a rerun the
# user asks for waits at most one step (about 30 ms for resnet50 on a CPU).
PRECOMPUTE_CHUNK = 64


def default_settings(detector: LoadedDetector) -> dict[str, float]:
    """The checkpoint's own evaluation settings, as overrides."""
    model = detector.model
    values = {key: getattr(model.rpn.test_settings, field) for key, field in RPN_OVERRIDES.items()}
    values.update({key: getattr(model.roi_heads.detection_settings, field)
                   for key, field in ROI_OVERRIDES.items()})
    return values


# ------------------------------------------------------------ work run on the worker thread


def _load_checkpoint_job(path: Path) -> LoadedDetector:
    return load_detector(path)


def _load_image_job(path: Path) -> tuple[Image.Image, object]:
    image = load_image(path)
    return image, pil_to_qimage(image)


def _first_run_job(detector: LoadedDetector, image: Image.Image, target, overrides: dict,
                   task: Task) -> tuple[Inspection, Trace, float]:
    task.progress(0.1, "preparing the image")
    start = time.perf_counter()
    inspection = Inspection(detector.model, image_to_tensor(image), target)
    task.progress(0.2, "running the detector (backbone, RPN, box head)")
    trace = inspection.run(**overrides)
    return inspection, trace, time.perf_counter() - start


def _rerun_job(inspection: Inspection, overrides: dict) -> tuple[Trace, float]:
    start = time.perf_counter()
    trace = inspection.run(**overrides)
    return trace, time.perf_counter() - start


def _precompute_job(inspection: Inspection, task: Task) -> int:
    return inspection.precompute_box_head(chunk=PRECOMPUTE_CHUNK, stop=lambda: task.cancelled)


# ------------------------------------------------------------------------------ the view


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
        self._generation = 0
        self._checkpoint: Path | None = None
        self._checkpoint_stamp: tuple | None = None
        self._detector: LoadedDetector | None = None
        self._classes = Classes()
        self._image_path: Path | None = None
        self._image: Image.Image | None = None
        self._boxes: list[tuple[float, float, float, float]] = []
        self._category_ids: list[int] = []
        self._ground_truth: GroundTruth | None = None
        self._inspection: Inspection | None = None
        self._trace: Trace | None = None
        self._stage_key = STAGES[0].key
        self._selections: dict = {}
        self._options = ViewOptions()
        self._needs_run = False
        self._busy = False
        self._image_task: Task | None = None
        self._checkpoint_task: Task | None = None
        self._run_task: Task | None = None
        self._rerun_task: Task | None = None
        self._pending: dict | None = None
        self._precompute_task: Task | None = None
        self.last_first_run_s: float | None = None
        self.last_rerun_s: float | None = None
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
        self.controls.changed.connect(self._settings_changed)
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
        self.centre = QWidget()
        centre_layout = QVBoxLayout(self.centre)
        centre_layout.setContentsMargins(4, 4, 4, 4)
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
        for path in paths:
            self._add_checkpoint_item(Path(path))
        if self._checkpoint is not None:
            self._add_checkpoint_item(self._checkpoint)
            self.checkpoint_box.setCurrentIndex(self.checkpoint_box.findData(str(self._checkpoint)))
            if _modified(self._checkpoint) != self._checkpoint_stamp:
                self.load_checkpoint(self._checkpoint)
        elif paths:
            self.load_checkpoint(Path(paths[0]))

    def set_image(self, path: Path, boxes: list[tuple[float, float, float, float]],
                  category_ids: list[int]) -> None:
        """Inspect the image at ``path`` with its labelled ``boxes`` (project ``category_ids``);
        see the module docstring of :mod:`app.inspector.ground_truth` for boxes left out."""
        if len(boxes) != len(category_ids):
            raise ValueError(f"{len(boxes)} boxes but {len(category_ids)} category ids")
        boxes = [tuple(float(v) for v in box) for box in boxes]
        category_ids = [int(c) for c in category_ids]
        unchanged = (Path(path), boxes, category_ids) == (self._image_path, self._boxes,
                                                          self._category_ids)
        if unchanged and (self._image is not None or self._image_task is not None):
            return  # the same image and boxes (a window refreshing): nothing to run again
        self._invalidate()
        self._image_path = Path(path)
        self._boxes = boxes
        self._category_ids = category_ids
        self._image = None
        self.canvas.set_image(None)
        if self._image_task is not None:
            self._image_task.cancel()
        self._set_busy(True, f"Loading {self._image_path.name}…")
        task = self._image_task = self._runner.submit(
            _load_image_job, self._image_path,
            on_done=lambda result: self._image_loaded(task, result),
            on_error=lambda error, details: self._load_failed(task, error))

    def shutdown(self) -> None:
        """Cancel queued work and wait for the running task (the window calls this on close)."""
        self._generation += 1
        self._runner.shutdown()

    # ------------------------------------------------------------------ more API

    def load_checkpoint(self, path: Path) -> None:
        """Load ``path`` off the GUI thread and inspect the current image with it."""
        path = Path(path)
        self._invalidate()
        self._checkpoint = path
        self._checkpoint_stamp = _modified(path)
        self._detector = None
        self._add_checkpoint_item(path)
        self.checkpoint_box.setCurrentIndex(self.checkpoint_box.findData(str(path)))
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
        self._set_busy(True, f"Loading {path.name}…")
        task = self._checkpoint_task = self._runner.submit(
            _load_checkpoint_job, path,
            on_done=lambda detector: self._detector_loaded(task, detector),
            on_error=lambda error, details: self._load_failed(task, error))

    @property
    def trace(self) -> Trace | None:
        """The Trace on screen (None before the first run finishes)."""
        return self._trace

    @property
    def stage_key(self) -> str:
        return self._stage_key

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def ground_truth_boxes(self) -> GroundTruth | None:
        return self._ground_truth

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

    # ------------------------------------------------------------------ worker results

    def _invalidate(self) -> None:
        """Forget the inspection (a new image or checkpoint): its queued work is cancelled and
        its late results are dropped. Loads of an image or checkpoint still needed go on."""
        self._generation += 1
        for task in (self._run_task, self._rerun_task, self._precompute_task):
            if task is not None:
                task.cancel()
        self._inspection = None
        self._run_task = self._rerun_task = self._precompute_task = None
        self._pending = None
        self._show_trace(None)

    def _load_failed(self, task: Task, error: BaseException) -> None:
        if task is self._image_task or task is self._checkpoint_task:
            self._failed(self._generation, error)

    def _detector_loaded(self, task: Task, detector: LoadedDetector) -> None:
        if task is not self._checkpoint_task:
            return
        self._checkpoint_task = None
        self._detector = detector
        self._classes = Classes({0: "background", **{c.class_id: c.name
                                                     for c in detector.classes}},
                                {c.class_id: c.color for c in detector.classes if c.color})
        self.controls.set_settings(default_settings(detector))
        self._set_busy(self._image_task is not None,
                       f"{self._checkpoint.name}: {detector.model.config.backbone}, "
                       f"{len(detector.classes)} classes")
        self._start_first_run()

    def _image_loaded(self, task: Task, result) -> None:
        if task is not self._image_task:
            return
        self._image_task = None
        self._image, qimage = result
        self.canvas.set_image(qimage)
        self._set_busy(self._checkpoint_task is not None,
                       f"{self._image_path.name}: {self._image.width}×{self._image.height}, "
                       f"{len(self._boxes)} boxes")
        self._start_first_run()

    def _start_first_run(self) -> None:
        if self._detector is None or self._image is None:
            return
        if not self.isVisible():
            self._needs_run = True  # a hidden tab costs nothing; run when shown
            return
        self._needs_run = False
        self._ground_truth = ground_truth(self._boxes, self._category_ids,
                                          self._detector.classes, self._image.size)
        target = self._ground_truth.target()
        backbone = self._detector.model.config.backbone
        self._set_busy(True, f"Running {backbone} on {self._image_path.name}…")
        generation = self._generation
        self._run_task = self._runner.submit(
            _first_run_job, self._detector, self._image, target, self.controls.settings(),
            on_done=lambda result: self._first_run_done(generation, result),
            on_error=lambda error, details: self._failed(generation, error),
            on_progress=lambda fraction, text: self._progressed(generation, text),
        )

    def _first_run_done(self, generation: int, result) -> None:
        if generation != self._generation:
            return
        self._run_task = None
        self._inspection, trace, seconds = result
        self.last_first_run_s = seconds
        self._set_busy(False, self._summary(trace) + f"; first run {seconds:.2f} s")
        self._show_trace(trace)
        self._start_precompute()

    def _progressed(self, generation: int, text: str) -> None:
        if generation == self._generation and self._busy:
            self.status.setText(f"{self._image_path.name}: {text}…")

    def _failed(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._run_task = self._rerun_task = None
        message = str(error) or type(error).__name__
        self._set_busy(False, "")
        self.status.setText(f"<span style='color:#d04040'>{html.escape(message)}</span>")
        self.status.setToolTip(message)
        self.failed.emit(message)

    def _summary(self, trace: Trace) -> str:
        height, width = trace.image_size
        resized = trace.resized_size
        return (f"{trace.backbone} on {self._image_path.name} ({width}×{height} → "
                f"{resized[1]}×{resized[0]})")

    # ------------------------------------------------------------------ reruns

    def _settings_changed(self, overrides: dict) -> None:
        if self._inspection is None:
            return  # the first run reads the controls when it starts
        self._pending = dict(overrides)
        if self._precompute_task is not None:
            self._precompute_task.cancel()  # stops after its current chunk
            self._precompute_task = None
        if self._rerun_task is None:
            self._submit_rerun()

    def _submit_rerun(self) -> None:
        overrides, self._pending = self._pending, None
        generation = self._generation
        previous = dict(self._trace.settings) if self._trace is not None else {}
        self._rerun_task = self._runner.submit(
            _rerun_job, self._inspection, overrides,
            on_done=lambda result: self._rerun_done(generation, result, previous),
            on_error=lambda error, details: self._failed(generation, error),
        )

    def _rerun_done(self, generation: int, result, previous: dict) -> None:
        if generation != self._generation:
            return
        self._rerun_task = None
        trace, seconds = result
        self.last_rerun_s = seconds
        self._show_trace(trace)
        self.status.setText(self._summary(trace) + f"; rerun {seconds * 1000:.0f} ms")
        if self._pending is not None:
            self._submit_rerun()
        elif is_rpn_change(previous, trace.settings):
            self._start_precompute()

    def _start_precompute(self) -> None:
        if self._inspection is None:
            return
        generation = self._generation
        self._precompute_task = self._runner.submit(
            _precompute_job, self._inspection,
            on_done=lambda _count: self._precompute_done(generation),
            on_error=lambda error, details: None,  # an optimisation; reruns compute what's missing
        )

    def _precompute_done(self, generation: int) -> None:
        if generation == self._generation:
            self._precompute_task = None

    # ------------------------------------------------------------------ showing

    def _show_trace(self, trace: Trace | None) -> None:
        previous, self._trace = self._trace, trace
        self._forget_stale_selections(previous, trace)
        if trace is not None and self._pending is None and self._rerun_task is None:
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
        ready = self._trace is not None and not self._busy
        self.controls.setEnabled(ready)
        self.export_button.setEnabled(self._trace is not None)
        for widget in (self.previous_button, self.next_button, self.options_group):
            widget.setEnabled(self._trace is not None)

    def _set_busy(self, busy: bool, text: str) -> None:
        self._busy = busy
        self.progress.setVisible(busy)
        self.status.setText(html.escape(text))
        self.status.setToolTip("")
        self._update_enabled()
        self.busy_changed.emit(busy)

    def _context(self) -> StageContext:
        return StageContext(self._trace, self._classes, self._ground_truth, self._options,
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
        self.options_group.setVisible(bool(used))

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
        if path and Path(path) != self._checkpoint:
            self.load_checkpoint(Path(path))

    def _add_checkpoint_item(self, path: Path) -> None:
        if self.checkpoint_box.findData(str(path)) < 0:
            self.checkpoint_box.addItem(f"{path.parent.name}/{path.name}", str(path))
            self.checkpoint_box.setItemData(self.checkpoint_box.count() - 1, str(path),
                                            Qt.ItemDataRole.ToolTipRole)

    def _open_checkpoint_dialog(self) -> None:
        start = str(self._checkpoint.parent) if self._checkpoint else ""
        path, _ = file_dialogs.get_open_file_name(self, "Open checkpoint", start,
                                                  "Checkpoints (*.pt);;All files (*)")
        if path:
            self.load_checkpoint(Path(path))

    def _export_dialog(self) -> None:
        stem = self._image_path.stem if self._image_path else "inspect"
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
        if self._needs_run:
            self._start_first_run()


def _modified(path: Path) -> tuple | None:
    """(modification time, size) of ``path``, None when it cannot be read."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def _legend_html(entries: list[LegendEntry]) -> str:
    symbols = {"box": "□", "dashed": "┅", "dot": "●", "fill": "■"}
    return "&nbsp;&nbsp; ".join(
        f"<span style='color:{entry.colour}'>{symbols.get(entry.style, '■')}</span>&nbsp;"
        f"{html.escape(entry.text)}" for entry in entries)
