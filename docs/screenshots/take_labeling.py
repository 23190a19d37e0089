"""Screenshots of the labeling window's main states, as a user sees them.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_labeling.py [CHECKPOINT]

Writes ``docs/screenshots/labeling-*.png``: the window on the demo project with a box selected,
drawing a box (crosshair, the box being dragged), the image list filtered, an import report
(the raccoon dataset's LabelImg files when ``../shared/data`` is there), and an image whose file
is missing; with a trained CHECKPOINT of the demo project (e.g. from `frcnn train --config
resources/configs/demo-cpu.json`), its suggestions on an unlabeled image and the list sorted
by "most useful to label next" (``labeling-label-next.png``). Each state is reached
through the same calls the menus and mouse make.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QPoint, QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.main_window import MainWindow, main_window_application  # noqa: E402
from engine.data.demo import write_demo_project  # noqa: E402

OUT = Path(__file__).resolve().parent
RACCOON = ROOT.parent / "shared" / "data" / "raccoon" / "annotations"


def settle(seconds: float = 0.6) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def shoot(name: str) -> None:
    """The whole screen: menus, dialogs and the window as the user sees them."""
    settle()
    screen = QGuiApplication.primaryScreen()
    screen.grabWindow(0).save(str(OUT / f"labeling-{name}.png"))
    print(f"wrote labeling-{name}.png")


def main() -> None:
    app = main_window_application()
    work = Path(tempfile.mkdtemp())
    folder = write_demo_project(work / "demo", count=40, unlabeled=5)
    checkpoint = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if checkpoint is not None:
        run = folder / "runs" / "2026-11-25_10-36-26"
        run.mkdir(parents=True)
        shutil.copy(checkpoint, run / "best.pt")
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(folder, settings=settings, title="Demo project")
    window.setGeometry(0, 0, 1600, 1000)
    window.show()
    # Without a window manager (Xvfb) nothing activates the window, and keyboard shortcuts
    # only reach an active window.
    window.activateWindow()
    window.raise_()
    settle(2.0)
    view = window.labeling
    canvas = view.canvas

    # 1. A box selected (handles), another hovered.
    view.step(1)
    settle(1.0)
    canvas.select(0)
    if len(view.editor.boxes) > 1:
        other = view.editor.boxes[1]
        QTest.mouseMove(canvas, canvas.image_to_widget((other.x0 + other.x1) / 2,
                                                       (other.y0 + other.y1) / 2).toPoint())
    shoot("main")

    # 2. Drawing: draw mode, mid-drag, the crosshair on the cursor.
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_W)
    QTest.keyClick(canvas, Qt.Key.Key_2)
    start = canvas.image_to_widget(20, 150).toPoint()
    end = canvas.image_to_widget(95, 225).toPoint()
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    QTest.mouseMove(canvas, start + QPoint(40, 40))
    QTest.mouseMove(canvas, end)
    shoot("draw")
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    QTest.keyClick(canvas, Qt.Key.Key_Escape)

    # 3. The list filtered by class and a search.
    panel = view.image_list
    panel.class_filter.setCurrentIndex(panel.class_filter.findText("cross"))
    panel.search.setText("demo_01")
    shoot("filtered")
    panel.search.clear()
    panel.class_filter.setCurrentIndex(0)

    # 4. An import and its report.
    if RACCOON.is_dir():
        window.import_annotations(RACCOON, "voc")
        deadline = time.perf_counter() + 120
        while getattr(window, "last_report", None) is None and time.perf_counter() < deadline:
            settle(0.2)
        window.last_report.move(300, 200)
        shoot("import-report")
        window.last_report.close()

    # 5. A trained model's suggestions on an unlabeled image, one of them selected.
    if checkpoint is not None:
        view.assist.refresh_checkpoints()
        unlabeled = [row.id for row in window.project.images(status="unlabeled")]
        view.show_image(unlabeled[1])
        settle(1.0)
        view.assist.predict_image.click()
        deadline = time.perf_counter() + 120
        while view.assist.running and time.perf_counter() < deadline:
            settle(0.2)
        view.assist.slider.setValue(30)
        shown = view.assist.shown()
        if shown:
            view.canvas._select_suggestion(shown[0][0])
        canvas.zoom_by(1.0)
        shoot("assist")

        # 5b. The list sorted by "most useful to label next" with that model.
        panel = view.image_list
        panel.sort.setCurrentIndex(panel.sort.findData("label_next"))
        panel.sort.activated.emit(panel.sort.currentIndex())
        settle(0.5)
        deadline = time.perf_counter() + 300
        while view.ranker.running and time.perf_counter() < deadline:
            settle(0.2)
        view.show_image(panel.model.image_id(0))  # the first to label
        shoot("label-next")
        panel.sort.setCurrentIndex(panel.sort.findData("usual"))
        panel.sort.activated.emit(panel.sort.currentIndex())

    # 6. A missing file: listed, explained, its boxes kept.
    missing = window.project.images()[5]
    missing.file.rename(missing.file.with_suffix(".moved"))
    window.project.check_missing()
    view.image_list.refresh_images(None)
    view.show_image(missing.id)
    shoot("missing")
    window.close()
    app.quit()


if __name__ == "__main__":
    main()
