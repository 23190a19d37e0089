"""Several processes on one project: no committed edit is ever lost, and nothing else is hurt.

Each case is a real second process (``python -c`` or the ``frcnn`` CLI), never a thread:
SQLite's locks are per process, and so are the ways to lose them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data.annotations import BoxRecord
from engine.data.project import (
    PROJECT_FILE,
    EditConflictError,
    Project,
    ProjectError,
    ProjectReadOnlyError,
)

from ...conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _frcnn(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture
def one_image(tmp_path) -> Path:
    """A project with one class and one image (its file absent: no image I/O here)."""
    folder = tmp_path / "p"
    with Project.create(folder) as project:
        project.add_category("thing")
        project.insert_image(folder / "a.png", width=100, height=100, hash=None)
    return folder


# --- an edit that another process's close cannot take away -------------------------------------

SURVIVOR = """
import os, subprocess, sys
from engine.data.annotations import BoxRecord
from engine.data.project import Project

folder = sys.argv[1]
project = Project.open(folder)
category = project.categories()[0].id
image = project.images()[0].id
# Something else in this process opens and closes the database file, as a file dialog's type
# sniffing does: POSIX drops every lock this process holds on the file.
with open(os.path.join(folder, "project.sqlite"), "rb") as stream:
    stream.read(100)
# Another process opens the project and closes it again.
subprocess.run([sys.executable, "-c",
                "import sys; from engine.data.project import Project; "
                "Project.open(sys.argv[1]).close()", folder], check=True)
project.set_boxes(image, [BoxRecord(1, 2, 30, 40, category, source="manual")], base=())
# A third process reads it while this one still holds its connection.
subprocess.run([sys.executable, "-m", "engine.cli", "export-annotations", "--project", folder,
                "--format", "coco", "--out", os.path.join(folder, "out.json")], check=True,
               stdout=subprocess.DEVNULL)
os._exit(0)  # no close, no cleanup: as a kill -9 right after the commit
"""


def test_a_commit_survives_its_process_losing_its_locks_and_another_process_closing(one_image):
    child = _python(SURVIVOR, str(one_image))
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    with Project.open(one_image) as project:
        boxes = project.boxes(project.images()[0].id)
        assert [(b.x0, b.y0, b.x1, b.y1) for b in boxes] == [(1, 2, 30, 40)]
        assert project.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The export the third process made saw the box too.
    exported = json.loads((one_image / "out.json").read_text())
    assert [a["bbox"] for a in exported["annotations"]] == [[1, 2, 29, 38]]


# --- lost updates ----------------------------------------------------------------------------

APPENDER = """
import sys
from engine.data.annotations import BoxRecord
from engine.data.project import EditConflictError, Project

project = Project.open(sys.argv[1])
tag, rounds = float(sys.argv[2]), int(sys.argv[3])
category = project.categories()[0].id
image = project.images()[0].id
conflicts = 0
for i in range(rounds):
    while True:
        read = project.boxes(image)
        try:
            project.set_boxes(image, [*(b.to_record() for b in read),
                                      BoxRecord(tag, i, tag + 1, i + 1, category)], base=read)
            break
        except EditConflictError:
            conflicts += 1  # another process wrote in between: read again and redo
