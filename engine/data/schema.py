"""The project database's schema and its migrations.

A project is a folder holding ``project.sqlite`` (SQLite in WAL mode). Its tables, as of
schema version 2:

``categories``: the classes of object.
    ``id``       INTEGER PRIMARY KEY AUTOINCREMENT: stable; never renumbered, and an id freed by
                 deleting a category is not handed out again by automatic numbering.
    ``name``     TEXT, unique, not empty.
    ``color``    TEXT ``#rrggbb`` (lower case), the colour boxes of this class are drawn in.

``images``: the images, referenced in place (never copied).
    ``id``       INTEGER PRIMARY KEY.
    ``path``     TEXT, unique: POSIX path relative to the project folder when the image lies
                 inside it, else the absolute path.
    ``width``, ``height``  INTEGER pixels of the image *as displayed* (after EXIF orientation);
                 NULL when unknown (file missing or unreadable, and no size declared).
    ``hash``     TEXT hex BLAKE2b-128 of the file's bytes (finds the same image under another
                 name); NULL when the file could not be read.
    ``status``   TEXT: unlabeled, in_progress, done or skipped.
    ``split``    TEXT: train, val, test, or NULL for none.
    ``problem``  TEXT: NULL when the file was readable when last looked at, "missing" (no file
                 at ``path``) or "unreadable" (a file, but not an image we can open). Such images
                 are kept with their boxes, never deleted.

``boxes``: one row per box.
    ``id``           INTEGER PRIMARY KEY.
    ``image_id``     -> images.id (deleting an image deletes its boxes).
    ``category_id``  -> categories.id (a category in use cannot be deleted).
    ``x0, y0, x1, y1``  REAL pixel-edge coordinates in the displayed image: a box covering a
                 whole W x H image is (0, 0, W, H); x0 < x1 and y0 < y1.
    ``difficult``, ``truncated``  INTEGER 0 or 1 (Pascal VOC's flags).
    ``source``       TEXT: manual, imported or predicted.
    ``score``        REAL in [0, 1] for predicted boxes, NULL for the others.

``predictions`` (version 2): a model's suggested boxes waiting for the user's decision
(model-assisted labeling). Accepting one turns it into a ``boxes`` row with source
"predicted" and its score; rejecting deletes it.
    ``id``           INTEGER PRIMARY KEY.
    ``image_id``     -> images.id (deleting an image deletes its predictions).
    ``category_id``  -> categories.id (deleting a category deletes its predictions: they are
                 suggestions, made again by running the model).
    ``x0, y0, x1, y1``  REAL, as in ``boxes``.
    ``score``        REAL in [0, 1].
    ``model``        TEXT: the checkpoint that made it (its path as given).

Versioning: ``PRAGMA user_version`` holds the schema version; ``MIGRATIONS[i]`` takes a
database from version ``i`` to ``i + 1`` (version 0 is an empty file). Each migration runs in
its own transaction together with the version bump, so an interrupted upgrade leaves the last
complete version. A database whose version is above ``len(MIGRATIONS)`` was written by a
newer program and is refused rather than guessed at. ``PRAGMA application_id`` marks the file
as ours, so that some other SQLite file is not mistaken for a project.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

# "FRCW" as a 32-bit big-endian integer: what `file project.sqlite` shows as the application id.
APPLICATION_ID = 0x46524357

Migration = Callable[[sqlite3.Connection], None]


class ProjectError(ValueError):
    """A project folder or database that cannot be used, with the path and the reason."""


class ProjectVersionError(ProjectError):
    """The database was written by a newer schema version than this program knows."""


_VERSION_1 = (
    """
    CREATE TABLE categories (
        id    INTEGER PRIMARY KEY AUTOINCREMENT,
        name  TEXT NOT NULL UNIQUE CHECK (length(name) > 0),
        color TEXT NOT NULL CHECK (color GLOB '#[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]')
    )
    """,
    """
    CREATE TABLE images (
        id      INTEGER PRIMARY KEY,
        path    TEXT NOT NULL UNIQUE,
        width   INTEGER CHECK (width > 0),
        height  INTEGER CHECK (height > 0),
        hash    TEXT,
        status  TEXT NOT NULL DEFAULT 'unlabeled'
                CHECK (status IN ('unlabeled', 'in_progress', 'done', 'skipped')),
        split   TEXT CHECK (split IN ('train', 'val', 'test')),
        problem TEXT CHECK (problem IN ('missing', 'unreadable'))
    )
    """,
    # Duplicate detection looks images up by content hash.
    "CREATE INDEX images_by_hash ON images (hash)",
    # The trainer and the GUI's filters ask for one split and/or one status.
    "CREATE INDEX images_by_split_status ON images (split, status)",
    """
    CREATE TABLE boxes (
        id          INTEGER PRIMARY KEY,
        image_id    INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        category_id INTEGER NOT NULL REFERENCES categories (id),
        x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
        difficult   INTEGER NOT NULL DEFAULT 0 CHECK (difficult IN (0, 1)),
        truncated   INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
        source      TEXT NOT NULL DEFAULT 'manual'
                    CHECK (source IN ('manual', 'imported', 'predicted')),
        score       REAL CHECK (score BETWEEN 0 AND 1),
        CHECK (x0 < x1 AND y0 < y1),
        CHECK ((source = 'predicted') = (score IS NOT NULL))
    )
    """,
    # Every image's boxes (the canvas, box counts in the image list) and a category's boxes
    # (merge, delete, per-class counts) are looked up this way.
    "CREATE INDEX boxes_by_image ON boxes (image_id)",
    "CREATE INDEX boxes_by_category ON boxes (category_id)",
    f"PRAGMA application_id = {APPLICATION_ID}",
)


def _migrate_0_to_1(connection: sqlite3.Connection) -> None:
    """Version 1: categories, images and boxes (see the module docstring)."""
    for statement in _VERSION_1:
        connection.execute(statement)


def _migrate_1_to_2(connection: sqlite3.Connection) -> None:
    """Version 2: pending predictions (see the module docstring)."""
    connection.execute("""
        CREATE TABLE predictions (
            id          INTEGER PRIMARY KEY,
            image_id    INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            category_id INTEGER NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
            x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
            score       REAL NOT NULL CHECK (score BETWEEN 0 AND 1),
            model       TEXT NOT NULL,
            CHECK (x0 < x1 AND y0 < y1)
        )
        """)
    connection.execute("CREATE INDEX predictions_by_image ON predictions (image_id)")
    connection.execute("CREATE INDEX predictions_by_category ON predictions (category_id)")


MIGRATIONS: tuple[Migration, ...] = (_migrate_0_to_1, _migrate_1_to_2)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA user_version").fetchone()[0]


def migrate(connection: sqlite3.Connection, name: str,
            migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)``; returns the version it was at.

    ``connection`` must be in autocommit mode (``isolation_level=None``): each migration runs
    in a ``BEGIN IMMEDIATE`` transaction of its own with its version bump, so a crash between
    two migrations leaves a database at a complete earlier version. ``name`` (the file) goes
    into error messages.
    """
    found = schema_version(connection)
    if found > len(migrations):
        raise ProjectVersionError(
            f"{name}: written by a newer version of the workbench (project schema version "
            f"{found}; this version reads up to {len(migrations)}). Update the workbench to "
            f"open it."
        )
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if found > 0 and application_id != APPLICATION_ID:
        raise ProjectError(f"{name}: an SQLite database, but not a workbench project")
    # Only an old database takes the write lock: opening an up-to-date project while another
    # process writes to it must not wait for that writer.
    while schema_version(connection) < len(migrations):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated meanwhile.
            version = schema_version(connection)
            if version >= len(migrations):
                connection.execute("ROLLBACK")
                return found
            migrations[version](connection)
            connection.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    return found
