"""A labeling session a test can kill: ``python -m tests.app.scripted_labeling PROJECT N``.

Opens the main window on PROJECT (offscreen), draws N boxes on the first image with real mouse
events, prints the boxes the editor then holds as one JSON line, and keeps running until it is
killed. Used by test_autosave.py to check that a kill -9 loses nothing older than a second.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtTest import QTest

from app.main_window import MainWindow, main_window_application


def draw_boxes(window: MainWindow, count: int) -> None:
    canvas = window.labeling.canvas
    canvas.set_mode("draw")
    for index in range(count):
        x0, y0 = 10 + 30 * index, 10 + 20 * index
        start = canvas.image_to_widget(x0, y0).toPoint()
        end = canvas.image_to_widget(x0 + 25, y0 + 15).toPoint()
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
        QTest.mouseMove(canvas, end)
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    boxes = [[b.x0, b.y0, b.x1, b.y1, b.category_id] for b in window.labeling.editor.boxes]
    print(json.dumps({"image_id": window.labeling.editor.image_id, "boxes": boxes}),
          flush=True)


def main() -> None:
    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    app = main_window_application()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"),
                         QSettings.Format.IniFormat)
    window = MainWindow(folder, settings=settings)
    window.show()

    def when_shown() -> None:
        if window.labeling.canvas.image_loaded is None:
            QTimer.singleShot(50, when_shown)
        else:
            draw_boxes(window, count)

    QTimer.singleShot(0, when_shown)
    app.exec()


if __name__ == "__main__":
    main()