print(conflicts)
"""


def test_two_processes_appending_boxes_lose_none_of_them(one_image):
    with Project.open(one_image) as project:
        category = project.categories()[0].id
        project.add_boxes(1, [BoxRecord(0, i, 1, i + 1, category) for i in range(10)])
    children = [_python(APPENDER, str(one_image), tag, "60") for tag in ("10", "20")]
    results = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in results]
    with Project.open(one_image) as project:
        boxes = project.boxes(1)
    assert len(boxes) == 10 + 120
    for tag in (0, 10, 20):
        assert sorted(b.y0 for b in boxes if b.x0 == tag) == list(range(10 if tag == 0 else 60))


def test_an_edit_based_on_what_another_process_changed_since_is_refused(one_image):
    with Project.open(one_image) as mine, Project.open(one_image) as theirs:
        category = mine.categories()[0].id
        read = mine.boxes(1)
        theirs.add_boxes(1, [BoxRecord(5, 5, 9, 9, category)])
        with pytest.raises(EditConflictError, match=r"a\.png: its boxes were changed by another"):
            mine.set_boxes(1, [BoxRecord(1, 1, 2, 2, category)], base=read)
        assert [(b.x0, b.y0) for b in mine.boxes(1)] == [(5, 5)]
        # Read again, redo: it lands, and the other process's box is kept by the edit.
        read = mine.boxes(1)
        mine.set_boxes(1, [*read, BoxRecord(1, 1, 2, 2, category)], base=read)
        assert [(b.x0, b.y0) for b in theirs.boxes(1)] == [(5, 5), (1, 1)]


def test_set_boxes_cannot_be_called_without_what_the_edit_was_based_on(one_image):
    with Project.open(one_image) as project, pytest.raises(TypeError, match="base"):
        project.set_boxes(1, [])


# --- some other program's database -------------------------------------------------------------


def _foreign_database(folder: Path) -> bytes:
    folder.mkdir()
    connection = sqlite3.connect(folder / PROJECT_FILE)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO customers (name) VALUES ('Ada')")
    connection.commit()
    connection.close()
    return (folder / PROJECT_FILE).read_bytes()


def test_another_programs_database_is_refused_by_every_command_and_left_byte_for_byte(tmp_path):
    folder = tmp_path / "shop"
    before = _foreign_database(folder)
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(images / "x.png")
    coco = tmp_path / "coco.json"
    coco.write_text('{"images": [], "annotations": [], "categories": []}')
    for command in (["info", "--project", str(folder)],
                    ["add-images", str(images), "--project", str(folder)],
                    ["import", str(coco), "--project", str(folder)],
                    ["export-annotations", "--project", str(folder), "--format", "coco",
                     "--out", str(tmp_path / "out.json")]):
        result = _frcnn(*command)
        assert result.returncode != 0, command
        assert f"{folder / PROJECT_FILE}: an SQLite database of another program " \
               f"(tables: customers), not a workbench project; left untouched" in result.stderr
    assert (folder / PROJECT_FILE).read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [PROJECT_FILE]
    with pytest.raises(ProjectError, match="another program"):
        Project.open(folder)


def test_an_empty_database_left_by_an_interrupted_create_opens_as_a_new_project(tmp_path):
    (tmp_path / PROJECT_FILE).write_bytes(b"")
    with Project.open(tmp_path) as project:
        assert project.images() == []
        project.add_category("thing")


# --- a project this user may not write ----------------------------------------------------------


def _as_reader(folder: Path) -> list[str]:
    """A command prefix that runs a child process unable to write ``folder``.

    A user without write permission: the folder and its files made read-only. Root, whom
    permissions do not stop, gets the folder as a read-only file system instead (a bind mount
    in a mount namespace of the child's own: what a project on a read-only share looks like).
    """
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() != 0:
        return []
    remount = ['unshare', '-m', 'sh', '-c',
               'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && shift && exec "$@"',
               str(folder), "--"]
    probe = subprocess.run([*remount, "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("as root, needs unshare -m to make a read-only file system")
    return remount


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_project_is_read_and_exported_and_never_written(one_image, tmp_path):
    with Project.open(one_image) as project:
        category = project.categories()[0].id
        project.add_boxes(1, [BoxRecord(1, 2, 30, 40, category)])
    before = {p.name: p.read_bytes() for p in one_image.iterdir()}
    reader = _as_reader(one_image)
    frcnn = [*reader, sys.executable, "-m", "engine.cli"]
    run = {"env": ENV, "cwd": REPO, "capture_output": True, "text": True, "timeout": 120}
    try:
        info = subprocess.run([*frcnn, "info", "--project", str(one_image)], **run)
        assert info.returncode == 0, info.stderr
        assert "images: 1, boxes: 1, categories: 1" in info.stdout
        assert "opened read-only" in info.stderr
        out = tmp_path / "export.json"
        export = subprocess.run([*frcnn, "export-annotations", "--project", str(one_image),
                                 "--format", "coco", "--out", str(out)], **run)
        assert export.returncode == 0, export.stderr
        assert [a["bbox"] for a in json.loads(out.read_text())["annotations"]] == [[1, 2, 29, 38]]
        # A write is refused, saying why, and changes nothing.
        write = subprocess.run([*frcnn, "split", "--project", str(one_image), "--train", "1"],
                               **run)
        assert write.returncode != 0
        assert "read-only" in write.stderr
        assert {p.name: p.read_bytes() for p in one_image.iterdir()} == before
    finally:
        for path in (one_image, *one_image.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_project_opened_read_only_refuses_every_write(one_image):
    with Project.open(one_image, read_only=True) as project:
        assert project.read_only
        assert [image.path for image in project.images()] == ["a.png"]
        with pytest.raises(ProjectReadOnlyError, match="opened read-only"):
            project.add_category("other")
        with pytest.raises(ProjectReadOnlyError):
            project.set_status([1], "done")
        # Looking for missing files reports them without recording anything.
        assert [image.path for image in project.check_missing()] == ["a.png"]
    with Project.open(one_image) as project:
        assert project.image(1).problem is None
