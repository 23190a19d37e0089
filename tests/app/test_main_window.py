"""The window ``frcnn-workbench`` opens: the demo project's images with their boxes."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.main import MainWindow
from engine.data.demo import demo_images


def test_window_lists_the_demo_images_and_shows_the_selected_one(qtbot):
    items = demo_images(count=5)
    window = MainWindow(items, title="demo project")
    qtbot.addWidget(window)
    window.show()
    assert window.image_list.count() == 5
    assert window.canvas.pixmap().width() == items[0].image.width
    qtbot.keyClick(window.image_list, Qt.Key.Key_Down)
    assert window.image_list.currentRow() == 1
    assert f"{len(items[1].boxes)} boxes" in window.statusBar().currentMessage()


def test_demo_images_are_the_same_on_every_machine():
    first, again = demo_images(count=3), demo_images(count=3)
    assert [i.boxes for i in first] == [i.boxes for i in again]
    assert first[0].image.tobytes() == again[0].image.tobytes()
    for item in first:
        for x0, y0, x1, y1 in item.boxes:
            assert 0 <= x0 < x1 <= item.image.width and 0 <= y0 < y1 <= item.image.height
