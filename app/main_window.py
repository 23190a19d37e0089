"""The main window: the open project, the views in tabs, the menus, the status bar, and the
settings that persist between runs (window layout, recent projects).

The window composes; it does little itself. Labeling lives in :mod:`app.labeling.view`, the
dialogs in :mod:`app.project_dialogs`. The window owns the open :class:`Project` and closes it
when another is opened or the window closes. Imports and exports run on a worker thread that
opens the project by itself (SQLite connections belong to one thread); the window re-reads the
project when they finish.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressDialog,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app import file_dialogs
from engine.data.exporting import export_annotations
from engine.data.importing import import_annotations
from engine.data.project import Project, ProjectError, image_files, split_assignment
from engine.text import count
from engine.training.runs import list_runs

from .data_folder import demo_project_folder
from .diagnosis.view import DiagnoseView
from .export_model_dialog import ExportModelDialog
from .inspector.stage_base import Selection
from .inspector.view import InspectorView
from .labeling.view import LabelingView
from .project_dialogs import ExportDialog, ImportDialog, ReportDialog, SplitDialog
from .training.view import TrainingView
from .workers import TaskRunner

APPLICATION_NAME = "frcnn-workbench"
RECENT_LIMIT = 10


def _import_in_worker(folder: Path, source: Path, format: str):
    with Project.open(folder) as project:
        return import_annotations(project, source, format=format)


def _export_in_worker(folder: Path, format: str, out: Path, split: str | None, images: str):
    with Project.open(folder) as project:
        return export_annotations(project, format, out, split, images=images)


def _add_images_in_worker(folder: Path, paths: list[Path]):
    with Project.open(folder) as project:
        return project.add_images(paths)


class MainWindow(QMainWindow):
    """The application window on one project at a time."""

    def __init__(self, folder: Path | None = None, *, settings: QSettings | None = None,
                 title: str | None = None) -> None:
        """``title`` names ``folder``'s project in the window title (default: the demo
        project's "Demo project", any other its folder's name)."""
        super().__init__()
        self.settings = settings if settings is not None else QSettings()
        self.project: Project | None = None
        self._titles = {demo_project_folder(): "Demo project"}
        if folder is not None and title is not None:
            self._titles[Path(os.path.abspath(folder))] = title
        self.jobs = TaskRunner(self, name="project-jobs")

        self.labeling = LabelingView()
        self.labeling.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.training: TrainingView | None = None  # made per project: it trains that project
        self.inspector = InspectorView()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.labeling, "Label")
        self.tabs.addTab(QWidget(), "Train")
        self.tabs.addTab(self.inspector, "Inspect")
        self.diagnose = DiagnoseView()
        self.tabs.addTab(self.diagnose, "Diagnose")
        self.diagnose.open_in_inspector.connect(self.inspect_box)
        self.diagnose.train_with_preset.connect(self.train_with_preset)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)
        for widget in self.labeling.status_widgets:
            self.statusBar().addPermanentWidget(widget)

        self._make_menus()
        self._make_toolbar()
        self.resize(1400, 860)
        self._restore_layout()
        self.toolbar.setVisible(True)  # the Label tab comes first (a state saved on another hid it)
        if folder is not None:
            self.open_project(folder)

    # --- menus ---

    def _action(self, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _make_menus(self) -> None:
        actions = self.labeling.actions
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self._action("&New project…", self.ask_new_project,
                                         QKeySequence.StandardKey.New))
        file_menu.addAction(self._action("&Open project…", self.ask_open_project,
                                         QKeySequence.StandardKey.Open))
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        # Actions that change the project: off while it is open read-only.
        self.writing_actions = [
            self._action("&Add images…", self.ask_add_images, "Ctrl+Shift+I"),
            self._action("&Import annotations…", self.ask_import, "Ctrl+I"),
        ]
        self.project_actions = [
            *self.writing_actions,
            self._action("&Export annotations…", self.ask_export, "Ctrl+E"),
            self._action("Export trained &model…", self.ask_export_model),
        ]
        file_menu.addActions(self.project_actions)
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([actions["undo"], actions["redo"]])
        edit_menu.addSeparator()
        edit_menu.addActions([actions[k] for k in ("draw", "select")])
        edit_menu.addSeparator()
        edit_menu.addActions([actions[k] for k in ("copy", "paste", "duplicate", "delete",
                                                   "difficult")])
        class_menu = edit_menu.addMenu("Set &class")
        class_menu.addActions([actions[f"class_{n}"] for n in range(1, 10)])

        view_menu = bar.addMenu("&View")
        view_menu.addActions([actions[k] for k in ("zoom_in", "zoom_out", "fit", "actual")])

        image_menu = bar.addMenu("&Image")
        image_menu.addActions([actions[k] for k in ("previous", "next", "next_unlabeled")])
        image_menu.addSeparator()
        image_menu.addActions([actions[k] for k in ("done", "in_progress", "skipped",
                                                    "unlabeled")])

        project_menu = bar.addMenu("&Project")
        self.split_action = self._action("Assign &splits…", self.ask_splits)
        self.writing_actions.append(self.split_action)
        self.info_action = self._action("Project &information", self.show_info)
        project_menu.addActions([self.split_action, self.info_action])
        self.project_actions += [self.split_action, self.info_action]

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", self.show_shortcuts, "F1"))
        help_menu.addAction(self._action("&About", self.show_about))
        self._update_recent_menu()

    def _make_toolbar(self) -> None:
        actions = self.labeling.actions
        toolbar = QToolBar("Labeling")
        toolbar.setObjectName("labeling-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for key in ("select", "draw", None, "undo", "redo", None, "previous", "next",
                    "next_unlabeled", None, "done", "skipped", None, "zoom_in", "zoom_out",
                    "fit", "actual"):
            if key is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(actions[key])
        # Short toolbar labels (a tool button shows the icon text); the menus keep the long
        # ones, which for undo and redo name the edit.
        for key, text in (("select", "Select"), ("draw", "Draw"), ("undo", "Undo"),
                          ("redo", "Redo"), ("previous", "◀ Prev"), ("next", "Next ▶"),
                          ("next_unlabeled", "Next unlabeled"), ("done", "Done ✓"),
                          ("skipped", "Skip"), ("zoom_in", "+"), ("zoom_out", "−"),
                          ("fit", "Fit"), ("actual", "1:1")):
            actions[key].setIconText(text)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    # --- projects ---

    def open_project(self, folder: Path) -> bool:
        """Open the project in ``folder`` (closing the one open); False with a message box if
        it is not a project."""
        if not self._confirm_stop_training("open another project"):
            return False
        try:
            project = Project.open(folder)
        except ProjectError as error:
            QMessageBox.warning(self, "Open project", str(error))
            return False
        self._set_project(project)
        return True

    def _set_project(self, project: Project) -> None:
        old = self.project
        self.save_project_state()
        self.labeling.set_project(None)
        if old is not None:
            old.close()
        self.project = project
        project.check_missing()
        state = self._project_state(project.folder)
        image = state.get("image")
        self.labeling.set_project(project, image_id=image if isinstance(image, int) else None)
        self.labeling.assist.set_thresholds(state.get("thresholds") or {})
        self._set_training_view(TrainingView(project.folder))
        self.diagnose.set_project(project.folder)
        name = self._titles.get(project.folder, project.folder.name)
        read_only = " (read-only)" if project.read_only else ""
        self.setWindowTitle(f"{name}{read_only} — Faster R-CNN Workbench")
        self._remember(project.folder)
        for action in self.project_actions:
            action.setEnabled(True)
        for action in self.writing_actions:
            action.setEnabled(not project.read_only)
        if project.read_only:
            self.statusBar().showMessage(
                f"{project.folder} is read-only for you: you can look, train into another "
                f"folder and export, but not change its labels", 15000)

    def _set_training_view(self, view: TrainingView) -> None:
        old, self.training = self.training, view
        index = self.tabs.indexOf(old) if old is not None else 1
        self.tabs.blockSignals(True)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, view, "Train")
        self.tabs.blockSignals(False)
        if old is not None:
            old.shutdown()
            old.deleteLater()
        view.checkpoint_written.connect(self._checkpoint_written)
        view.running_changed.connect(self._training_running)

    def _checkpoint_written(self, _path: Path) -> None:
        self.labeling.assist.refresh_checkpoints()
        if self.tabs.currentWidget() is self.inspector:
            self.inspector.set_checkpoints(self.checkpoints())

    def _training_running(self, running: bool) -> None:
        self.tabs.setTabText(self.tabs.indexOf(self.training),
                             "Train (running)" if running else "Train")

    def checkpoints(self) -> list[Path]:
        """The project's checkpoints, newest run first, each run's best before its last."""
        if self.project is None:
            return []
        return [path for run in list_runs(self.project.folder)
                for path in run.checkpoints.values()]

    def _tab_changed(self, _index: int) -> None:
        current = self.tabs.currentWidget()
        self.labeling.set_active(current is self.labeling)
        # The image's size, zoom and box count, and the labeling tools, belong to the Label tab.
        for widget in self.labeling.status_widgets:
            widget.setVisible(current is self.labeling)
        self.toolbar.setVisible(current is self.labeling)
        if current is self.inspector:
            self.labeling.flush()
            self.inspector.set_checkpoints(self.checkpoints())
            row, editor = self.labeling.current_image(), self.labeling.editor
            if row is not None and editor is not None and row.problem is None:
                self.inspector.set_image(
                    row.file, [(b.x0, b.y0, b.x1, b.y1) for b in editor.boxes],
                    [b.category_id for b in editor.boxes], self.project.categories())
        elif current is self.labeling:
            self.labeling.assist.refresh_checkpoints()
        elif current is self.diagnose:
            self.diagnose.set_checkpoints(self.checkpoints())

    def inspect_box(self, path: Path, boxes: list, category_ids: list, checkpoint: Path,
                    box_index: int) -> None:
        """Open an image of a diagnosis in the inspector, with its boxes and the checkpoint, on
        the detections stage with box ``box_index`` selected once its trace arrives."""
        self.tabs.setCurrentWidget(self.inspector)
        self.inspector.load_checkpoint(checkpoint)
        categories = self.project.categories() if self.project is not None else None
        self.inspector.set_stage("detections")

        def select_box() -> None:
            self.inspector.trace_changed.disconnect(select_box)
            trace = self.inspector.trace
            if trace is not None and trace.target_boxes is not None and \
                    box_index < trace.target_boxes.shape[0]:
                self.inspector.set_selection(Selection("target", box_index))

        self.inspector.trace_changed.connect(select_box)
        self.inspector.set_image(path, [tuple(b) for b in boxes], list(category_ids), categories)

    def train_with_preset(self, preset: dict) -> None:
        """Show a suggested training preset in the Train tab, ready to start."""
        if self.training is None or self.project is None:
            return
        job = self.training.form.job(self.project.folder, Path())
        job.detector = dict(preset.get("detector", {}))
        job.training = {**job.training, **preset.get("training", {})}
        self.training.form.apply_job(job)
        self.tabs.setCurrentWidget(self.training)
        self.statusBar().showMessage("The suggested preset is in the Train tab: press Start "
                                     "to train with it", 10000)

    def _confirm_stop_training(self, doing: str) -> bool:
        """Before closing or switching projects while training runs: ask. The training is
        stopped cleanly (its last.pt written) and can be resumed from the Train tab."""
        if self.training is None or not self.training.is_running():
            return True
        answer = QMessageBox.question(
            self, "Training is running",
            f"A training run is in progress. Stop it and {doing}?\n\nIts last checkpoint is "
            f"saved; the Train tab resumes it later.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def ask_open_project(self) -> None:
        folder = file_dialogs.get_existing_directory(self, "Open project", str(self._start()))
        if folder:
            self.open_project(Path(folder))

    def ask_new_project(self) -> None:
        folder = file_dialogs.get_new_or_existing_directory(
            self, "New project: choose or name a folder (empty, or the folder of your images)",
            str(self._start()))
        if not folder:
            return
        self.new_project(Path(folder))

    def new_project(self, folder: Path) -> bool:
        """Make a project in ``folder`` (an existing folder) and open it; offer to add the
        images already in it. False, with a message saying why, when it cannot be made."""
        if not folder.is_dir():
            QMessageBox.warning(self, "New project",
                                f"{folder} does not exist (or is not a folder): no project was "
                                f"made. Choose an existing folder, or type a new folder's name "
                                f"in the New project dialog to make it.")
            return False
        if not self._confirm_stop_training("start a new project"):
            return False
        try:
            project = Project.create(folder)
        except ProjectError as error:
            QMessageBox.warning(self, "New project", str(error))
            return False
        self._set_project(project)
        # Only image files count (the project's own database is a file in the folder too).
        images = sum(1 for _ in image_files([folder]))
        if images and QMessageBox.question(
                self, "New project",
                f"Add the {count(images, 'image')} in {folder} (and its sub-folders) to the "
                f"project?") == QMessageBox.StandardButton.Yes:
            self._run_job("Adding images…", _add_images_in_worker, project.folder,
                          [folder], done=self._images_added)
        return True

    # --- what the window remembers per project (QSettings) ---

    @staticmethod
    def _state_key(folder: Path) -> str:
        digest = hashlib.sha1(str(folder).encode("utf-8")).hexdigest()[:16]
        return f"projects/{digest}"

    def _project_state(self, folder: Path) -> dict:
        """What :meth:`save_project_state` kept for ``folder``: the image the user was on and
        the suggestion thresholds; {} for a project not seen before or an unreadable entry."""
        text = self.settings.value(f"{self._state_key(folder)}/state")
        try:
            state = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def save_project_state(self) -> None:
        """Remember the open project's current image and suggestion thresholds, to reopen it
        as the user left it."""
        if self.project is None:
            return
        row = self.labeling.current_image()
        state = {"folder": str(self.project.folder),
                 "image": row.id if row is not None else None,
                 "thresholds": self.labeling.assist.thresholds()}
        self.settings.setValue(f"{self._state_key(self.project.folder)}/state",
                               json.dumps(state))

    def _start(self) -> Path:
        return self.project.folder if self.project is not None else Path.home()

    def _remember(self, folder: Path) -> None:
        recent = [str(folder)] + [p for p in self.recent_projects() if p != str(folder)]
        self.settings.setValue("recent_projects", recent[:RECENT_LIMIT])
        self._update_recent_menu()

    def recent_projects(self) -> list[str]:
        value = self.settings.value("recent_projects") or []
        return [value] if isinstance(value, str) else list(value)

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for folder in self.recent_projects():
            self.recent_menu.addAction(
                self._action(folder, lambda _checked=False, f=folder: self.open_project(Path(f))))
        self.recent_menu.setEnabled(bool(self.recent_projects()))

    # --- jobs on the worker thread ---

    def _run_job(self, text: str, function, *args, done) -> None:
        """Run ``function(*args)`` off the GUI thread with a busy dialog; ``done(result)``."""
        self.labeling.flush()
        progress = QProgressDialog(text, None, 0, 0, self)
        progress.setWindowTitle("Faster R-CNN Workbench")
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(300)

        def finished(result) -> None:
            progress.close()
            done(result)

        def failed(error: BaseException, _details: str) -> None:
            progress.close()
            self.labeling.reload_project(keep_history=True)  # the project is unchanged
            QMessageBox.warning(self, "Faster R-CNN Workbench",
                                f"{error}\n\nThe project is unchanged.")

        self.jobs.submit(function, *args, on_done=finished, on_error=failed)

    def ask_import(self) -> None:
        if self.project is None:
            return
        dialog = ImportDialog(self, self._start())
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        choice = dialog.choice()
        self.import_annotations(choice.source, choice.format)

    def import_annotations(self, source: Path, format: str = "auto") -> None:
        self._run_job(f"Importing {source}…", _import_in_worker, self.project.folder, source,
                      format, done=self._imported)

    def _imported(self, report) -> None:
        self.labeling.reload_project()
        self.statusBar().showMessage(report.summary(), 10000)
        self.last_report = ReportDialog("Import report", report.summary(), report.entries,
                                        self, imported=[str(f) for f in report.files])
        self.last_report.show()

    def ask_export(self) -> None:
        if self.project is None:
            return
        dialog = ExportDialog(self, self._start())
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        choice = dialog.choice()
        self._run_job(f"Exporting to {choice.out}…", _export_in_worker, self.project.folder,
                      choice.format, choice.out, choice.split, choice.images,
                      done=lambda result: self._exported(choice.out, result))

    def _exported(self, out: Path, result) -> None:
        written, entries = result
        summary = f"Wrote {count(len(written), 'file')} to {out}."
        self.statusBar().showMessage(summary, 10000)
        self.last_report = ReportDialog("Export report", summary, entries, self)
        self.last_report.show()

    def ask_export_model(self) -> None:
        if self.project is None:
            return
        self.export_model_dialog = ExportModelDialog(self.checkpoints(), self,
                                                     self.project.folder)
        self.export_model_dialog.show()

    def ask_add_images(self) -> None:
        if self.project is None:
            return
        files, _ = file_dialogs.get_open_file_names(
            self, "Add images", str(self._start()),
            "Images (*.jpg *.jpeg *.png *.bmp *.gif *.tif *.tiff *.webp);;All files (*)")
        if files:
            self._run_job("Adding images…", _add_images_in_worker, self.project.folder,
                          [Path(f) for f in files], done=self._images_added)

    def _images_added(self, result) -> None:
        self.labeling.reload_project(keep_history=True)  # boxes unchanged: undo stays valid
        notes = len(result.entries) - len(result.skipped)
        summary = (f"Added {count(len(result.added), 'image')}; {len(result.skipped)} left out"
                   + (f"; {count(notes, 'note')} (same content as another image)"
                      if notes else "") + ".")
        self.statusBar().showMessage(summary, 10000)
        if result.entries:
            self.last_report = ReportDialog("Add images", summary, result.entries, self)
            self.last_report.show()

    def ask_splits(self) -> None:
        if self.project is None or self.labeling.editor is None:
            return
        images = self.project.images()
        dialog = SplitDialog(self, len(images))
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        choice = dialog.choice()
        ids = [image.id for image in images
               if not choice.only_unassigned or image.split is None]
        assignment = split_assignment(ids, choice.ratios, choice.seed)
        self.labeling.editor.set_splits(assignment)
        counts = {name: sum(1 for s in assignment.values() if s == name) for name in
                  choice.ratios}
        self.statusBar().showMessage(
            "Splits: " + ", ".join(f"{name} {count}" for name, count in counts.items()), 8000)

    def show_info(self) -> None:
        if self.project is None:
            return
        self.labeling.flush()
        self.project.check_missing()
        self._text_dialog("Project information", "\n".join(self.project.info().lines()))

    def show_shortcuts(self) -> None:
        lines = []
        for action in self.labeling.actions.values():
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText)
                             for s in action.shortcuts())
            if keys:
                lines.append(f"{keys:<28} {action.text().replace('&', '')}")
        lines += ["", "Mouse: drag to draw (Draw mode) or to move a box / resize it by its "
                  "handles (Select mode);", "drag empty space or with the middle button to "
                  "pan; the wheel zooms about the cursor.",
                  "Arrow keys: nudge the selected box (Shift: 10 px); without a selection, "
                  "previous / next image."]
        self._text_dialog("Keyboard shortcuts", "\n".join(lines))

    def show_about(self) -> None:
        QMessageBox.about(self, "Faster R-CNN Workbench",
                          "Label boxes on your images, train a Faster R-CNN on them, and step "
                          "through its pipeline on your own images.")

    def _text_dialog(self, title: str, text: str) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle(title)
        view = QPlainTextEdit(text, readOnly=True)
        font = view.font()
        font.setFamily("monospace")
        view.setFont(font)
        layout = QVBoxLayout(dialog)
        layout.addWidget(view)
        dialog.resize(760, 460)
        dialog.show()
        self.last_text_dialog = dialog

    # --- layout and closing ---

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.labeling.restore_layout(self.settings)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self._confirm_stop_training("quit"):
            event.ignore()
            return
        self.save_project_state()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.labeling.save_layout(self.settings)
        self.settings.sync()
        self.labeling.shutdown()
        if self.training is not None:
            self.training.shutdown()
        self.inspector.shutdown()
        self.diagnose.shutdown()
        self.jobs.shutdown()
        if self.project is not None:
            self.project.close()
            self.project = None
        super().closeEvent(event)


def main_window_application() -> QApplication:
    """The QApplication, with the names QSettings and the data folders use."""
    app = QApplication.instance() or QApplication([APPLICATION_NAME])
    app.setApplicationName(APPLICATION_NAME)
    app.setOrganizationName(APPLICATION_NAME)
    app.setApplicationDisplayName("Faster R-CNN Workbench")
    return app
