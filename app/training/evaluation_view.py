"""A trained model's evaluation on the val images: the per-class AP table, and each image with
its false positives and missed boxes drawn over it.

The model runs on a :class:`~app.workers.TaskRunner` thread
(:func:`engine.training.error_analysis.analyse_checkpoint`); changing the IoU or score
threshold matches again without running the model. The image list filters to all images,
images with errors, with false positives or with missed boxes, and the overlay shows what the
filter is about:

- true positives: green, "class score";
- false positives: red, "class score: reason" (duplicate, wrong class, low IoU, background);
- missed boxes: orange, dashed, "missed: class".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.qt_images import pil_to_qimage
from app.workers import Task, TaskRunner
from engine.data.images import load_image
from engine.training.error_analysis import (
    FILTERS,
    ErrorAnalysis,
    ImageErrors,
    analyse_checkpoint,
)

FILTER_LABELS = {"all": "All images", "errors": "With errors",
                 "false positives": "False positives", "missed": "Missed boxes"}
TABLE_COLUMNS = ("Class", "AP", "AP50", "Boxes", "Found", "False pos.", "Missed")
COLORS = {"tp": "#2b8a3e", "fp": "#e03131", "missed": "#f08c00"}


@dataclass(frozen=True)
class OverlayBox:
    """One box to draw: ``kind`` "tp", "fp" or "missed"; ``text`` its tag."""

    box: tuple[float, float, float, float]
    kind: str
    text: str


def overlay_boxes(image: ImageErrors, kind: str, names: dict[int, str]) -> list[OverlayBox]:
    """The boxes the filter ``kind`` shows on ``image`` (see the module docstring);
    ``names``: class id -> name."""
    matches = image.matches
    boxes: list[OverlayBox] = []
    if kind == "all":
        for tp in matches.true_positives:
            d = tp.detection
            boxes.append(OverlayBox(tuple(image.det_boxes[d].tolist()), "tp",
                                    f"{names[int(image.det_labels[d])]} "
                                    f"{float(image.det_scores[d]):.2f}"))
    if kind in ("all", "errors", "false positives"):
        for fp in matches.false_positives:
            d = fp.detection
            reason = fp.reason
            if fp.reason == "wrong class" and fp.ground_truth is not None:
                reason = f"wrong class (is {names[int(image.gt_labels[fp.ground_truth])]})"
            elif fp.reason == "low IoU":
                reason = f"low IoU {fp.iou:.2f}"
            boxes.append(OverlayBox(tuple(image.det_boxes[d].tolist()), "fp",
                                    f"{names[int(image.det_labels[d])]} "
                                    f"{float(image.det_scores[d]):.2f}: {reason}"))
    if kind in ("all", "errors", "missed"):
        for g in matches.missed:
            boxes.append(OverlayBox(tuple(image.gt_boxes[g].tolist()), "missed",
                                    f"missed: {names[int(image.gt_labels[g])]}"))
    return boxes


def draw_overlay(image: QImage, boxes: list[OverlayBox], scale: float = 1.0) -> QImage:
    """A copy of ``image`` with ``boxes`` drawn and tagged; ``scale``: image pixels per box
    coordinate unit (the image shown at another size than the boxes were found on). Lines and
    tags keep their size in screen pixels."""
    canvas = image.convertToFormat(QImage.Format.Format_RGB32)
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont()
    font.setPixelSize(11)
    painter.setFont(font)
    for item in boxes:
        colour = QColor(COLORS[item.kind])
        pen = QPen(colour, 2.0)
        if item.kind == "missed":
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        x0, y0, x1, y1 = (value * scale for value in item.box)
        painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        # The tag above the box (inside it when the box touches the top), on its colour.
        tag = QRectF(painter.fontMetrics().boundingRect(item.text)).adjusted(-3, -1, 3, 1)
        top = y0 - tag.height() if y0 - tag.height() >= 0 else y0
        tag.moveTopLeft(QPointF(min(x0, max(0.0, canvas.width() - tag.width())), top))
        painter.fillRect(tag, colour)
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, item.text)
    painter.end()
    return canvas


def _load(path: str) -> QImage:
    return pil_to_qimage(load_image(path))


class EvaluationView(QWidget):
    """See the module docstring. ``analysis_ready`` fires when an evaluation has finished."""

    analysis_ready = Signal(object)

    def __init__(self, project_folder: Path, parent: QWidget | None = None, *,
                 runner: TaskRunner | None = None, split: str = "val") -> None:
        super().__init__(parent)
        self.project_folder = Path(project_folder)
        self.split = split
        self.checkpoint: Path | None = None
        self.analysis: ErrorAnalysis | None = None
        self.runner = runner or TaskRunner(self, name="evaluation")
        self._task: Task | None = None
        self._image_task: Task | None = None
        self._image: QImage | None = None  # what the picture shows, boxes drawn
        self._source: tuple[ImageErrors, QImage] | None = None  # the image as loaded

        self.title = QLabel("Select a run with a checkpoint, then Evaluate.")
        self.title.setWordWrap(True)
        self.iou = QDoubleSpinBox(minimum=0.1, maximum=0.95, singleStep=0.05, value=0.5,
                                  decimals=2)
        self.iou.setToolTip("A detection finds a box when they overlap at least this much "
                            "(intersection over union).")
        self.score = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, value=0.5,
                                    decimals=2)
        self.score.setToolTip("Detections scoring below this are not shown or counted.")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("IoU ≥"))
        controls.addWidget(self.iou)
        controls.addWidget(QLabel("Score ≥"))
        controls.addWidget(self.score)
        controls.addWidget(self.evaluate_button)
        controls.addWidget(self.progress, 1)

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

        self.filter = QComboBox()
        for kind in FILTERS:
            self.filter.addItem(FILTER_LABELS[kind], kind)
        self.images = QListWidget()
        self.picture = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(320, 240)
        # The picture follows the space it is given, never the other way round.
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        legend = QLabel(
            f"<span style='color:{COLORS['tp']}'>■ found</span> &nbsp; "
            f"<span style='color:{COLORS['fp']}'>■ false positive</span> &nbsp; "
            f"<span style='color:{COLORS['missed']}'>┅ missed</span>")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.filter)
        left_layout.addWidget(self.images)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.picture, 1)
        right_layout.addWidget(legend)
        browser = QSplitter()
        browser.addWidget(left)
        browser.addWidget(right)
        browser.setStretchFactor(1, 1)
        browser.setSizes([220, 600])

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(controls)
        layout.addWidget(self.table)
        layout.addWidget(browser, 1)

        self.evaluate_button.clicked.connect(self.evaluate)
        self.iou.valueChanged.connect(self._thresholds_changed)
        self.score.valueChanged.connect(self._thresholds_changed)
        self.filter.currentIndexChanged.connect(self._fill_images)
        self.images.currentRowChanged.connect(self._show_image)

    # ------------------------------------------------------------------ running

    def set_checkpoint(self, checkpoint: Path | None, label: str | None = None) -> None:
        """The model this view is about (a run's best.pt, say); another one than before
        clears what was shown. Nothing runs until Evaluate is pressed."""
        checkpoint = Path(checkpoint) if checkpoint is not None else None
        if checkpoint == self.checkpoint:
            return
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.progress.setVisible(False)
        self.checkpoint = checkpoint
        self.evaluate_button.setEnabled(checkpoint is not None)
        self.analysis = None
        self.table.setRowCount(0)
        self.images.clear()
        self._image = self._source = None
        self.picture.setPixmap(QPixmap())
        self.picture.setText("")
        self.title.setText(
            f"{label or checkpoint}: press Evaluate to run it on the {self.split} images."
            if checkpoint else "Select a run with a checkpoint, then Evaluate.")

    def evaluate(self) -> None:
        if self.checkpoint is None:
            return
        if self._task is not None:
            self._task.cancel()
        checkpoint, iou, score = self.checkpoint, self.iou.value(), self.score.value()
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.evaluate_button.setEnabled(False)
        self.title.setText(f"Evaluating {checkpoint.parent.name}/{checkpoint.name} on the "
                           f"{self.split} images…")

        def run(task: Task) -> ErrorAnalysis | None:
            return analyse_checkpoint(
                checkpoint, self.project_folder, self.split, iou_threshold=iou,
                score_threshold=score,
                progress=lambda done, total: task.progress(done / total, f"{done}/{total}"),
                cancelled=lambda: task.cancelled)

        self._task = self.runner.submit(
            run, on_done=lambda analysis: self._evaluated(checkpoint, analysis),
            on_error=self._failed, on_progress=self._progressed)

    def _progressed(self, fraction: float, text: str) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(round(fraction * 1000))
        self.progress.setFormat(f"{text} images")

    def _evaluated(self, checkpoint: Path, analysis: ErrorAnalysis | None) -> None:
        self._task = None
        self.progress.setVisible(False)
        self.evaluate_button.setEnabled(self.checkpoint is not None)
        if analysis is None:
            return
        self.title.setText(
            f"{checkpoint.parent.name}/{checkpoint.name} on {len(analysis.images)} "
            f"{self.split} images: AP {analysis.evaluation.ap:.3f}, "
            f"AP50 {analysis.evaluation.ap50:.3f}")
        self.show_analysis(analysis)
        self.analysis_ready.emit(analysis)

    def _failed(self, error: BaseException, details: str) -> None:
        self._task = None
        self.progress.setVisible(False)
        self.evaluate_button.setEnabled(self.checkpoint is not None)
        self.title.setText(f"<span style='color:#c92a2a'>Evaluation failed: {error}</span>")

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.runner.shutdown()

    # ------------------------------------------------------------------ showing

    def show_analysis(self, analysis: ErrorAnalysis) -> None:
        self.analysis = analysis
        if (analysis.iou_threshold, analysis.score_threshold) != (self.iou.value(),
                                                                  self.score.value()):
            analysis.rematch(self.iou.value(), self.score.value())
        self._fill_table()
        self._fill_images()

    def _thresholds_changed(self) -> None:
        if self.analysis is not None:
            self.analysis.rematch(self.iou.value(), self.score.value())
            self._fill_table()
            self._fill_images()

    def _fill_table(self) -> None:
        analysis = self.analysis
        counts = analysis.class_counts()
        evaluation = analysis.evaluation
        rows = [(c.name, evaluation.per_class.get(c.name), evaluation.per_class_ap50.get(c.name),
                 counts[c.name]) for c in analysis.classes]
        self.table.setRowCount(len(rows) + 1)
        for row, (name, ap, ap50, count) in enumerate(rows):
            self._set_row(row, name, ap, ap50, count.ground_truth, count.true_positives,
                          count.false_positives, count.missed)
        totals = [sum(getattr(c, field) for c in counts.values())
                  for field in ("ground_truth", "true_positives", "false_positives", "missed")]
        self._set_row(len(rows), "all classes", evaluation.ap, evaluation.ap50, *totals)
        bold = QFont()
        bold.setBold(True)
        for column in range(len(TABLE_COLUMNS)):
            self.table.item(len(rows), column).setFont(bold)

    def _set_row(self, row: int, name: str, ap: float | None, ap50: float | None,
                 *counts: int) -> None:
        def number(value: float | None) -> str:
            return "–" if value is None or value < 0 else f"{value:.3f}"

        values = [name, number(ap), number(ap50), *(str(c) for c in counts)]
        for column, value in enumerate(values):
            item = QTableWidgetItem(value)
            if column:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)

    def filter_kind(self) -> str:
        return self.filter.currentData()

    def set_filter(self, kind: str) -> None:
        self.filter.setCurrentIndex(self.filter.findData(kind))

    def shown_images(self) -> list[ImageErrors]:
        return [] if self.analysis is None else self.analysis.filtered(self.filter_kind())

    def _fill_images(self) -> None:
        current = self.images.currentItem()
        keep = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        self.images.blockSignals(True)
        self.images.clear()
        row_to_select = 0
        for row, image in enumerate(self.shown_images()):
            matches = image.matches
            parts = []
            if matches.false_positives:
                parts.append(f"{len(matches.false_positives)} FP")
            if matches.missed:
                parts.append(f"{len(matches.missed)} missed")
            text = f"{Path(image.path).name}  {', '.join(parts) if parts else '✓'}"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, image.image_id)
            self.images.addItem(item)
            if image.image_id == keep:
                row_to_select = row
        self.images.blockSignals(False)
        if self.images.count():
            self.images.setCurrentRow(row_to_select)
            self._show_image(row_to_select)
        else:
            self._image = self._source = None
            self.picture.setPixmap(QPixmap())
            self.picture.setText("No image matches this filter.")

    def _show_image(self, row: int) -> None:
        shown = self.shown_images()
        if not 0 <= row < len(shown):
            return
        image = shown[row]
        if self._image_task is not None:
            self._image_task.cancel()
        self._image_task = self.runner.submit(
            _load, image.path, on_done=lambda qimage: self._draw(image, qimage),
            on_error=lambda error, _: self.picture.setText(str(error)))

    def _draw(self, image: ImageErrors, qimage: QImage) -> None:
        self._image_task = None
        self._source = (image, qimage)
        self._fit_picture()

    def _fit_picture(self) -> None:
        """Draw the shown image at the picture's size, its boxes over it at that scale."""
        if self._source is None or self.analysis is None:
            return
        image, qimage = self._source
        scaled = qimage.scaled(self.picture.size(), Qt.AspectRatioMode.KeepAspectRatio,
                               Qt.TransformationMode.SmoothTransformation)
        names = {c.class_id: c.name for c in self.analysis.classes}
        boxes = overlay_boxes(image, self.filter_kind(), names)
        self._image = draw_overlay(scaled, boxes, scaled.width() / max(1, qimage.width()))
        self.picture.setPixmap(QPixmap.fromImage(self._image))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit_picture()
