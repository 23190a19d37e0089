"""Projects as a returning user meets them: the app reopens the last project where the user
left it (image and thresholds), the title follows the open project, a new project on a folder
that does not exist says so, the import report reads at a glance, and counts are singular
for one. Settings live in a temporary file (the ``settings`` fixture) or in the suite's
temporary settings folder (``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

import app.main as app_main
from app import file_dialogs
from app.data_folder import demo_project_folder, migrate_doubled_folder
from app.main_window import MainWindow
from app.project_dialogs import ReportDialog
from engine.data.annotations import ReportEntry
from engine.data.demo import write_demo_project
from engine.data.project import Project

from .conftest import wait_for_full_image


def _open_window(qtbot, folder, settings) -> MainWindow:
    window = MainWindow(folder, settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    wait_for_full_image(qtbot, window)
    return window


def test_a_reopened_project_starts_at_the_image_and_thresholds_left(qtbot, tmp_path, settings):
    folder = write_demo_project(tmp_path / "mine", count=4)
    window = _open_window(qtbot, folder, settings)
    third = window.project.images()[2].id
    window.labeling.show_image(third)
    wait_for_full_image(qtbot, window)
    assist = window.labeling.assist
    assist.slider.setValue(35)
    first_class = window.project.categories()[0].id
    assist.set_class_threshold(first_class, 0.8)
    window.close()

    again = _open_window(qtbot, folder, settings)
    assert again.labeling.current_image().id == third
    assert again.labeling.assist.slider.value() == 35
    assert again.labeling.assist.threshold(first_class) == 0.8
    again.close()


def test_main_without_a_project_reopens_the_last_one(qapp, tmp_path):
    folder = write_demo_project(tmp_path / "last", count=3)
    app_main.main_window_application()
    QSettings().setValue("recent_projects", [str(tmp_path / "gone"), str(folder)])
    seen = []

    before = set(QApplication.topLevelWidgets())  # what earlier tests left alive

    def look_then_quit():
        windows = [w for w in QApplication.topLevelWidgets()
                   if isinstance(w, MainWindow) and w not in before]
        seen.extend((Path(w.project.folder), w.windowTitle()) for w in windows)
        for window in windows:
            window.close()
        # A window another test left open would keep the event loop running.
        QApplication.quit()

    QTimer.singleShot(0, look_then_quit)
    assert app_main.main([]) == 0
    assert seen == [(folder, "last — Faster R-CNN Workbench")]


def test_only_the_first_start_opens_the_demo(qapp, tmp_path, monkeypatch):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert app_main.last_project(settings) is None  # nothing used yet: main opens the demo
    settings.setValue("recent_projects", [str(tmp_path / "deleted-since")])
    assert app_main.last_project(settings) is None


def test_open_recent_names_the_new_project_in_the_title(qtbot, tmp_path, settings):
    first = write_demo_project(tmp_path / "first", count=2)
    second = write_demo_project(tmp_path / "second", count=2)
    window = _open_window(qtbot, first, settings)
    window.open_project(second)
    assert window.windowTitle().startswith("second")
    recent = {a.text(): a for a in window.recent_menu.actions()}
    recent[str(first)].trigger()
    assert window.windowTitle().startswith("first")
    assert window.project.folder == first
    window.close()


def test_the_demo_project_is_titled_as_such_wherever_it_is_opened(qtbot, settings):
    demo = demo_project_folder()  # in the suite's temporary data folder (tests/conftest.py)
    if not Project.exists(demo):
        write_demo_project(demo, count=2)
    window = _open_window(qtbot, demo, settings)
    assert window.windowTitle().startswith("Demo project")
    window.close()


def test_the_data_folder_names_the_application_once(qapp):
    folder = demo_project_folder()
    assert folder.name == "demo" and folder.parent.name == "frcnn-workbench"
    assert "frcnn-workbench/frcnn-workbench" not in folder.as_posix()


def test_an_old_doubled_data_folder_moves_up(tmp_path):
    folder = tmp_path / "frcnn-workbench"
    old_demo = folder / "frcnn-workbench" / "demo"
    write_demo_project(old_demo, count=2)
    migrate_doubled_folder(folder)
    assert Project.exists(folder / "demo") and not (folder / "frcnn-workbench").exists()
    with Project.open(folder / "demo") as project:
        assert len(project.images()) == 2 and all(not r.problem for r in project.images())


def test_new_project_on_a_folder_that_does_not_exist_says_so(qtbot, window, tmp_path,
                                                             monkeypatch):
    said, asked = [], []
    monkeypatch.setattr(QMessageBox, "warning",
                        lambda _parent, _title, text, *a: said.append(text))
    monkeypatch.setattr(QMessageBox, "question",
                        lambda _parent, _title, text, *a: asked.append(text))
    missing = tmp_path / "nowhere" / "project"
    monkeypatch.setattr(file_dialogs, "get_new_or_existing_directory",
                        lambda *args, **kwargs: str(missing))
    before = window.project.folder
    window.ask_new_project()
    assert len(said) == 1 and "does not exist" in said[0] and str(missing) in said[0]
    assert asked == [] and window.project.folder == before


def test_new_project_on_an_empty_folder_asks_nothing_about_images(qtbot, window, tmp_path,
                                                                  monkeypatch):
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda _parent, _title, text, *a: asked.append(text))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert window.new_project(empty)
    assert asked == []  # its project.sqlite is no image
    assert window.windowTitle().startswith("empty")


def test_the_new_project_dialog_makes_a_typed_new_folder(qtbot, tmp_path, monkeypatch):
    asked = []

    def yes(_parent, _title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", yes)
    dialog = file_dialogs.NewFolderDialog(None, "New project", str(tmp_path))
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.selectFile(str(tmp_path / "fresh"))
    dialog.accept()
    assert (tmp_path / "fresh").is_dir()
    assert asked and "does not exist yet" in asked[0]
    assert dialog.result() == QFileDialog.DialogCode.Accepted


def test_report_rows_are_one_line_high(qtbot):
    long = "a reason long enough to wrap many times over in a narrow column " * 4
    entries = [ReportEntry(f"/data/some/long/folder/annotations/raccoon-{n}.xml",
                           f"/data/some/long/folder/images/raccoon-{n}.jpg", "note", long)
               for n in range(5)]
    dialog = ReportDialog("Import report", "summary", entries)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    line = dialog.table.fontMetrics().height()
    assert all(dialog.table.rowHeight(r) <= line + 10 for r in range(5))
    last = dialog.table.visualRect(dialog.table.model().index(4, 0))
    assert last.bottom() < dialog.table.viewport().height()  # five entries, no scrolling
    assert dialog.table.item(0, 2).toolTip() == long
    assert dialog.table.columnWidth(2) >= 250  # the reason gets the room, not the paths


def test_a_labelimg_set_names_its_unverified_file_and_counts_in_the_singular(tmp_path):
    from engine.data.formats.voc import read_voc

    def xml(name, verified):
        attribute = ' verified="yes"' if verified else ""
        return (f"<annotation{attribute}><filename>{name}</filename><size><width>20</width>"
                f"<height>20</height><depth>3</depth></size><object><name>cat</name>"
                f"<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
                f"</object></annotation>")

    (tmp_path / "a.xml").write_text(xml("a.jpg", True))
    (tmp_path / "b.xml").write_text(xml("b.jpg", False))
    notes = [e for e in read_voc(tmp_path).report if "verified" in e.reason]
    assert len(notes) == 1
    assert notes[0].file == str(tmp_path / "b.xml") and notes[0].item == "b.jpg"


def test_counts_say_one_box_one_image_one_file():
    from engine.data.importing import ImportedFile, ImportReport
    from engine.text import count

    report = ImportReport("x", "voc", images_added=1, boxes_added=1, missing=1)
    text = report.summary()
    assert "1 image added" in text and "1 box added" in text and "1 image missing" in text
    assert "1 images" not in text and "1 boxes" not in text
    assert str(ImportedFile("a.jpg", "added", 1)) == "added a.jpg: 1 box"
    assert count(1, "file") == "1 file" and count(2, "entry") == "2 entries"


def test_the_cli_says_wrote_1_file(tmp_path, capsys):
    from engine.cli import main as cli

    folder = write_demo_project(tmp_path / "p", count=1)
    assert cli(["export-annotations", "--project", str(folder), "--format", "coco",
                "--out", str(tmp_path / "out.json"), "--images", "none"]) == 0
    assert "wrote 1 file to" in capsys.readouterr().out
