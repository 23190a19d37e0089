"""The review queue on the Label tab: labels that look wrong to a model that did not train on
them (missing boxes, badly placed boxes, swapped classes), worst first, each to accept or keep.

"Review labels" runs :mod:`engine.active.held_out` on the runner's worker thread (the model
chosen in the suggestions panel on a split it did not train on, or k-fold training), with
progress and Cancel. Choosing an entry shows its image with the label box selected and the
model's proposal drawn over it; the view's "Accept correction" (Y) applies the proposal as an
ordinary edit (undoable with Ctrl+Z like every edit) and "Keep label" (N) dismisses the entry.
Decisions last for the queue shown; a new review starts a new queue.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.active.held_out import (
    DEFAULT_FOLD_BUDGET_S,
    DEFAULT_FOLDS,
    review_kfold,
    review_split,
)
from engine.active.review import BADLOC, MISSING, ReviewEntry, ReviewQueue
from engine.data.annotations import BoxRecord
from engine.data.project import ProjectError
from engine.text import count

from ..workers import Task, TaskRunner
from .editor import ProjectEditor

PROGRESS_STEPS = 1000
KFOLD = "kfold"
# Where the predictions come from: (text, split reviewed or KFOLD).
SOURCES = (("Chosen model, val split", "val"), ("Chosen model, test split", "test"),
           (f"{DEFAULT_FOLDS}-fold training (all done images, slow)", KFOLD))
KEPT, ACCEPTED = "kept", "accepted"
ACTION_TEXT = {MISSING: "Add the missing box", BADLOC: "Move the box",
               "swapped class": "Change the class"}


def proposal_box(entry: ReviewEntry | None) -> BoxRecord | None:
    """The model's proposal of ``entry`` as a box to draw (None: it proposes none)."""
    if entry is None or entry.proposal is None or entry.proposal_category_id is None:
        return None
    return BoxRecord(*entry.proposal, entry.proposal_category_id, source="predicted",
                     score=entry.proposal_score)


def _run_review(source: str, checkpoint: str | None, folder: Path, task: Task) -> ReviewQueue:
    """The review on the worker thread (the project opened read-only, by folder)."""
    stop = lambda: task.cancelled  # noqa: E731 - one expression, passed on
    if source == KFOLD:
        return review_kfold(folder, folds=DEFAULT_FOLDS, budget_s=DEFAULT_FOLD_BUDGET_S,
                            progress=task.progress, stop=stop)
    return review_split(checkpoint, folder, source, progress=task.progress, stop=stop)


