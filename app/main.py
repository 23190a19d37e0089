"""``frcnn-workbench [PROJECT]``: open the main window on a project.

Without a project folder this opens the demo project, written once into the per-user data
folder (``QStandardPaths.AppDataLocation``/demo) the first time. Until the labeling window
lands, the window is minimal: the project's images, and the selected one with its boxes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QPoint, QStandardPaths, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QLabel, QListWidget, QMainWindow, QSplitter

from engine.data.demo import write_demo_project
from engine.data.images import ImageLoadError, load_image
from engine.data.project import ImageRow, Project, ProjectError

APPLICATION_NAME = "frcnn-workbench"


def _pixmap_with_boxes(image, boxes: list[tuple[tuple[float, float, float, float], str, str]]
                       ) -> QPixmap:
    """A PIL RGB image with ``(box, class name, colour)`` boxes drawn on it."""
    data = image.tobytes("raw", "RGB")
    qimage = QImage(data, image.width, image.height, 3 * image.width, QImage.Format.Format_RGB888)
    pixmap = QPixmap.fromImage(qimage.copy())
    painter = QPainter(pixmap)
    for (x0, y0, x1, y1), name, color in boxes:
        colour = QColor(color)
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


def _list_label(image: ImageRow) -> str:
    label = f"{Path(image.path).name}  ({image.box_count})"
    return f"{label}  [{image.problem}]" if image.problem else label


class MainWindow(QMainWindow):
    """A list of the project's images and the selected one with its boxes.

    The window reads from ``project`` but does not own it: whoever opened it closes it.
    """

    def __init__(self, project: Project, title: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle(f"Faster R-CNN Workbench — {title or project.folder.name}")
        self.project = project
        self.images = project.images()
        self.categories = {category.id: category for category in project.categories()}
        self.image_list = QListWidget()
        self.image_list.addItems([_list_label(image) for image in self.images])
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
        if not 0 <= row < len(self.images):
            return
        image = self.images[row]
        name = Path(image.path).name
        try:
            pil_image = load_image(image.file)
        except ImageLoadError as error:
            # A missing or broken file is shown as such; its boxes stay in the project.
            self.canvas.setPixmap(QPixmap())
            self.canvas.setText(str(error))
            self.statusBar().showMessage(f"{name}: cannot be shown, {image.box_count} boxes")
            return
        boxes = [((box.x0, box.y0, box.x1, box.y1), self.categories[box.category_id].name,
                  self.categories[box.category_id].color)
                 for box in self.project.boxes(image.id)]
        self.canvas.setPixmap(_pixmap_with_boxes(pil_image, boxes))
        self.statusBar().showMessage(
            f"{name}: {pil_image.width}x{pil_image.height}, {len(boxes)} boxes")


def demo_project_folder() -> Path:
    """Where the demo project lives: the per-user application data folder, then ``demo``."""
    QCoreApplication.setApplicationName(APPLICATION_NAME)
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location) / "demo"


def open_project(folder: Path | None) -> Project:
    """The project in ``folder``; without one, the demo project (written the first time)."""
    if folder is not None:
        return Project.open(folder)
    demo = demo_project_folder()
    if not Project.exists(demo):
        write_demo_project(demo)
    return Project.open(demo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=APPLICATION_NAME, description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", type=Path, help="project folder (default: demo)")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        project = open_project(args.project)
    except ProjectError as error:
        print(f"{APPLICATION_NAME}: error: {error}", file=sys.stderr)
        return 2
    with project:
        window = MainWindow(project, title=str(args.project or "demo project"))
        window.show()
        return app.exec()


if __name__ == "__main__":
    sys.exit(main())
