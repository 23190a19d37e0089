"""File dialogs that never open the files they list.

Qt's file dialogs (and the platform dialogs that run inside the app's process) find each
listed file's type and icon by reading its first bytes. Opening and closing a project's
``project.sqlite`` that way drops every SQLite lock the app holds on it: POSIX releases all of
a process's locks on a file when any descriptor of it is closed (SQLite's "How To Corrupt An
SQLite Database File", section 2.2, and :mod:`engine.data.store_files`). So every dialog of the
app is Qt's own, with an icon provider that tells file types by name only.

The functions take and return what the ``QFileDialog`` static functions do; every file dialog
of the app goes through them (tests/app/test_file_dialogs.py checks that no module calls the
static functions).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileInfo, QMimeDatabase
from PySide6.QtWidgets import QFileDialog, QFileIconProvider, QMessageBox, QWidget

__all__ = ["NameOnlyIconProvider", "file_dialog", "get_existing_directory",
           "get_new_or_existing_directory", "get_open_file_name", "get_open_file_names",
           "get_save_file_name"]


class NameOnlyIconProvider(QFileIconProvider):
    """Icons and type names from the file name alone (never the file's contents)."""

    def __init__(self) -> None:
        super().__init__()
        self._mime = QMimeDatabase()

    def icon(self, what):  # QFileInfo, or an IconType
        if isinstance(what, QFileInfo):
            kind = (QFileIconProvider.IconType.Folder if what.isDir()
                    else QFileIconProvider.IconType.File)
            return super().icon(kind)
        return super().icon(what)

    def type(self, info: QFileInfo) -> str:
        if info.isDir():
            return "Folder"
        return self._mime.mimeTypeForFile(
            info.fileName(), QMimeDatabase.MatchMode.MatchExtension).comment()


def file_dialog(parent: QWidget | None, caption: str, directory: str = "",
                name_filter: str = "") -> QFileDialog:
    """A Qt file dialog that reads no file's contents (see the module docstring)."""
    dialog = QFileDialog(parent, caption, directory, name_filter)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    provider = NameOnlyIconProvider()
    dialog.setIconProvider(provider)
    dialog._icon_provider = provider  # the dialog does not own it: keep it alive with it
    return dialog


def _run(dialog: QFileDialog) -> list[str]:
    try:
        if dialog.exec() != QFileDialog.DialogCode.Accepted:
            return []
        return dialog.selectedFiles()
    finally:
        dialog.deleteLater()


def get_open_file_name(parent: QWidget | None, caption: str = "", directory: str = "",
                       name_filter: str = "") -> tuple[str, str]:
    """An existing file, as ``QFileDialog.getOpenFileName``: ``(path, filter)``, ``("", "")``
    when cancelled."""
    dialog = file_dialog(parent, caption, directory, name_filter)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    chosen = _run(dialog)
    return (chosen[0], dialog.selectedNameFilter()) if chosen else ("", "")


def get_open_file_names(parent: QWidget | None, caption: str = "", directory: str = "",
                        name_filter: str = "") -> tuple[list[str], str]:
    """Existing files, as ``QFileDialog.getOpenFileNames``."""
    dialog = file_dialog(parent, caption, directory, name_filter)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
    chosen = _run(dialog)
    return (chosen, dialog.selectedNameFilter()) if chosen else ([], "")


def get_save_file_name(parent: QWidget | None, caption: str = "", directory: str = "",
                       name_filter: str = "") -> tuple[str, str]:
    """A file to write, as ``QFileDialog.getSaveFileName`` (asks before replacing one)."""
    dialog = file_dialog(parent, caption, directory, name_filter)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    chosen = _run(dialog)
    return (chosen[0], dialog.selectedNameFilter()) if chosen else ("", "")


def get_existing_directory(parent: QWidget | None, caption: str = "",
                           directory: str = "") -> str:
    """An existing folder, as ``QFileDialog.getExistingDirectory``; ``""`` when cancelled."""
    dialog = file_dialog(parent, caption, directory)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    chosen = _run(dialog)
    return chosen[0] if chosen else ""


class NewFolderDialog(QFileDialog):
    """A folder dialog that also takes the name of a folder that does not exist yet: it says
    so and offers to make it (Qt's own answer is only "Directory not found")."""

    def accept(self) -> None:
        chosen = self.selectedFiles()
        folder = Path(chosen[0]) if chosen else None
        if folder is not None and not folder.exists():
            parent = folder.parent
            if not parent.is_dir():
                QMessageBox.warning(
                    self, self.windowTitle(),
                    f"{folder} does not exist, nor does the folder it would be in ({parent}). "
                    f"Choose an existing folder, or type the name of a new one inside an "
                    f"existing folder.")
                return
            answer = QMessageBox.question(
                self, self.windowTitle(),
                f"{folder} does not exist yet. Make this folder?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Yes)
            if answer != QMessageBox.StandardButton.Yes:
                return
            try:
                folder.mkdir()
            except OSError as error:
                QMessageBox.warning(self, self.windowTitle(),
                                    f"{folder} cannot be made: {error.strerror or error}")
                return
        super().accept()


def get_new_or_existing_directory(parent: QWidget | None, caption: str = "",
                                  directory: str = "") -> str:
    """A folder, existing or made on the spot when the user types a new name (after asking);
    ``""`` when cancelled."""
    dialog = NewFolderDialog(parent, caption, directory)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    provider = NameOnlyIconProvider()
    dialog.setIconProvider(provider)
    dialog._icon_provider = provider
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    chosen = _run(dialog)
    return chosen[0] if chosen else ""
