"""The files of a project's store, and the rule that keeps everything else away from them.

A project's database is ``project.sqlite``; SQLite writes companions beside it while it works:
``project.sqlite-journal`` (the rollback journal of a transaction under way) and, in projects
written by earlier versions, ``project.sqlite-wal`` and ``project.sqlite-shm``.

SQLite coordinates processes with POSIX advisory locks, and POSIX drops *every* lock a process
holds on a file when that process closes *any* descriptor of the file, even one opened by
unrelated code (SQLite's "How To Corrupt An SQLite Database File", section 2.2). A file
dialog sniffing the file's type, an image loader or an annotation reader that opens the store
by mistake would silently strip the locks of the process's own connection. So nothing but
SQLite, through :mod:`engine.data.project`, may open these files: the loaders and readers
call :func:`refuse_store_file` first, and the app's file dialogs never read file contents.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_FILE = "project.sqlite"
# Rollback journal (now), write-ahead log and its shared-memory index (projects of earlier
# versions, until they are opened once by this one).
COMPANION_SUFFIXES = ("-journal", "-wal", "-shm")
STORE_FILE_NAMES = frozenset((PROJECT_FILE, *(PROJECT_FILE + s for s in COMPANION_SUFFIXES)))


class StoreFileError(ValueError):
    """A project's database file was given where an image or an annotation file belongs."""


def is_store_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a project database file or one of its companions (by name)."""
    return Path(path).name in STORE_FILE_NAMES


def refuse_store_file(path: str | os.PathLike, as_what: str) -> None:
    """Raise :class:`StoreFileError` when ``path`` is a store file (see the module docstring).

    ``as_what`` says what the file was taken for ("an image", "annotations"), for the message.
    """
    if is_store_file(path):
        raise StoreFileError(
            f"{path}: a project's database, not {as_what}; it is only ever opened as a "
            f"project (frcnn ... --project {Path(path).parent})")
