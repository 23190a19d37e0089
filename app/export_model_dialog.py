"""File > Export trained model…: a checkpoint of the project to torchvision, TorchScript or
ONNX, with its model card, checked against the checkpoint before anything is written.

The export runs on a worker thread (:func:`engine.export.export_model`, what ``frcnn
export-model`` runs) and reports its steps in the dialog; the result says where the files are
and how closely the export reproduces the checkpoint's detections.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import file_dialogs
from engine.export import FORMATS, ExportResult, export_model

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
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setPlaceholderText("The export's steps and its check against the checkpoint "
                                    "appear here.")
        form = QFormLayout()
        form.addRow("Checkpoint:", self._row(self.checkpoint, pick))
        form.addRow("Format:", self.format)
        form.addRow("Write to:", self._row(self.out, browse))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.start_export)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.buttons)
        self.format.currentIndexChanged.connect(self._suggest_out)
        self.checkpoint.currentIndexChanged.connect(self._suggest_out)
        self.out.textChanged.connect(self._update)
        self._suggest_out()
        self.resize(720, 420)

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
        self.export_button.setEnabled(bool(self.out.text().strip())
                                      and self.checkpoint.currentData() is not None
                                      and not self._runner.busy)

    def start_export(self) -> None:
        checkpoint, out = Path(self.checkpoint.currentData()), Path(self.out.text().strip())
        format = self.format.currentData()
        self.log.clear()
        self.export_button.setEnabled(False)

        def run(task) -> ExportResult:
            return export_model(checkpoint, format, out,
                                report=lambda line: task.progress(0.0, line))

        self._runner.submit(run, on_done=self._done, on_error=self._failed,
                            on_progress=lambda _fraction, line: self.log.appendPlainText(line))

    def _done(self, result: ExportResult) -> None:
        self.result_ = result
        verification = result.verification.summary() if result.verification else "not checked"
        self.log.appendPlainText(
            f"\nDone in {result.seconds:.1f} s.\nModel: {result.model_path}\n"
            f"Model card: {result.card_path}\nCheck against the checkpoint: {verification}")
        self._update()

    def _failed(self, error: BaseException, _details: str) -> None:
        self.log.appendPlainText(f"\nNot exported: {error}\nNothing was written.")
        self._update()

    def done(self, code: int) -> None:  # Qt calls this on close: stop the worker first
        self._runner.shutdown()
        super().done(code)
