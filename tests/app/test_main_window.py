"""The window ``frcnn-workbench`` opens: a project's images with their boxes (the demo project
when no project is given)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

import app.main as app_main
from app.main import MainWindow, main, open_project
from engine.data.demo import CLASSES, demo_images, write_demo_project
from engine.data.project import Project


def test_window_lists_the_project_images_and_shows_the_selected_one(qtbot, tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=5)
    with Project.open(folder) as project:
        window = MainWindow(project)
        qtbot.addWidget(window)
        window.show()
        images = project.images()
        assert window.image_list.count() == 5
        assert window.image_list.item(0).text() == f"demo_000.png  ({images[0].box_count})"
        assert window.canvas.pixmap().width() == 320
        qtbot.keyClick(window.image_list, Qt.Key.Key_Down)
        assert window.image_list.currentRow() == 1
        assert (f"demo_001.png: 320x240, {images[1].box_count} boxes"
                == window.statusBar().currentMessage())


def test_a_missing_image_is_listed_and_explained_not_a_crash(qtbot, tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=2)
    (folder / "images" / "demo_000.png").unlink()
    with Project.open(folder) as project:
        project.check_missing()
        window = MainWindow(project)
        qtbot.addWidget(window)
        assert window.image_list.item(0).text().endswith("[missing]")
        assert "file not found" in window.canvas.text()
        assert "cannot be shown" in window.statusBar().currentMessage()


def test_without_a_project_the_demo_project_is_written_once_then_reused(tmp_path, monkeypatch):
    demo = tmp_path / "user-data" / "demo"
    written = []

    def small_demo(folder):
        written.append(folder)
        return write_demo_project(folder, count=3)

    monkeypatch.setattr(app_main, "demo_project_folder", lambda: demo)
    monkeypatch.setattr(app_main, "write_demo_project", small_demo)
    with open_project(None) as project:
        assert project.folder == demo and len(project.images()) == 3
    with open_project(None) as project:
        assert len(project.images()) == 3
    assert written == [demo]


def test_the_demo_folder_is_in_the_per_user_data_folder(qapp):
    folder = app_main.demo_project_folder()
    assert folder.name == "demo"
    assert app_main.APPLICATION_NAME in str(folder)


def test_main_opens_the_project_it_is_given(qapp, tmp_path):
    folder = write_demo_project(tmp_path / "given", count=4)
    seen = []

    def look_then_quit():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        seen.extend((w.project.folder, w.image_list.count()) for w in windows)
        for window in windows:
            window.close()
        QApplication.quit()

    QTimer.singleShot(0, look_then_quit)
    assert main([str(folder)]) == 0
    assert seen == [(folder, 4)]


def test_main_explains_a_folder_that_is_not_a_project(qapp, tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not a project folder" in capsys.readouterr().err


def test_demo_images_are_the_same_on_every_machine():
    first, again = demo_images(count=6), demo_images(count=6)
    assert [i.boxes for i in first] == [i.boxes for i in again]
    assert first[0].image.tobytes() == again[0].image.tobytes()
    for item in first:
        assert set(item.labels) <= set(CLASSES)
        for x0, y0, x1, y1 in item.boxes:
            assert 0 <= x0 < x1 <= item.image.width and 0 <= y0 < y1 <= item.image.height
