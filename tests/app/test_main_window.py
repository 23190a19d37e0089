"""The window ``frcnn-workbench`` opens: projects, menus and their dialogs, the class panel,
settings that persist, and what a missing image looks like."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QInputDialog, QMessageBox

import app.main as app_main
from app.main import main
from app.main_window import MainWindow
from app.project_dialogs import ImportDialog, ReportDialog, SplitDialog
from engine.data.annotations import AnnotationSet, BoxRecord, Category, ImageRecord
from engine.data.demo import CLASSES, demo_images, write_demo_project
from engine.data.formats import write_annotations
from engine.data.project import Project

from .conftest import wait_for_full_image


def test_window_shows_the_project_images_classes_and_status_bar(window):
    view = window.labeling
    images = window.project.images()
    assert view.image_list.model.rowCount() == 4
    assert view.editor.image_id == images[0].id
    assert len(view.canvas.boxes) == images[0].box_count
    assert view.canvas.image_size == (320, 240)
    assert view.size_label.text() == "320 × 240 px"
    assert view.count_label.text() == f"{images[0].box_count} boxes"
    assert view.zoom_label.text().endswith("%")
    assert [view.class_panel.list.item(i).text().split("  ")[1]
            for i in range(view.class_panel.list.count())] == list(CLASSES)
    assert window.windowTitle().startswith("demo — ")


def test_a_missing_image_is_listed_and_explained_and_its_boxes_kept(qtbot, tmp_path, settings):
    folder = write_demo_project(tmp_path / "demo", count=2)
    (folder / "images" / "demo_000.png").unlink()
    window = MainWindow(folder, settings=settings)
    qtbot.addWidget(window)
    view = window.labeling
    row = window.project.images()[0]
    assert row.problem == "missing"
    assert "file not found" in view.canvas._message and f"its {row.box_count} boxes" in \
        view.canvas._message
    assert len(view.editor.boxes) == row.box_count
    window.close()


def test_class_panel_add_rename_merge_delete_with_undo(qtbot, window, monkeypatch):
    view = window.labeling
    panel = view.class_panel
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("dog", True))
    panel.buttons["add"].click()
    assert window.project.category_by_name("dog") is not None
    assert panel.current_category() == window.project.category_by_name("dog").id
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("puppy", True))
    panel.buttons["rename"].click()
    assert window.project.category_by_name("puppy") is not None

    square = window.project.category_by_name("square")
    squares = view.editor.box_counts().get(square.id, 0)
    panel.set_current_category(square.id)
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda _parent, _title, text, *a: asked.append(text)
                        or QMessageBox.StandardButton.Yes)
    panel.buttons["delete"].click()
    assert f"its {squares} boxes" in asked[0]
    assert window.project.category_by_name("square") is None
    view.undo()
    assert window.project.category(square.id) == square
    assert view.editor.box_counts()[square.id] == squares

    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("circle", True))
    panel.set_current_category(square.id)
    panel.buttons["merge"].click()
    circle = window.project.category_by_name("circle")
    assert window.project.category_by_name("square") is None
    assert f"circle  ({view.editor.box_counts()[circle.id]})" in \
        panel.list.item(0).text()


def _drive_modal(qtbot, dialog_type, fill) -> list:
    """When a modal ``dialog_type`` opens, ``fill`` it and press OK (as a user would)."""
    seen = []

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, dialog_type):
            QTimer.singleShot(20, look)
            return
        seen.append(dialog)
        fill(dialog)
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()

    QTimer.singleShot(0, look)
    return seen


def test_import_through_the_dialog_adds_images_and_shows_the_report(qtbot, window, tmp_path):
    # A small COCO file with one good image and one whose file is missing.
    source = tmp_path / "coco"
    item = demo_images(count=1, seed=7)[0]
    (source / "images").mkdir(parents=True)
    item.image.save(source / "images" / "new.png")
    annotations = AnnotationSet(
        categories=[Category(1, "circle"), Category(2, "hexagon")],
        images=[ImageRecord(source / "images" / "new.png", 320, 240,
                            [BoxRecord(10, 10, 50, 50, 2)]),
                ImageRecord(source / "images" / "gone.png", 320, 240,
                            [BoxRecord(5, 5, 25, 25, 1)])],
        root=source)
    written = write_annotations(annotations, "coco", source / "annotations.json")
    seen = _drive_modal(qtbot, ImportDialog,
                        lambda dialog: dialog.source.setText(str(written[0])))
    window.ask_import()
    qtbot.waitUntil(lambda: isinstance(getattr(window, "last_report", None), ReportDialog),
                    timeout=10000)
    assert seen
    report = window.last_report
    assert "2 images added" in report.summary.text()
    assert report.table.rowCount() >= 1
    assert any("gone.png" in report.table.item(r, 0).text() + report.table.item(r, 2).text()
               for r in range(report.table.rowCount()))
    assert report.imported.count() == 2  # file by file: what each contributed
    assert window.labeling.image_list.model.rowCount() == 6
    assert window.project.category_by_name("hexagon") is not None
    assert window.labeling.class_panel.list.count() == 5


def test_assign_splits_through_the_dialog_and_undo(qtbot, window):
    before = {image.id: image.split for image in window.project.images()}

    def fill(dialog: SplitDialog) -> None:
        dialog.ratios["train"].setValue(0.5)
        dialog.ratios["val"].setValue(0.0)
        dialog.ratios["test"].setValue(0.5)

    _drive_modal(qtbot, SplitDialog, fill)
    window.ask_splits()
    splits = [image.split for image in window.project.images()]
    assert sorted(splits) == ["test", "test", "train", "train"]
    window.labeling.undo()
    assert {image.id: image.split for image in window.project.images()} == before


def test_recent_projects_and_layout_persist_between_runs(qtbot, tmp_path, settings):
    first = write_demo_project(tmp_path / "first", count=2)
    second = write_demo_project(tmp_path / "second", count=2)
    window = MainWindow(first, settings=settings)
    qtbot.addWidget(window)
    window.open_project(second)
    wait_for_full_image(qtbot, window)
    window.labeling.splitter.setSizes([200, 700, 300])
    sizes = window.labeling.splitter.sizes()
    window.close()
    again = MainWindow(None, settings=settings)
    qtbot.addWidget(again)
    assert again.recent_projects() == [str(second), str(first)]
    assert [action.text() for action in again.recent_menu.actions()] == \
        [str(second), str(first)]
    assert again.labeling.splitter.sizes() == sizes
    again.close()


def test_opening_a_folder_that_is_not_a_project_says_so(qtbot, window, tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning",
                        lambda _parent, _title, text: warnings.append(text))
    assert window.open_project(tmp_path / "nothing") is False
    assert "not a project folder" in warnings[0]
    assert window.project is not None  # the open project stays open


def test_without_a_project_the_demo_project_is_written_once_then_reused(qapp, tmp_path,
                                                                          monkeypatch):
    demo = tmp_path / "user-data" / "demo"
    written = []

    def small_demo(folder, unlabeled):
        written.append((folder, unlabeled))
        return write_demo_project(folder, count=3, unlabeled=2)

    monkeypatch.setattr(app_main, "demo_project_folder", lambda: demo)
    monkeypatch.setattr(app_main, "write_demo_project", small_demo)
    assert app_main.ensure_demo_project() == demo
    assert app_main.ensure_demo_project() == demo
    assert written == [(demo, app_main.DEMO_UNLABELED)]  # images left to label, too
    with Project.open(demo) as project:
        assert len(project.images()) == 5


def test_the_demo_folder_is_in_the_per_user_data_folder(qapp):
    folder = app_main.demo_project_folder()
    assert folder.name == "demo"
    assert "frcnn-workbench" in str(folder)


def test_main_opens_the_project_it_is_given(qapp, tmp_path):
    folder = write_demo_project(tmp_path / "given", count=4)
    seen = []

    def look_then_quit():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        seen.extend((Path(w.project.folder), w.labeling.image_list.model.rowCount())
                    for w in windows)
        # Closing the last window ends exec(); a further quit() would stay queued and end
        # every later test's event loop at once.
        for window in windows:
            window.close()

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


def test_export_through_the_dialog_writes_coco_that_reads_back(qtbot, window, tmp_path):
    from app.project_dialogs import ExportDialog
    from engine.data.formats import read_annotations

    out = tmp_path / "export" / "annotations.json"

    def fill(dialog: ExportDialog) -> None:
        dialog.format.setCurrentIndex(dialog.format.findData("coco"))
        dialog.out.setText(str(out))

    _drive_modal(qtbot, ExportDialog, fill)
    window.ask_export()
    qtbot.waitUntil(lambda: isinstance(getattr(window, "last_report", None), ReportDialog),
                    timeout=10000)
    assert "Wrote 1 file to" in window.last_report.summary.text()
    back = read_annotations(out)
    assert back.box_count == sum(image.box_count for image in window.project.images())
    assert [c.name for c in back.categories] == list(CLASSES)


def test_the_train_and_inspect_tabs_follow_the_project_and_the_image(qtbot, window):
    assert [window.tabs.tabText(i) for i in range(3)] == ["Label", "Train", "Inspect"]
    assert window.training.project_folder == window.project.folder
    row = window.labeling.current_image()
    window.tabs.setCurrentWidget(window.inspector)
    # Labeling keys do nothing behind another tab.
    assert not window.labeling.actions["next"].isEnabled()
    assert window.inspector.session.image_path == row.file
    assert window.inspector.session.boxes == [(b.x0, b.y0, b.x1, b.y1)
                                              for b in window.labeling.editor.boxes]
    window.tabs.setCurrentWidget(window.labeling)
    assert window.labeling.actions["next"].isEnabled()


def test_a_read_only_project_opens_saying_so_with_its_writing_actions_off(qtbot, demo_folder,
                                                                           settings,
                                                                           monkeypatch):
    from engine.data.project import Project

    real_open = Project.open
    monkeypatch.setattr(Project, "open",
                        classmethod(lambda cls, folder, **_: real_open(folder, read_only=True)))
    window = MainWindow(demo_folder, settings=settings)
    qtbot.addWidget(window)
    assert window.project.read_only
    assert "(read-only)" in window.windowTitle()
    assert "read-only" in window.statusBar().currentMessage()
    assert not any(action.isEnabled() for action in window.writing_actions)
    window.close()