class ReviewPanel(QWidget):
    """See the module docstring. ``entry_chosen`` carries the :class:`ReviewEntry` to show
    (None: none); ``message`` status-bar text."""

    entry_chosen = Signal(object)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor: ProjectEditor | None = None
        self.checkpoint = lambda: None  # the chosen model's path (the view sets it)
        self._runner = TaskRunner(self, name="review")
        self._task: Task | None = None
        self.queue: ReviewQueue | None = None
        self.decisions: dict[int, str] = {}  # row -> KEPT or ACCEPTED

        self.source = QComboBox()
        for text, split in SOURCES:
            self.source.addItem(text, split)
        self.source.setToolTip("Predictions must come from a model that did not train on the "
                               "images reviewed: the chosen model (suggestions panel) on its "
                               "val or test split, or k-fold training")
        self.source.currentIndexChanged.connect(lambda _index: self.update_buttons())
        self.run_button = QPushButton("Review labels")
        self.cancel = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress_text = QLabel()
        self.run_button.clicked.connect(self.run)
        self.cancel.clicked.connect(self.cancel_run)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Kind", "Score", "Image", "Decision"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.accept_button = QPushButton("Accept correction (Y)")
        self.keep_button = QPushButton("Keep label (N)")
        self.accept_button.clicked.connect(self.accept_current)
        self.keep_button.clicked.connect(self.keep_current)

        runs = QHBoxLayout()
        runs.addWidget(self.run_button)
        runs.addWidget(self.cancel)
        form = QFormLayout()
        form.addRow("Predictions:", self.source)
        decide = QHBoxLayout()
        decide.addWidget(self.accept_button)
        decide.addWidget(self.keep_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("<b>Labels that look wrong</b>"))
        layout.addLayout(form)
        layout.addLayout(runs)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_text)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(decide)
        self.update_buttons()

    # --- state ------------------------------------------------------------------------------

    def set_editor(self, editor: ProjectEditor | None) -> None:
        self.cancel_run()
        self.editor = editor
        self.show_queue(None)

    @property
    def running(self) -> bool:
        return self._task is not None

    def current_entry(self) -> ReviewEntry | None:
        row = self.table.currentRow()
        if self.queue is None or not 0 <= row < len(self.queue.entries):
            return None
        return self.queue.entries[row]

    def update_buttons(self) -> None:
        """Enable what can be done now (the view calls it when the chosen model changes)."""
        running = self.running
        needs_model = self.source.currentData() != KFOLD
        self.run_button.setEnabled(self.editor is not None and not running
                                   and (not needs_model or self.checkpoint() is not None))
        self.run_button.setToolTip("Choose a model in the suggestions panel first"
                                   if needs_model and self.checkpoint() is None else "")
        self.cancel.setEnabled(running)
        self.progress.setVisible(running)
        self.progress_text.setVisible(running)
        entry = self.current_entry()
        open_row = entry is not None and self.table.currentRow() not in self.decisions
        self.accept_button.setEnabled(open_row and entry.can_accept)
        self.keep_button.setEnabled(open_row)

    # --- running ----------------------------------------------------------------------------

    def run(self) -> None:
        if self.editor is None or self.running:
            return
        source = self.source.currentData()
        checkpoint = self.checkpoint()
        if source != KFOLD and checkpoint is None:
            self.message.emit("Choose a model in the suggestions panel to review with.")
            return
        try:
            self.editor.flush()  # the review reads the store: unsaved boxes first
        except ProjectError as error:
            self.message.emit(f"Not reviewed: {error}")
            return
        self.progress.setValue(0)
        self.progress_text.setText("starting")
        self._task = self._runner.submit(
            _run_review, source, checkpoint, self.editor.project.folder,
            on_done=self._done, on_error=self._failed, on_progress=self._progressed)
        self.message.emit("Reviewing the labels…")
        self.update_buttons()

    def _progressed(self, fraction: float, text: str) -> None:
        self.progress.setValue(round(fraction * PROGRESS_STEPS))
        self.progress_text.setText(text)

    def _done(self, queue: ReviewQueue) -> None:
        self._task = None
        self.show_queue(queue)
        skipped = f"; {count(len(queue.skipped), 'image')} skipped" if queue.skipped else ""
        self.message.emit(f"Review: {count(len(queue.entries), 'entry')}, worst first; "
                          f"{count(len(queue.flagged), 'image')} flagged{skipped}.")
        for path, reason in queue.skipped:
            self.message.emit(f"{path}: skipped, {reason}")

    def _failed(self, error: BaseException, _details: str) -> None:
        self._task = None
        self.message.emit(f"Review failed: {error}")
        self.update_buttons()

    def cancel_run(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            self.message.emit("Review cancelled.")
        self.update_buttons()

    def shutdown(self) -> None:
        self.cancel_run()
        self._runner.shutdown()

    # --- the queue --------------------------------------------------------------------------

    def show_queue(self, queue: ReviewQueue | None) -> None:
        self.queue = queue
        self.decisions = {}
        entries = queue.entries if queue is not None else []
        self.table.blockSignals(True)
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            cells = (entry.kind, f"{entry.score:.3f}", Path(entry.path).name, "")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 2:
                    item.setToolTip(entry.path)
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        if queue is None:
            self.summary.setText("")
        else:
            notes = "".join(f"\n{note}" for note in queue.notes)
            sure = "" if queue.confident is None else \
                f" Predictions from score {queue.confident:.2f} count as confident."
            self.summary.setText(f"{queue.source}: {count(len(entries), 'entry')}, worst "
                                 "first (the lower the score, the likelier the label is "
                                 f"wrong); cleanlab flags {count(len(queue.flagged), 'image')} "
                                 f"as likely wrong.{sure}{notes}")
        if entries:
            self.table.selectRow(0)
        else:
            self.entry_chosen.emit(None)
        self.update_buttons()

    def _selection_changed(self) -> None:
        self.update_buttons()
        self.entry_chosen.emit(self.current_entry())

    def _decide(self, decision: str) -> None:
        row = self.table.currentRow()
        self.decisions[row] = decision
        self.table.item(row, 3).setText(decision)
        following = [r for r in range(row + 1, self.table.rowCount()) if r not in self.decisions]
        if following:
            self.table.selectRow(following[0])
        else:
            self.update_buttons()

    def accept_current(self) -> None:
        """Apply the current entry's correction to its image (shown by then) as one edit."""
        entry = self.current_entry()
        editor = self.editor
        if entry is None or editor is None or self.table.currentRow() in self.decisions:
            return
        if editor.image_id != entry.image_id:
            self.message.emit("Show the entry's image first.")
            return
        corrected = entry.corrected(editor.boxes)
        if corrected is None:
            self.message.emit("Not applied: that box was changed since the review.")
            return
        editor.edit_boxes(corrected, f"Review: {ACTION_TEXT[entry.kind].lower()}")
        self._decide(ACCEPTED)

    def keep_current(self) -> None:
        if self.current_entry() is not None and self.table.currentRow() not in self.decisions:
            self._decide(KEPT)
