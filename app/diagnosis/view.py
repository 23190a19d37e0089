"""The Diagnose tab: run a checkpoint over a split off the GUI thread, then show where its
boxes were lost, TIDE's error types, the anchors' fit with a suggested preset, and what-if
re-evaluations; a box in the list opens in the inspector on its image.

Signals: ``open_in_inspector(path, boxes, category_ids, checkpoint, box_index)`` when the user
opens a box (double-click or Enter); ``train_with_preset(dict)`` when the user takes the
suggested preset to the Train tab. The diagnosis runs on a
:class:`~app.workers.TaskRunner`; Cancel stops it between images.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.diagnosis.diagnose import Diagnosis, DiagnosisSession
from engine.diagnosis.funnel import FATE_TITLES, FATES
from engine.diagnosis.split import DiagnosisCancelledError, PassResult

from ..file_dialogs import get_save_file_name
from ..workers import TaskRunner
from .charts import AnchorHistograms, DapChart, FunnelChart

BOX_COLUMNS = ("image", "box", "class", "size", "stage", "reason")


def _diagnose_job(checkpoint: Path, project: Path, split: str, task) -> tuple:
    session = DiagnosisSession.open(checkpoint, project, split)
    diagnosis = session.run(progress=task.progress, stop=lambda: task.cancelled)
    return session, diagnosis


def _what_if_job(session: DiagnosisSession, overrides: dict, task) -> PassResult:
    return session.what_if(progress=task.progress, stop=lambda: task.cancelled, **overrides)


class DiagnoseView(QWidget):
    open_in_inspector = Signal(object, object, object, object, int)
    train_with_preset = Signal(object)
    diagnosis_ready = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project_folder: Path | None = None
        self.session: DiagnosisSession | None = None
        self.diagnosis: Diagnosis | None = None
        self.last_what_if: PassResult | None = None
        self._task = None
        self._runner = TaskRunner(self, name="diagnosis")
        self._build_ui()
        self._update_enabled()

    # ------------------------------------------------------------------ layout

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.checkpoint_box = QComboBox()
        self.checkpoint_box.setMinimumWidth(320)
        self.split_box = QComboBox()
        self.split_box.addItems(["val", "train", "test"])
        self.run_button = QPushButton("Diagnose")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        for label, widget in (("Checkpoint", self.checkpoint_box), ("Split", self.split_box)):
            top.addWidget(QLabel(label))
            top.addWidget(widget)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.progress, 1)
        layout.addLayout(top)
        self.status = QLabel("Choose a checkpoint and a split, then Diagnose.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.tabs = QTabWidget()
        self.funnel_chart = FunnelChart()
        self.dap_chart = DapChart()
        charts = QWidget()
        charts_layout = QVBoxLayout(charts)
        charts_layout.addWidget(self.funnel_chart)
        charts_layout.addWidget(self.dap_chart)
        self.tabs.addTab(charts, "Funnel and errors")
        anchors = QWidget()
        anchors_layout = QVBoxLayout(anchors)
        self.anchor_histograms = AnchorHistograms()
        anchors_layout.addWidget(self.anchor_histograms, 1)
        self.suggestion_label = QLabel()
        self.suggestion_label.setWordWrap(True)
        self.suggestion_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        anchors_layout.addWidget(self.suggestion_label)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train with this preset")
        self.train_button.clicked.connect(self._train_with_suggestion)
        self.save_preset_button = QPushButton("Save preset…")
        self.save_preset_button.clicked.connect(self._save_preset)
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.save_preset_button)
        buttons.addStretch(1)
        anchors_layout.addLayout(buttons)
        self.tabs.addTab(anchors, "Anchors")
        self.tabs.addTab(self._build_what_if(), "What if")
        splitter.addWidget(self.tabs)

        boxes = QWidget()
        boxes_layout = QVBoxLayout(boxes)
        self.fate_filter = QComboBox()
        self.fate_filter.addItem("every box", None)
        self.fate_filter.addItem("every box not detected", "lost")
        for fate in FATES:
            self.fate_filter.addItem(FATE_TITLES[fate], fate)
        self.fate_filter.currentIndexChanged.connect(self._fill_boxes)
        boxes_layout.addWidget(self.fate_filter)
        self.box_table = QTableWidget(0, len(BOX_COLUMNS))
        self.box_table.setHorizontalHeaderLabels(BOX_COLUMNS)
        self.box_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.box_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.box_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.box_table.horizontalHeader().setStretchLastSection(True)
        self.box_table.cellActivated.connect(lambda row, _col: self.open_box(row))
        self.box_table.cellDoubleClicked.connect(lambda row, _col: self.open_box(row))
        boxes_layout.addWidget(self.box_table, 1)
        boxes_layout.addWidget(QLabel("Double-click a box to open it in the inspector."))
        splitter.addWidget(boxes)
        splitter.setSizes([700, 500])
        layout.addWidget(splitter, 1)

    def _build_what_if(self) -> QWidget:
        panel = QWidget()
        form = QFormLayout(panel)
        self.what_if_fields: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for name, kind, low, high, step in (
                ("rpn_pre_nms_top_n", int, 1, 10000, 100),
                ("rpn_post_nms_top_n", int, 1, 10000, 100),
                ("rpn_nms_thresh", float, 0.05, 1.0, 0.05),
                ("box_score_thresh", float, 0.0, 1.0, 0.05),
                ("box_nms_thresh", float, 0.05, 1.0, 0.05),
                ("box_detections_per_img", int, 1, 1000, 10)):
            field = QSpinBox() if kind is int else QDoubleSpinBox()
            field.setRange(low, high)
            field.setSingleStep(step)
            if kind is float:
                field.setDecimals(2)
            form.addRow(name, field)
            self.what_if_fields[name] = field
        self.what_if_button = QPushButton("Re-evaluate with these settings")
        self.what_if_button.clicked.connect(self.start_what_if)
        form.addRow(self.what_if_button)
        self.what_if_table = QTableWidget(0, 3)
        self.what_if_table.setHorizontalHeaderLabels(["", "as trained", "what if"])
        self.what_if_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        form.addRow(self.what_if_table)
        return panel

    # ------------------------------------------------------------------ contract

    def set_project(self, folder: Path | None) -> None:
        """Diagnose this project (forgetting any diagnosis of another one)."""
        if folder != self.project_folder:
            self.cancel()
            self.session = self.diagnosis = None
            self._clear()
        self.project_folder = folder
        self._update_enabled()

    def set_checkpoints(self, paths: list[Path]) -> None:
        """Offer these checkpoints, keeping the chosen one when it is still offered."""
        chosen = self.checkpoint_box.currentData()
        self.checkpoint_box.clear()
        for path in paths:
            path = Path(path)
            self.checkpoint_box.addItem(f"{path.parent.name}/{path.name}", path)
        index = self.checkpoint_box.findData(chosen) if chosen is not None else -1
        if index >= 0:
            self.checkpoint_box.setCurrentIndex(index)
        self._update_enabled()

    def shutdown(self) -> None:
        self.cancel()
        self._runner.shutdown()

    @property
    def busy(self) -> bool:
        return self._task is not None

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        checkpoint = self.checkpoint_box.currentData()
        if checkpoint is None or self.project_folder is None or self.busy:
            return
        split = self.split_box.currentText()
        self.status.setText(f"Diagnosing {Path(checkpoint).name} on the {split} split…")
        self.progress.setValue(0)
        self._task = self._runner.submit(
            _diagnose_job, Path(checkpoint), self.project_folder, split,
            on_done=self._diagnosed, on_error=self._failed, on_progress=self._progressed)
        self._update_enabled()

    def start_what_if(self) -> None:
        if self.session is None or self.busy:
            return
        overrides = {name: field.value() for name, field in self.what_if_fields.items()}
        self.status.setText("Re-evaluating from the kept outputs…")
        self._task = self._runner.submit(
            _what_if_job, self.session, overrides, on_done=self._what_if_done,
            on_error=self._failed, on_progress=self._progressed)
        self._update_enabled()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.status.setText("Cancelled.")
            self.progress.setValue(0)
        self._update_enabled()

    def _progressed(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(1000 * fraction))
        if text:
            self.status.setText(text)

    def _failed(self, error: BaseException, _details: str) -> None:
        self._task = None
        if not isinstance(error, DiagnosisCancelledError):
            self.status.setText(f"Diagnosis failed: {error}")
        self._update_enabled()

    def _diagnosed(self, result: tuple) -> None:
        self._task = None
        self.session, self.diagnosis = result
        self.last_what_if = None
        self.progress.setValue(1000)
        self._show(self.diagnosis)
        self._update_enabled()
        self.diagnosis_ready.emit()

    def _what_if_done(self, result: PassResult) -> None:
        self._task = None
        self.last_what_if = result
        self.progress.setValue(1000)
        self._show_what_if(self.diagnosis.base, result)
        self.status.setText(
            f"What if: AP {result.evaluation.ap:.3f}, AP50 {result.evaluation.ap50:.3f} "
            f"(as trained {self.diagnosis.base.evaluation.ap:.3f} / "
            f"{self.diagnosis.base.evaluation.ap50:.3f}), {result.seconds:.1f} s")
        self._update_enabled()
        self.diagnosis_ready.emit()

    # ------------------------------------------------------------------ showing

    def _clear(self) -> None:
        self.box_table.setRowCount(0)
        self.what_if_table.setRowCount(0)
        self.suggestion_label.clear()

    def _show(self, diagnosis: Diagnosis) -> None:
        base = diagnosis.base
        self.funnel_chart.show_funnel(base.funnel)
        self.dap_chart.show_tide(base.tide)
        self.anchor_histograms.show_fit(diagnosis.fit)
        suggestion = diagnosis.suggestion
        after = suggestion.after.settings
        text = diagnosis.advice.text
        if suggestion.changed:
            text += (f" Suggested: input {after.min_size}/{after.max_size} px, sizes "
                     f"{[list(s) for s in after.sizes]}, aspect ratios "
                     f"{list(after.aspect_ratios[0])} (retrain to use them).")
        self.suggestion_label.setText(text)
        for name, field in self.what_if_fields.items():
            field.setValue(base.settings[name])
        self._fill_boxes()
        notes = "; ".join(diagnosis.notes)
        self.status.setText(
            f"{diagnosis.split}: {len(base.images)} images, {base.funnel.boxes} boxes, "
            f"{base.funnel.total['detected']} detected; AP {base.evaluation.ap:.3f}, AP50 "
            f"{base.evaluation.ap50:.3f} ({base.seconds:.1f} s)" + (f". {notes}" if notes else ""))

    def _show_what_if(self, before: PassResult, after: PassResult) -> None:
        rows = [("AP", before.evaluation.ap, after.evaluation.ap),
                ("AP50", before.evaluation.ap50, after.evaluation.ap50)]
        rows += [(FATE_TITLES[f], before.funnel.total[f], after.funnel.total[f]) for f in FATES]
        self.what_if_table.setRowCount(len(rows))
        for r, (name, old, new) in enumerate(rows):
            for c, value in enumerate((name, old, new)):
                text = value if isinstance(value, str) else (
                    f"{value:.3f}" if isinstance(value, float) else str(value))
                self.what_if_table.setItem(r, c, QTableWidgetItem(text))

    def box_rows(self) -> list[dict]:
        """The boxes the list shows, in its order."""
        if self.diagnosis is None:
            return []
        wanted = self.fate_filter.currentData()
        rows = self.diagnosis.boxes()
        if wanted == "lost":
            return [r for r in rows if r["fate"] != "detected"]
        return [r for r in rows if wanted is None or r["fate"] == wanted]

    def _fill_boxes(self) -> None:
        rows = self.box_rows()
        self.box_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = (Path(row["path"]).name, str(row["box_index"]), row["class"], row["size"],
                      FATE_TITLES[row["fate"]], row["reason"])
            for c, value in enumerate(values):
                self.box_table.setItem(r, c, QTableWidgetItem(value))

    def open_box(self, row: int) -> None:
        """Open the box of list row ``row`` in the inspector on its image."""
        rows = self.box_rows()
        if not 0 <= row < len(rows) or self.session is None:
            return
        item = rows[row]
        record = next(r for r in self.session.dataset.records
                      if r.image_id == item["image_id"])
        self.open_in_inspector.emit(Path(record.path), list(record.boxes),
                                    list(record.category_ids), Path(self.session.checkpoint),
                                    item["box_index"])

    def _train_with_suggestion(self) -> None:
        if self.diagnosis is not None:
            self.train_with_preset.emit(self.diagnosis.preset)

    def _save_preset(self) -> None:
        if self.diagnosis is None:
            return
        path, _ = get_save_file_name(self, "Save the suggested preset", "suggested-preset.json",
                              "Training presets (*.json)")
        if path:
            Path(path).write_text(json.dumps(self.diagnosis.preset, indent=2), encoding="utf-8")
            self.status.setText(f"Saved {path}: frcnn train --config {path} takes it.")

    def _update_enabled(self) -> None:
        idle = not self.busy
        self.run_button.setEnabled(idle and self.project_folder is not None
                                   and self.checkpoint_box.count() > 0)
        self.cancel_button.setEnabled(not idle)
        has = self.diagnosis is not None
        self.train_button.setEnabled(idle and has and self.diagnosis.suggestion.changed)
        self.save_preset_button.setEnabled(has)
        self.what_if_button.setEnabled(idle and self.session is not None)
