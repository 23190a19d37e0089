"""``frcnn-workbench [PROJECT]``: open the main window on a project.

Without a project folder this reopens the project used last; on the very first start (no
project used yet, or none of them is there any more) it opens the demo project, written once
into the per-user data folder (:mod:`app.data_folder`: ``~/.local/share/frcnn-workbench/demo``
on Linux) with a progress note while it is written (a few seconds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, Qt
from PySide6.QtWidgets import QApplication, QProgressDialog

from engine.data.demo import write_demo_project
from engine.data.project import Project

from .data_folder import demo_project_folder
from .main_window import APPLICATION_NAME, MainWindow, main_window_application
from .platform_check import uses_xcb, xcb_problem
from .workers import TaskRunner

# The app's demo has images left to label too: train on the 300 labeled ones, then let the
# model suggest boxes for these.
DEMO_UNLABELED = 60


def ensure_demo_project() -> Path:
    """The demo project's folder, written first if it is not there yet (off the GUI thread,
    with a progress note, so the desktop does not think the program hangs)."""
    folder = demo_project_folder()
    if Project.exists(folder):
        return folder
    progress = QProgressDialog("Writing the demo project (first start only)…", None, 0, 0)
    progress.setWindowTitle("Faster R-CNN Workbench")
    progress.setWindowModality(Qt.WindowModality.ApplicationModal)
    progress.setMinimumDuration(0)
    progress.show()
    loop = QEventLoop()
    outcome: list = []
    runner = TaskRunner(name="demo-writer")
    runner.submit(write_demo_project, folder, unlabeled=DEMO_UNLABELED,
                  on_done=lambda result: (outcome.append(result), loop.quit()),
                  on_error=lambda error, _details: (outcome.append(error), loop.quit()))
    loop.exec()
    runner.shutdown()
    progress.close()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return folder


def last_project(settings: QSettings) -> Path | None:
    """The most recently opened project that is still there; None when there is none (the
    first start)."""
    recent = settings.value("recent_projects") or []
    for folder in [recent] if isinstance(recent, str) else list(recent):
        if Project.exists(Path(folder)):
            return Path(folder)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=APPLICATION_NAME, description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", type=Path,
                        help="project folder (default: the project used last; the demo "
                             "project on the first start)")
    args = parser.parse_args(argv)
    if uses_xcb() and QApplication.instance() is None:
        problem = xcb_problem()
        if problem is not None:  # Qt would stop with "could not load the Qt platform plugin"
            print(f"{APPLICATION_NAME}: error: {problem}", file=sys.stderr)
            return 1
    app = main_window_application()
    if args.project is not None and not Project.exists(args.project):
        print(f"{APPLICATION_NAME}: error: {args.project}: not a project folder (no "
              f"project.sqlite in it); create one with `frcnn import` or File > New project",
              file=sys.stderr)
        return 2
    folder = args.project if args.project is not None else last_project(QSettings())
    if folder is None:
        folder = ensure_demo_project()
    window = MainWindow(folder)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
