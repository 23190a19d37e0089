"""Model-assisted labeling: run a trained checkpoint on this image or on every unlabeled one,
then accept or reject its suggestions.

Suggestions are drawn dashed with their score. Which ones are shown is a score threshold, one
for all classes (the slider) unless a class has its own. "Accept" turns a suggestion into an
ordinary box (source "predicted", keeping its score); every accept and reject is an undoable
edit, saved like any other. Predictions for images other than the one shown are written to the
project as they come, so a run over a thousand images survives closing the program.

The model runs on a worker thread (loading it takes a few seconds, each image a fraction of
one on a CPU); the panel shows progress and can cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import file_dialogs
from engine.assist import Predictor
from engine.data.annotations import BoxRecord
from engine.data.project import CategoryRow
from engine.text import count
from engine.training.runs import list_runs

from ..workers import Task, TaskRunner
from .editor import ProjectEditor

DEFAULT_THRESHOLD = 0.5
FOLLOW_GLOBAL = -0.01  # a class threshold spin box at this value follows the slider


@dataclass
class _Job:
    """One run over images: the ids still to come back, and the tasks to cancel."""

    total: int
    done: int = 0
    failed: int = 0
    tasks: tuple[Task, ...] = ()


def _predictor_for(checkpoint: Path, categories: list[CategoryRow],
                   cache: dict) -> Predictor:
    """The predictor for ``checkpoint`` (loaded once per file version; worker thread only)."""
    key = (checkpoint, checkpoint.stat().st_mtime_ns, tuple(categories))
    if cache.get("key") != key:
        cache["predictor"] = Predictor(checkpoint, categories)
        cache["key"] = key
    return cache["predictor"]


class AssistPanel(QWidget):
    """See the module docstring. ``suggestions_changed`` asks the view to redraw the
    suggestions shown (the threshold changed); ``message`` carries status-bar text."""

    suggestions_changed = Signal()
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor: ProjectEditor | None = None
        self._runner = TaskRunner(self, name="assist")
        self._predictor_cache: dict = {}
        self._job: _Job | None = None
        self.selected: int | None = None  # the suggestion selected on the canvas

        self.checkpoint = QComboBox()
        self.checkpoint.setToolTip("The trained model that suggests boxes")
        self.checkpoint.setPlaceholderText("none yet: train one on the Train tab")
        self.checkpoint.activated.connect(self._checkpoint_chosen)
        self.predict_image = QPushButton("Predict this image")
        self.predict_unlabeled = QPushButton("Predict unlabeled images")
        self.cancel = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m images")
        self.predict_image.clicked.connect(self.run_on_current)
        self.predict_unlabeled.clicked.connect(self.run_on_unlabeled)
        self.cancel.clicked.connect(self.cancel_run)

        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100,
                              value=round(DEFAULT_THRESHOLD * 100))
        self.slider_label = QLabel()
        self.slider.valueChanged.connect(self._threshold_changed)
        self.class_table = QTableWidget(0, 2)
        self.class_table.setHorizontalHeaderLabels(["Class", "Own threshold"])
        self.class_table.verticalHeader().hide()
        self.class_table.horizontalHeader().setStretchLastSection(True)
        self._fit_class_table()
        self._class_spins: dict[int, QDoubleSpinBox] = {}

        self.count_label = QLabel()
        self.accept_selected = QPushButton("Accept")
        self.accept_selected.setToolTip("Accept the selected suggestion (Enter, or double-click "
                                        "it)")
        self.accept_shown = QPushButton("Accept shown")
        self.accept_shown.setToolTip("Accept every suggestion at or above its threshold (the "
                                     "ones drawn)")
        self.accept_all = QPushButton("Accept all")
        self.accept_all.setToolTip("Accept every suggestion on this image, the ones hidden by "
                                   "the threshold too")
        self.reject_selected = QPushButton("Reject")
        self.reject_selected.setToolTip("Reject the selected suggestion (Delete)")
        self.reject_all = QPushButton("Reject all")
        self.accept_selected.clicked.connect(self.accept_selected_suggestion)
        self.accept_shown.clicked.connect(lambda: self._accept(self.shown_indices()))
        self.accept_all.clicked.connect(
            lambda: self._accept(range(len(self.editor.suggestions)) if self.editor else ()))
        self.reject_selected.clicked.connect(self.reject_selected_suggestion)
        self.reject_all.clicked.connect(self.reject_all_suggestions)

        runs = QHBoxLayout()
        runs.addWidget(self.predict_image)
        runs.addWidget(self.predict_unlabeled)
        progress = QHBoxLayout()
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.cancel)
        threshold = QHBoxLayout()
        threshold.addWidget(self.slider, 1)
        threshold.addWidget(self.slider_label)
        form = QFormLayout()
        form.addRow("Model:", self.checkpoint)
        form.addRow("Show from score:", threshold)
        decide = QGridLayout()
        decide.addWidget(self.accept_selected, 0, 0)
        decide.addWidget(self.accept_shown, 0, 1)
        decide.addWidget(self.accept_all, 0, 2)
        decide.addWidget(self.reject_selected, 1, 0)
        decide.addWidget(self.reject_all, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("<b>Suggestions from a model</b>"))
        layout.addLayout(form)
        layout.addLayout(runs)
        layout.addLayout(progress)
        layout.addWidget(self.class_table)
        layout.addWidget(self.count_label)
        layout.addLayout(decide)
        layout.addStretch(1)  # packed at the top when the panel is taller than it needs
        self._threshold_changed()
        self._update()

    # --- state ----------------------------------------------------------------------------

    def set_editor(self, editor: ProjectEditor | None) -> None:
        self.cancel_run()
        self.editor = editor
        self.refresh_checkpoints()
        self.refresh_classes()
        self._update()

    def refresh_checkpoints(self) -> None:
        """List the project's runs' checkpoints (newest first), keeping the choice."""
        chosen = self.checkpoint.currentData()
        self.checkpoint.clear()
        if self.editor is not None:
            for run in list_runs(self.editor.project.folder):
                for kind, path in run.checkpoints.items():
                    score = f", AP {run.best_ap:.3f}" if kind == "best" and run.best_ap \
                        is not None else ""
                    # Data as text: findData() compares Python objects by identity.
                    self.checkpoint.addItem(f"{run.name}: {kind}{score}", str(path))
        if chosen is not None and self.checkpoint.findData(chosen) < 0:
            self.checkpoint.addItem(Path(chosen).name, chosen)
        self.checkpoint.addItem("Other checkpoint file…", None)
        index = self.checkpoint.findData(chosen) if chosen is not None else 0
        self.checkpoint.setCurrentIndex(self._first_model(index))
        self._update()

    def _first_model(self, index: int) -> int:
        """``index`` if it names a model, else the first model listed; -1 (the placeholder)
        when there is none yet, rather than showing "Other checkpoint file…" as chosen."""
        if index >= 0 and self.checkpoint.itemData(index) is not None:
            return index
        return 0 if self.checkpoint.itemData(0) is not None else -1

    def refresh_classes(self) -> None:
        """One row per class with its own threshold (following the slider by default)."""
        old = {cid: spin.value() for cid, spin in self._class_spins.items()}
        categories = self.editor.project.categories() if self.editor is not None else []
        self.class_table.setRowCount(len(categories))
        self._class_spins = {}
        for row, category in enumerate(categories):
            self.class_table.setItem(row, 0, QTableWidgetItem(category.name))
            spin = QDoubleSpinBox(minimum=FOLLOW_GLOBAL, maximum=1.0, singleStep=0.05,
                                  decimals=2, value=old.get(category.id, FOLLOW_GLOBAL))
            spin.setSpecialValueText("as slider")
            spin.valueChanged.connect(lambda _value: self._thresholds_changed())
            self.class_table.setCellWidget(row, 1, spin)
            self._class_spins[category.id] = spin
        self._fit_class_table()

    def _fit_class_table(self, most_rows: int = 8) -> None:
        """The class table as tall as its rows (up to ``most_rows``, then it scrolls), so that
        no row is cut off at the bottom."""
        table = self.class_table
        table.resizeRowsToContents()
        rows = min(table.rowCount(), most_rows)
        height = (table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
                  + sum(table.rowHeight(row) for row in range(rows)))
        if table.rowCount() > most_rows:
            height += table.horizontalScrollBar().sizeHint().height() // 2
        table.setFixedHeight(height)

    def threshold(self, category_id: int) -> float:
        spin = self._class_spins.get(category_id)
        if spin is not None and spin.value() >= 0:
            return spin.value()
        return self.slider.value() / 100

    def set_class_threshold(self, category_id: int, value: float | None) -> None:
        """``value`` None: follow the slider."""
        self._class_spins[category_id].setValue(FOLLOW_GLOBAL if value is None else value)

    def thresholds(self) -> dict:
        """The thresholds as set, to keep between runs: ``{"all": slider value, "classes":
        {category id (text): own threshold}}`` (classes that follow the slider left out)."""
        return {"all": self.slider.value() / 100,
                "classes": {str(cid): spin.value() for cid, spin in self._class_spins.items()
                            if spin.value() >= 0}}

    def set_thresholds(self, thresholds: dict) -> None:
        """Set what :meth:`thresholds` gave (unknown classes and bad values ignored)."""
        value = thresholds.get("all")
        if isinstance(value, (int, float)) and 0 <= value <= 1:
            self.slider.setValue(round(value * 100))
        classes = thresholds.get("classes")
        for cid, spin in self._class_spins.items():
            own = classes.get(str(cid)) if isinstance(classes, dict) else None
            spin.setValue(own if isinstance(own, (int, float)) and 0 <= own <= 1
                          else FOLLOW_GLOBAL)

    def shown(self) -> tuple[tuple[int, BoxRecord], ...]:
        """The current image's suggestions at or above their class's threshold, with their
        index in the editor's list."""
        if self.editor is None:
            return ()
        return tuple((index, box) for index, box in enumerate(self.editor.suggestions)
                     if box.score is not None and box.score >= self.threshold(box.category_id))

    def shown_indices(self) -> list[int]:
        return [index for index, _box in self.shown()]

    def set_selected(self, index: int | None) -> None:
        self.selected = index
        self._update()

    def _threshold_changed(self, *_args: object) -> None:
        self.slider_label.setText(f"{self.slider.value() / 100:.2f}")
        self._thresholds_changed()

    def _thresholds_changed(self) -> None:
        self._update()
        self.suggestions_changed.emit()

    def _update(self) -> None:
        has_image = self.editor is not None and self.editor.image_id is not None
        has_model = self.checkpoint.currentData() is not None
        running = self._job is not None
        self.predict_image.setEnabled(has_image and has_model and not running)
        self.predict_unlabeled.setEnabled(self.editor is not None and has_model
                                          and not running)
        self.cancel.setEnabled(running)
        self.progress.setVisible(running)
        total = len(self.editor.suggestions) if has_image else 0
        shown = len(self.shown()) if has_image else 0
        self.count_label.setText(f"{count(total, 'suggestion')} on this image, {shown} shown"
                                 if total else "No suggestions on this image.")
        # Say what each accepts; nothing is accepted unseen when none is shown.
        hidden = total - shown
        self.accept_shown.setText(f"Accept shown ({shown})" if shown else "Accept shown")
        self.accept_shown.setEnabled(shown > 0)
        # Short texts (the panel keeps its width); the tooltip says what "all" includes.
        self.accept_all.setText(f"Accept all ({total})" if shown else "Accept all")
        self.accept_all.setToolTip(
            f"Accept all {count(total, 'suggestion')} on this image, the {hidden} hidden by the "
            f"threshold too" if hidden else "Accept every suggestion on this image")
        self.accept_all.setEnabled(shown > 0)
        self.reject_all.setEnabled(total > 0)
        self.accept_selected.setEnabled(self.selected is not None)
        self.reject_selected.setEnabled(self.selected is not None)

    def _checkpoint_chosen(self, _index: int) -> None:
        if self.checkpoint.currentData() is None:
            start = str(self.editor.project.folder) if self.editor else ""
            path, _ = file_dialogs.get_open_file_name(self, "Checkpoint", start,
                                                      "Checkpoints (*.pt);;All files (*)")
            if path:
                self.checkpoint.insertItem(0, Path(path).name, str(path))
            self.checkpoint.setCurrentIndex(self._first_model(0))
        self._update()

    # --- decisions --------------------------------------------------------------------------

    def _accept(self, indices) -> None:
        if self.editor is not None:
            self.editor.accept_suggestions(indices)

    def accept_selected_suggestion(self) -> None:
        if self.selected is not None:
            self._accept([self.selected])

    def reject_selected_suggestion(self) -> None:
        if self.editor is not None and self.selected is not None:
            self.editor.reject_suggestions([self.selected])

    def reject_all_suggestions(self) -> None:
        if self.editor is not None:
            self.editor.reject_suggestions(range(len(self.editor.suggestions)))

    # --- running the model ------------------------------------------------------------------

    def run_on_current(self) -> None:
        if self.editor is None or self.editor.image_id is None:
            return
        self._run([self.editor.image_id])

    def run_on_unlabeled(self) -> None:
        if self.editor is None:
            return
        ids = [row.id for row in self.editor.project.images(status="unlabeled")
               if row.problem is None]
        if not ids:
            self.message.emit("No unlabeled images to predict.")
            return
        self._run(ids)

    def _run(self, image_ids: list[int]) -> None:
        checkpoint = self.checkpoint.currentData()
        if checkpoint is None or self.editor is None:
            return
        project = self.editor.project
        categories = project.categories()
        files = {image_id: project.image(image_id).file for image_id in image_ids}
        model = str(checkpoint)
        job = _Job(total=len(image_ids))
        self._job = job
        self.progress.setRange(0, job.total)
        self.progress.setValue(0)
        cache = self._predictor_cache

        def predict(path: Path, task: Task) -> list[BoxRecord]:
            if task.cancelled:
                return []
            return _predictor_for(Path(checkpoint), categories, cache).predict(path)

        tasks = []
        for image_id in image_ids:
            tasks.append(self._runner.submit(
                predict, files[image_id],
                on_done=lambda found, image_id=image_id: self._predicted(job, image_id, found,
                                                                         model),
                on_error=lambda error, _details, image_id=image_id: self._failed(
                    job, image_id, error)))
        job.tasks = tuple(tasks)
        self.message.emit(f"Predicting {count(job.total, 'image')} with "
                          f"{Path(checkpoint).name}…")
        self._update()

    def _predicted(self, job: _Job, image_id: int, found: list[BoxRecord], model: str) -> None:
        if self.editor is not None and job is self._job:
            if image_id == self.editor.image_id:
                self.editor.set_suggestions(found, model)
            else:
                self.editor.project.set_predictions(image_id, found, model)
        self._advance(job)

    def _failed(self, job: _Job, image_id: int, error: BaseException) -> None:
        job.failed += 1
        self.message.emit(f"Image {image_id}: {error}")
        self._advance(job)

    def _advance(self, job: _Job) -> None:
        if job is not self._job:
            return
        job.done += 1
        self.progress.setValue(job.done)
        if job.done == job.total:
            self._job = None
            failed = f", {job.failed} failed" if job.failed else ""
            self.message.emit(f"Predicted {count(job.total - job.failed, 'image')}{failed}.")
            self._update()

    def cancel_run(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            for task in job.tasks:
                task.cancel()
            self.message.emit(f"Cancelled after {job.done} of "
                              f"{count(job.total, 'image')}.")
        self._update()

    @property
    def running(self) -> bool:
        return self._job is not None

    def shutdown(self) -> None:
        self.cancel_run()
        self._runner.shutdown()
