"""The app's file dialogs never open a project's database, and an edit survives a dialog that
does (with another process closing the project meanwhile).

Opening and closing ``project.sqlite`` in the app's process drops every SQLite lock the app
holds on it (POSIX record locks are per process); see app/file_dialogs.py.
"""

from __future__ import annotations

import ast
import ctypes
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QFileDialog

from app import file_dialogs
from engine.data.project import Project
from engine.data.store_files import STORE_FILE_NAMES

from ..conftest import REPO

IN_OPEN = 0x20


class OpenWatch:
    """Names of files opened in a folder (by any process), from Linux's inotify."""

    def __init__(self, folder: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK)
        if self._fd < 0 or self._libc.inotify_add_watch(
                self._fd, os.fsencode(folder), IN_OPEN) < 0:
            pytest.skip("inotify is not available")

    def opened(self) -> list[str]:
        names = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return names
            offset = 0
            while offset < len(data):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0")
                names.append(os.fsdecode(name))
                offset += 16 + length

    def close(self) -> None:
        os.close(self._fd)


def _show_for_a_while(dialog: QFileDialog, seconds: float = 2.0) -> None:
    """Show the dialog in its detail view long enough for it to list and type the files."""
    dialog.setViewMode(QFileDialog.ViewMode.Detail)
    dialog.show()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    dialog.close()
    dialog.deleteLater()
    QApplication.processEvents()


@pytest.fixture
def project_folder(tmp_path) -> Path:
    folder = tmp_path / "p"
    with Project.create(folder) as project:
        project.add_category("thing")
    # A rollback journal as a crash would leave it, so the dialog lists every store file.
    (folder / "project.sqlite-journal").write_bytes(b"")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    return folder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_our_file_dialogs_never_open_the_store_files(qapp, project_folder):
    watch = OpenWatch(project_folder)
    try:
        plain = QFileDialog(None, "plain", str(project_folder))
        plain.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        _show_for_a_while(plain)
        read_by_plain = set(watch.opened()) & STORE_FILE_NAMES
        if not read_by_plain:
            pytest.skip("this Qt's own dialog reads no file's contents: nothing to guard")
        ours = file_dialogs.file_dialog(None, "ours", str(project_folder))
        _show_for_a_while(ours)
        assert set(watch.opened()) & STORE_FILE_NAMES == set()
    finally:
        watch.close()


def test_no_module_of_the_app_uses_qt_file_dialogs_directly():
    """Every dialog goes through app/file_dialogs.py (Qt's static functions sniff files)."""
    static = {"getOpenFileName", "getOpenFileNames", "getSaveFileName",
              "getExistingDirectory", "getOpenFileUrl", "getOpenFileUrls",
              "getSaveFileUrl", "getExistingDirectoryUrl", "getOpenFileContent"}
    offenders = []
    for path in sorted((REPO / "app").rglob("*.py")):
        if path.name == "file_dialogs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in static:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "QFileDialog":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} QFileDialog()")
    assert offenders == []


# A process that holds a project, shows Qt's own file dialog (which reads the files it lists)
# on the project folder, lets another process open and close the project, commits an edit and
# exits without closing anything.
EDIT_AFTER_DIALOG = """
import os, subprocess, sys, time
from PySide6.QtWidgets import QApplication, QFileDialog
from engine.data.annotations import BoxRecord
from engine.data.project import Project

folder = sys.argv[1]
project = Project.open(folder)
category = project.categories()[0].id
image = project.insert_image(os.path.join(folder, "a.png"), width=100, height=100, hash=None)
app = QApplication([])
dialog = QFileDialog(None, "Add images", folder)
dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
dialog.setViewMode(QFileDialog.ViewMode.Detail)
dialog.show()
end = time.monotonic() + 2
while time.monotonic() < end:
    app.processEvents()
    time.sleep(0.02)
dialog.close()
subprocess.run([sys.executable, "-c", "import sys; from engine.data.project import Project; "
                "Project.open(sys.argv[1]).close()", folder], check=True)
project.set_boxes(image, [BoxRecord(1, 2, 30, 40, category, source="manual")], base=())
time.sleep(0.5)
os._exit(0)
"""


def test_an_edit_committed_after_a_file_dialog_survives_an_exit_without_closing(project_folder):
    (project_folder / "project.sqlite-journal").unlink()
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.run([sys.executable, "-c", EDIT_AFTER_DIALOG, str(project_folder)],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    with Project.open(project_folder) as project:
        image = project.images()[0]
        assert [(b.x0, b.y0, b.x1, b.y1) for b in project.boxes(image.id)] == [(1, 2, 30, 40)]
        assert project.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
