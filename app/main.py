"""``frcnn-workbench [PROJECT]``: open the main window.

Until the labeling window lands this opens a minimal window on the demo project: the demo
images with their boxes, so that a fresh install shows something real.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QLabel, QListWidget, QMainWindow, QSplitter

from engine.data.demo import DemoImage, demo_images


def _pixmap_with_boxes(item: DemoImage) -> QPixmap:
    image = item.image.convert("RGB")
    data = image.tobytes("raw", "RGB")
    qimage = QImage(data, image.width, image.height, 3 * image.width, QImage.Format.Format_RGB888)
    pixmap = QPixmap.fromImage(qimage.copy())
    painter = QPainter(pixmap)
    colour = QColor("#ff8c00")
    for (x0, y0, x1, y1), name in zip(item.boxes, item.labels):
        painter.setPen(QPen(colour, 2))
        painter.drawRect(round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        # The class name on a filled tag above the box, readable on any background.
        tag = painter.fontMetrics().boundingRect(name).adjusted(-3, -1, 3, 1)
        tag.moveBottomLeft(QPoint(round(x0) - 1, max(round(y0) - 1, tag.height())))
        painter.fillRect(tag, colour)
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, name)
    painter.end()
    return pixmap


class MainWindow(QMainWindow):
    """A list of the project's images and the selected one with its boxes."""

    def __init__(self, items: list[DemoImage], title: str) -> None:
        super().__init__()
        self.setWindowTitle(f"Faster R-CNN Workbench — {title}")
        self.items = items
        self.image_list = QListWidget()
        self.image_list.addItems([item.name for item in items])
        self.canvas = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.canvas.setMinimumSize(400, 300)
        splitter = QSplitter()
        splitter.addWidget(self.image_list)
        splitter.addWidget(self.canvas)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.image_list.currentRowChanged.connect(self.show_image)
        self.image_list.setCurrentRow(0)
        self.resize(900, 600)

    def show_image(self, row: int) -> None:
        if 0 <= row < len(self.items):
            item = self.items[row]
            self.canvas.setPixmap(_pixmap_with_boxes(item))
            self.statusBar().showMessage(
                f"{item.name}: {item.image.width}x{item.image.height}, {len(item.boxes)} boxes"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="frcnn-workbench", description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", type=Path, help="project folder (default: demo)")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(demo_images(), title=str(args.project or "demo project"))
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
