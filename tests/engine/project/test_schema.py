"""The database file: created at the current version with a rollback journal, migrated, newer
files refused."""

from __future__ import annotations

import sqlite3
import time

import pytest

from engine.data import schema
from engine.data.project import PROJECT_FILE, Project, ProjectError, ProjectVersionError


def test_a_new_project_has_the_current_schema_and_a_rollback_journal(tmp_path):
    with Project.create(tmp_path / "p") as project:
        db = project.connection
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"categories", "images", "boxes", "boxes_by_image", "images_by_hash"} <= tables
    # No write-ahead log: nothing beside the database outlives a transaction.
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [PROJECT_FILE]


def test_a_project_an_earlier_version_left_in_wal_mode_is_turned_to_a_rollback_journal(tmp_path):
    Project.create(tmp_path).close()
    raw = sqlite3.connect(tmp_path / PROJECT_FILE, isolation_level=None)
    assert raw.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    raw.execute("INSERT INTO categories (name, color) VALUES ('cat', '#112233')")
    raw.close()
    with Project.open(tmp_path) as project:
        assert project.connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [c.name for c in project.categories()] == ["cat"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [PROJECT_FILE]


def test_create_refuses_an_existing_project_and_open_refuses_a_plain_folder(tmp_path):
    Project.create(tmp_path / "p").close()
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(tmp_path / "p")
    with pytest.raises(ProjectError, match="not a project folder"):
        Project.open(tmp_path)
    # Opening by the database file's own path works too.
    with Project.open(tmp_path / "p" / PROJECT_FILE) as project:
        assert project.folder == tmp_path / "p"


def test_a_file_that_is_not_a_database_is_refused_with_its_name(tmp_path):
    (tmp_path / PROJECT_FILE).write_text("not sqlite at all, just text " * 100)
    with pytest.raises(ProjectError, match=f"{PROJECT_FILE}: not a readable project database"):
        Project.open(tmp_path)


def test_some_other_sqlite_database_is_not_taken_for_a_project(tmp_path):
    other = sqlite3.connect(tmp_path / PROJECT_FILE)
    other.execute("CREATE TABLE notes (text TEXT)")
    other.execute("PRAGMA user_version = 1")
    other.commit()
    other.close()
    with pytest.raises(ProjectError, match="not a workbench project"):
        Project.open(tmp_path)


def test_a_project_from_a_newer_version_is_refused_clearly(tmp_path):
    Project.create(tmp_path).close()
    raw = sqlite3.connect(tmp_path / PROJECT_FILE)
    raw.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(ProjectVersionError, match="newer version of the workbench"):
        Project.open(tmp_path)


def _add_notes_column(connection: sqlite3.Connection) -> None:
    """A stand-in for a future migration: it adds a column with a default."""
    connection.execute("ALTER TABLE images ADD COLUMN notes TEXT NOT NULL DEFAULT ''")


def test_migrating_a_version_1_file_to_the_latest_and_beyond_keeps_the_data(tmp_path):
    # A version-1 project with data, as the first workbench release wrote it.
    raw = sqlite3.connect(tmp_path / PROJECT_FILE, isolation_level=None)
    schema.migrate(raw, "project.sqlite", schema.MIGRATIONS[:1])
    raw.execute("INSERT INTO categories (name, color) VALUES ('cat', '#112233')")
    raw.execute("INSERT INTO images (path, width, height, problem) "
                "VALUES ('a.png', 4, 3, 'missing')")
    raw.execute("INSERT INTO boxes (image_id, category_id, x0, y0, x1, y1) "
                "VALUES (1, 1, 0, 0, 2, 2)")
    assert schema.schema_version(raw) == 1
    migrations = (*schema.MIGRATIONS, _add_notes_column)
    assert schema.migrate(raw, "project.sqlite", migrations) == 1  # the version it was at
    assert schema.schema_version(raw) == len(migrations)
    assert raw.execute("SELECT path, width, notes FROM images").fetchall() == [("a.png", 4, "")]
    assert raw.execute("SELECT count(*) FROM boxes").fetchone()[0] == 1
    assert raw.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0  # version 2
    # Running it again is a no-op; the current program refuses the migrated file as newer.
    assert schema.migrate(raw, "project.sqlite", migrations) == len(migrations)
    raw.close()
    with pytest.raises(ProjectVersionError, match=f"schema version {len(migrations)}"):
        Project.open(tmp_path)


def test_a_failing_migration_leaves_the_last_complete_version(tmp_path):
    Project.create(tmp_path).close()

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("ALTER TABLE images ADD COLUMN half_done TEXT")
        raise RuntimeError("power cut in the middle of the migration")

    raw = sqlite3.connect(tmp_path / PROJECT_FILE, isolation_level=None)
    with pytest.raises(RuntimeError, match="power cut"):
        schema.migrate(raw, "project.sqlite", (*schema.MIGRATIONS, broken))
    assert schema.schema_version(raw) == schema.SCHEMA_VERSION
    columns = [row[1] for row in raw.execute("PRAGMA table_info(images)")]
    assert "half_done" not in columns
    raw.close()


def test_an_empty_file_is_migrated_from_version_0(tmp_path):
    (tmp_path / PROJECT_FILE).touch()
    with Project.open(tmp_path) as project:
        assert project.categories() == []
        assert project.connection.execute("PRAGMA user_version").fetchone()[0] == \
            schema.SCHEMA_VERSION


def test_opening_does_not_wait_for_another_writer(tmp_path):
    with Project.create(tmp_path) as writer:
        writer.add_category("cat")
        with writer.transaction():  # holds the write lock, as a long import would
            writer.add_category("dog")
            start = time.monotonic()
            with Project.open(tmp_path) as reader:
                assert [c.name for c in reader.categories()] == ["cat"]  # the committed state
            assert time.monotonic() - start < 1.0


def test_a_writer_that_cannot_get_the_lock_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.data.project.BUSY_TIMEOUT_S", 0.05)  # instead of 10 s
    with Project.create(tmp_path) as first, first.transaction(), \
            Project.open(tmp_path) as second, \
            pytest.raises(ProjectError, match="another program has held the project"):
        second.add_category("cat")
