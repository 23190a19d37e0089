"""Where the app keeps its per-user data (the demo project), and moving it from where older
versions kept it.

The folder is ``QStandardPaths.GenericDataLocation`` + ``frcnn-workbench``: on Linux
``~/.local/share/frcnn-workbench`` (``$XDG_DATA_HOME`` when set), on macOS
``~/Library/Application Support/frcnn-workbench``, on Windows ``%LOCALAPPDATA%/frcnn-workbench``.
Older versions used ``AppDataLocation``, which with the organization named like the
application repeats the name (``~/.local/share/frcnn-workbench/frcnn-workbench``);
:func:`data_folder` moves such a folder's contents up once.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from PySide6.QtCore import QStandardPaths

APPLICATION_NAME = "frcnn-workbench"


def data_folder() -> Path:
    """The per-user data folder (see the module docstring), its old doubled-name location's
    contents moved into it first if they are there and it has no such entries yet."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    folder = Path(base) / APPLICATION_NAME
    migrate_doubled_folder(folder)
    return folder


def migrate_doubled_folder(folder: Path) -> None:
    """Move ``folder/<name>/*`` (the old location) up into ``folder``, entry by entry, leaving
    any entry whose name ``folder`` already has where it is; remove the old folder when empty.
    An entry that cannot be moved stays (the app then writes a fresh one)."""
    old = folder / folder.name
    if not old.is_dir():
        return
    for entry in sorted(old.iterdir()):
        target = folder / entry.name
        if not target.exists():
            try:
                shutil.move(str(entry), str(target))
            except OSError:
                continue
    with contextlib.suppress(OSError):  # something stayed behind: leave it for the user
        old.rmdir()


def demo_project_folder() -> Path:
    """Where the demo project lives: the per-user data folder, then ``demo``."""
    return data_folder() / "demo"
