"""Dialogs of the Project and File menus: import and export annotations, assign splits, and
the report every import and export ends with.

The dialogs only gather choices; the window runs the engine calls (``import_annotations``,
``export_annotations``) off the GUI thread and shows a :class:`ReportDialog` with what was
done and, item by item, what was left out and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import file_dialogs
from engine.data.annotations import ReportEntry
from engine.data.formats import FORMATS, IMAGE_MODES
from engine.text import count

FORMAT_NAMES = {"auto": "Detect automatically", "coco": "COCO JSON", "voc": "Pascal VOC XML",
                "yolo": "YOLO (Ultralytics layout)", "labelme": "labelme JSON"}
SPLIT_CHOICES = (("All images", None), ("Train", "train"), ("Val", "val"), ("Test", "test"),
                 ("Images without a split", "none"))


def _path_row(line: QLineEdit, *buttons: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(line, 1)
    for button in buttons:
        layout.addWidget(button)
    return row


def _ok_cancel(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                               | QDialogButtonBox.StandardButton.Cancel)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


@dataclass(frozen=True)
class ImportChoice:
    source: Path
    format: str  # one of FORMATS or "auto"


class ImportDialog(QDialog):
    """Where the annotations are (a file or a folder) and in which format."""

    def __init__(self, parent: QWidget | None = None, start: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import annotations")
        self._start = start or Path.home()
        self.source = QLineEdit()
        self.source.setPlaceholderText("a COCO .json file, a VOC/YOLO/labelme folder, …")
        file_button = QPushButton("File…")
        folder_button = QPushButton("Folder…")
        file_button.clicked.connect(self._pick_file)
        folder_button.clicked.connect(self._pick_folder)
        self.format = QComboBox()
        for key in ("auto", *FORMATS):
            self.format.addItem(FORMAT_NAMES[key], key)
        note = QLabel("Images are referenced where they are, not copied. Boxes are added to "
                      "images already in the project; nothing is removed. The import is one "
                      "step: if it fails, the project stays as it was.")
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Annotations:", _path_row(self.source, file_button, folder_button))
        form.addRow("Format:", self.format)
        self.buttons = _ok_cancel(self, "Import")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self.source.textChanged.connect(self._update)
        self._update()
        self.resize(620, self.sizeHint().height())

    def _pick_file(self) -> None:
        path, _ = file_dialogs.get_open_file_name(self, "Annotation file", str(self._start),
                                                  "Annotations (*.json *.xml *.txt *.yaml);;"
                                                  "All files (*)")
        if path:
            self.source.setText(path)

    def _pick_folder(self) -> None:
        path = file_dialogs.get_existing_directory(self, "Annotation folder", str(self._start))
        if path:
            self.source.setText(path)

    def _update(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            bool(self.source.text().strip()))

    def choice(self) -> ImportChoice:
        return ImportChoice(Path(self.source.text().strip()), self.format.currentData())


@dataclass(frozen=True)
class ExportChoice:
    format: str
    out: Path
    split: str | None
    images: str  # one of IMAGE_MODES (VOC and YOLO only)


class ExportDialog(QDialog):
    """Format, split, output and (VOC, YOLO) what to do with the image files."""

    def __init__(self, parent: QWidget | None = None, start: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        self._start = start or Path.home()
        self.format = QComboBox()
        for key in FORMATS:
            self.format.addItem(FORMAT_NAMES[key], key)
        self.split = QComboBox()
        for text, value in SPLIT_CHOICES:
            self.split.addItem(text, value)
        self.images = QComboBox()
        for key, text in zip(IMAGE_MODES, ("Copy the images into the export",
                                           "Hard-link the images (no extra space)",
                                           "Labels only")):
            self.images.addItem(text, key)
        self.out = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._pick_out)
        form = QFormLayout()
        form.addRow("Format:", self.format)
        form.addRow("Images:", self.split)
        form.addRow("Image files:", self.images)
        form.addRow("Write to:", _path_row(self.out, browse))
        self.buttons = _ok_cancel(self, "Export")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.format.currentIndexChanged.connect(self._update)
        self.out.textChanged.connect(self._update)
        self._update()
        self.resize(620, self.sizeHint().height())

    def _pick_out(self) -> None:
        if self.format.currentData() == "coco":
            path, _ = file_dialogs.get_save_file_name(
                self, "COCO file", str(self._start / "annotations.json"), "COCO JSON (*.json)")
        else:
            path = file_dialogs.get_existing_directory(self, "Export folder", str(self._start))
        if path:
            self.out.setText(path)

    def _update(self) -> None:
        self.images.setEnabled(self.format.currentData() in ("voc", "yolo"))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            bool(self.out.text().strip()))

    def choice(self) -> ExportChoice:
        return ExportChoice(self.format.currentData(), Path(self.out.text().strip()),
                            self.split.currentData(), self.images.currentData())


@dataclass(frozen=True)
class SplitChoice:
    ratios: dict[str, float]
    seed: int
    only_unassigned: bool


class SplitDialog(QDialog):
    """Train / val / test proportions, the seed, and whether to keep existing splits."""

    def __init__(self, parent: QWidget | None = None, images: int = 0) -> None:
        super().__init__(parent)
        self.setWindowTitle("Assign splits")
        self.ratios: dict[str, QDoubleSpinBox] = {}
        form = QFormLayout()
        for name, default in (("train", 0.8), ("val", 0.2), ("test", 0.0)):
            box = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05,
                                 value=default)
            self.ratios[name] = box
            form.addRow(f"{name.capitalize()}:", box)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("The same seed gives the same split of the same images")
        form.addRow("Seed:", self.seed)
        self.only_unassigned = QCheckBox("Only images without a split")
        form.addRow("", self.only_unassigned)
        note = QLabel(f"The {count(images, 'image')} are shuffled (seeded) and cut in these "
                      f"proportions. Edit > Undo restores the previous splits.")
        note.setWordWrap(True)
        self.buttons = _ok_cancel(self, "Assign")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        for box in self.ratios.values():
            box.valueChanged.connect(self._update)

    def _update(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            sum(box.value() for box in self.ratios.values()) > 0)

    def choice(self) -> SplitChoice:
        ratios = {name: box.value() for name, box in self.ratios.items() if box.value() > 0}
        return SplitChoice(ratios, self.seed.value(), self.only_unassigned.isChecked())


ITEM_COLUMN_MAX = 230


class ReportDialog(QDialog):
    """A summary line and, one per row, every item that was not taken as it was."""

    def __init__(self, title: str, summary: str, entries: list[ReportEntry],
                 parent: QWidget | None = None, imported: list[str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.summary = QLabel(summary)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(len(entries), 4)
        self.table.setHorizontalHeaderLabels(["Item", "What happened", "Why", "Read from"])
        for row, entry in enumerate(entries):
            for column, text in enumerate((entry.item, entry.action, entry.reason,
                                           entry.file)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, column, item)
        # One line per row (the whole text in its tooltip and in "Copy report"): wrapped rows
        # sized before the table has its width grow to hundreds of pixels each.
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        # The reason gets the room; the item and the file it was read from at most
        # ITEM_COLUMN_MAX px each (elided in the middle, whole in the tooltip).
        header = self.table.horizontalHeader()
        self.table.resizeColumnsToContents()
        for column in (0, 3):
            self.table.setColumnWidth(column, min(self.table.columnWidth(column),
                                                  ITEM_COLUMN_MAX))
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        # What was taken, file by file, beside what was not taken as it was.
        self.imported = QListWidget()
        self.imported.addItems(imported or [])
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, f"Not taken as they were ({len(entries)})")
        if imported is not None:
            self.tabs.addTab(self.imported, f"Imported ({len(imported)})")
        self.tabs.setVisible(bool(entries) or bool(imported))
        self._text = "\n".join([summary, *map(str, entries), *(imported or [])])
        copy = QPushButton("Copy report")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._text))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        self.resize(900, 480 if entries or imported else 160)
