"""File > Export trained model…: a checkpoint of the project to torchvision, TorchScript or
ONNX, with its model card, checked against the checkpoint before anything is written.

The export runs on a worker thread (:func:`engine.export.export_model`, what ``frcnn
export-model`` runs) and shows its steps (load, export, compare, write) on a progress bar with
the time the current one has taken; Cancel stops it before the next step (a step under way,
such as ONNX's tracing, finishes first) and nothing is written. The result says where the
files are and how closely the export reproduces the checkpoint's detections.

The format offered first is one the chosen checkpoint supports (checked on the worker thread
when a checkpoint is chosen): torchvision's builders have no EfficientNet-Lite backbone, so a
model trained with the default backbone opens on TorchScript, and the torchvision entry is
greyed out with the reason in its tooltip.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import file_dialogs
from engine.export import (
    FORMATS,
    ExportCancelledError,
    ExportResult,
    export_formats,
    export_model,
)

from .workers import TaskRunner

FORMAT_TEXT = {
    "torchvision": "torchvision state dict (.pth): load into fasterrcnn_* builders",
    "torchscript": "TorchScript (.pt): runs with torch alone, no Python package needed",
    "onnx": "ONNX (.onnx): onnxruntime, TensorRT, OpenVINO, …",
}
SUFFIXES = {"torchvision": ".pth", "torchscript": ".pt", "onnx": ".onnx"}


class ExportModelDialog(QDialog):
    """Checkpoint, format and output file; Export runs it and shows the outcome."""

    def __init__(self, checkpoints: list[Path], parent: QWidget | None = None,
                 start: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export trained model")
        self._start = start or Path.home()
        self._runner = TaskRunner(self, name="model-export")
        self.result_: ExportResult | None = None
        self.checkpoint = QComboBox()
        for path in checkpoints:
            self.checkpoint.addItem(f"{path.parent.name}/{path.name}", str(path))
        pick = QPushButton("File…")
        pick.clicked.connect(self._pick_checkpoint)
        self.format = QComboBox()
        for key in FORMATS:
            self.format.addItem(FORMAT_TEXT[key], key)
        self.out = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._pick_out)
        self.formats_note = QLabel()
        self.formats_note.setWordWrap(True)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setPlaceholderText("The export's steps and its check against the checkpoint "
                                    "appear here.")
        self.progress = QProgressBar()
        self.progress.setFormat("step %v of %m done")
        self.step_label = QLabel()
        form = QFormLayout()
        form.addRow("Checkpoint:", self._row(self.checkpoint, pick))
        form.addRow("Format:", self.format)
        form.addRow("", self.formats_note)
        form.addRow("Write to:", self._row(self.out, browse))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button = self.buttons.addButton("Cancel export",
                                                    QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.cancel_export)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.step_label)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.buttons)
        self._task = None  # the export under way
        self._lines: list[str] = []  # report lines from the worker, shown by the timer
        self._step_started = 0.0
        self._ticker = QTimer(self, interval=250)
        self._ticker.timeout.connect(self._tick)
        self._runner.busy_changed.connect(self._busy_changed)
        self.format.currentIndexChanged.connect(self._suggest_out)
        self.checkpoint.currentIndexChanged.connect(self._suggest_out)
        self.checkpoint.currentIndexChanged.connect(self._check_formats)
        self.out.textChanged.connect(self._update)
        self._show_progress(False)
        self._suggest_out()
        self._check_formats()
        self.resize(720, 460)

    @staticmethod
    def _row(*widgets: QWidget) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(widgets[0], 1)
        for widget in widgets[1:]:
            layout.addWidget(widget)
        return row

    def _pick_checkpoint(self) -> None:
        path, _ = file_dialogs.get_open_file_name(self, "Checkpoint", str(self._start),
                                                  "Checkpoints (*.pt);;All files (*)")
        if path:
            self.checkpoint.insertItem(0, Path(path).name, path)
            self.checkpoint.setCurrentIndex(0)

    def _pick_out(self) -> None:
        suffix = SUFFIXES[self.format.currentData()]
        path, _ = file_dialogs.get_save_file_name(self, "Export to", self.out.text(),
                                                  f"*{suffix}")
        if path:
            self.out.setText(path)

    def _suggest_out(self) -> None:
        """Beside the checkpoint, named after its run and the format: the user may change it."""
        checkpoint = self.checkpoint.currentData()
        if checkpoint is None:
            return
        checkpoint = Path(checkpoint)
        name = f"{checkpoint.parent.name}-{checkpoint.stem}{SUFFIXES[self.format.currentData()]}"
        self.out.setText(str(checkpoint.parent / "exports" / name))

    def _update(self) -> None:
        format_ok = self._format_enabled(self.format.currentIndex())
        self.export_button.setEnabled(bool(self.out.text().strip())
                                      and self.checkpoint.currentData() is not None
                                      and format_ok and not self._runner.busy)
        self.cancel_button.setEnabled(self._task is not None and not self._task.cancelled)

    # --- which formats the checkpoint supports ---

    def _format_enabled(self, index: int) -> bool:
        model = self.format.model()
        item = model.item(index) if isinstance(model, QStandardItemModel) else None
        return item is None or item.isEnabled()

    def _check_formats(self) -> None:
        checkpoint = self.checkpoint.currentData()
        if checkpoint is None:
            return
        self.formats_note.setText("Checking which formats this checkpoint can be exported as…")
        self._runner.submit(export_formats, Path(checkpoint),
                            on_done=lambda reasons, c=checkpoint: self._formats_known(c, reasons),
                            on_error=lambda error, _details: self.formats_note.setText(
                                f"Not a checkpoint that can be exported: {error}"))
        self._update()

    def _formats_known(self, checkpoint: str, reasons: dict[str, str | None]) -> None:
        """Grey out the formats ``checkpoint`` cannot be exported as (the reason in the
        tooltip); if the chosen one is among them, choose the first it can."""
        if checkpoint != self.checkpoint.currentData():
            return  # another checkpoint was chosen meanwhile
        model = self.format.model()
        for index in range(self.format.count()):
            reason = reasons.get(self.format.itemData(index))
            model.item(index).setEnabled(reason is None)
            self.format.setItemData(index, reason or FORMAT_TEXT[self.format.itemData(index)],
                                    Qt.ItemDataRole.ToolTipRole)
        unsupported = [key for key, reason in reasons.items() if reason is not None]
        if not self._format_enabled(self.format.currentIndex()):
            for index in range(self.format.count()):
                if self._format_enabled(index):
                    self.format.setCurrentIndex(index)
                    break
        self.formats_note.setText(
            "" if not unsupported else
            f"Not available for this checkpoint: {', '.join(unsupported)} "
            f"({reasons[unsupported[0]].split(': ', 1)[-1]})")
        self._update()

    # --- the export ---

    def start_export(self) -> None:
        checkpoint, out = Path(self.checkpoint.currentData()), Path(self.out.text().strip())
        format = self.format.currentData()
        self.log.clear()
        self._lines = []
        lines = self._lines

        def run(task) -> ExportResult:
            return export_model(
                checkpoint, format, out, report=lines.append,
                on_step=lambda number, total, text: task.progress((number - 1) / total,
                                                                  f"{number}/{total} {text}"),
                cancelled=lambda: task.cancelled)

        self._task = self._runner.submit(run, on_done=self._done, on_error=self._failed,
                                         on_progress=self._stepped)
        self.progress.setRange(0, 4)
        self.progress.setValue(0)
        self._step_started = time.monotonic()
        self.step_label.setText("Starting…")
        self._show_progress(True)
        self._ticker.start()
        self._update()

    def _stepped(self, _fraction: float, text: str) -> None:
        counted, _, what = text.partition(" ")
        number, total = (int(part) for part in counted.split("/"))
        self.progress.setRange(0, total)
        self.progress.setValue(number - 1)
        self._step = f"Step {number} of {total}: {what}"
        self._step_started = time.monotonic()
        self._tick()

    def _tick(self) -> None:
        """Move the worker's report lines into the log; show the current step's time."""
        while self._lines:
            self.log.appendPlainText(self._lines.pop(0))
        if self._task is not None:
            elapsed = time.monotonic() - self._step_started
            step = getattr(self, "_step", "Starting")
            note = " (cancelling when it ends)" if self._task.cancelled else ""
            self.step_label.setText(f"{step}… {elapsed:.0f} s{note}")

    def cancel_export(self) -> None:
        """Stop the export before its next step; nothing is written."""
        if self._task is None:
            return
        self._task.cancel()
        self.log.appendPlainText("Cancelling: the step under way finishes first (ONNX's "
                                 "tracing cannot be interrupted); nothing will be written.")
        self._tick()
        self._update()

    def _busy_changed(self, busy: bool) -> None:
        if busy or self._task is None:
            self._update()
            return
        if self._task.cancelled:  # a cancelled task's outcome is not delivered: end it here
            self._finish("Cancelled: nothing was written.")
        self._update()

    def _finish(self, text: str) -> None:
        self._ticker.stop()
        self._tick()
        self._task = None
        self._step = "Starting"
        self._show_progress(False)
        self.log.appendPlainText(text)
        self._update()

    def _show_progress(self, shown: bool) -> None:
        self.progress.setVisible(shown)
        self.step_label.setVisible(shown)

    def _done(self, result: ExportResult) -> None:
        self.result_ = result
        verification = result.verification.summary() if result.verification else "not checked"
        self._finish(
            f"\nDone in {result.seconds:.1f} s.\nModel: {result.model_path}\n"
            f"Model card: {result.card_path}\nCheck against the checkpoint: {verification}")

    def _failed(self, error: BaseException, _details: str) -> None:
        if isinstance(error, ExportCancelledError):
            self._finish("Cancelled: nothing was written.")
            return
        self._finish(f"\nNot exported: {error}\nNothing was written.")

    def done(self, code: int) -> None:  # Qt calls this on close: stop the worker first
        if self._task is not None:
            self._task.cancel()
        self._runner.shutdown()
        super().done(code)
