"""A minute of the app's editor, a training worker and CLI readers on one project, with random
kill -9 of any of them: afterwards every committed edit is there and the database is sound.

The editor (app/labeling/editor.py's ProjectEditor, as the Label tab drives it) prints each
edit before its save ("attempt") and after the save returned ("committed"). A kill between
the two may leave the attempted edit stored or not; everything committed must be stored.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.data.demo import write_demo_project
from engine.data.project import Project

from ...conftest import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")]

DURATION_S = 60.0
ENV = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}

EDITOR = """
import json, random, sys
from app.labeling.editor import ProjectEditor
from engine.data.annotations import BoxRecord
from engine.data.project import Project

project = Project.open(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
images = [image.id for image in project.images()]
classes = [category.id for category in project.categories()]
editor = ProjectEditor(project)
serial = int(sys.argv[2]) * 100000
while True:
    image = rng.choice(images)
    editor.open_image(image)
    boxes = list(editor.boxes)
    serial += 1
    if rng.random() < 0.6 or not boxes:
        x, y = rng.uniform(0, 100), rng.uniform(0, 100)
        boxes.append(BoxRecord(x, y, x + 10 + serial % 7, y + 10, rng.choice(classes),
                               source="manual"))
    elif rng.random() < 0.5:
        i = rng.randrange(len(boxes))
        b = boxes[i]
        boxes[i] = BoxRecord(b.x0 + 1, b.y0, b.x1 + 1, b.y1, b.category_id, source="manual")
    else:
        del boxes[rng.randrange(len(boxes))]
    state = [[b.x0, b.y0, b.x1, b.y1, b.category_id] for b in boxes]
    editor.edit_boxes(boxes, "edit")
    print(json.dumps({"attempt": image, "boxes": state}), flush=True)
    editor.flush()
    print(json.dumps({"committed": image, "boxes": state}), flush=True)
"""

TINY_CONFIG = {
    "detector": {"min_size": 96, "max_size": 128, "rpn_batch_size_per_image": 32,
                 "box_batch_size_per_image": 32},
    "training": {"epochs": 50, "batch_size": 2},
}


class Role:
    """One kind of process, restarted whenever it ends or is killed."""

    def __init__(self, name: str, command) -> None:
        self.name, self.command = name, command
        self.process: subprocess.Popen | None = None
        self.starts = self.kills = 0
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        if self._reader is not None:
            self._reader.join(10)
        self.starts += 1
        self.process = subprocess.Popen(self.command(self.starts), env=ENV, cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True)
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen) -> None:
        with process.stdout:
            for line in process.stdout:
                self.lines.append(line)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.kills += 1

    def stop(self) -> None:
        self.kill()
        if self._reader is not None:
            self._reader.join(10)


def test_editor_trainer_and_readers_killed_at_random_lose_no_committed_edit(tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=12, seed=3)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    python = [sys.executable]
    roles = [
        Role("editor", lambda n: [*python, "-c", EDITOR, str(folder), str(n)]),
        Role("trainer", lambda n: [*python, "-m", "engine.cli", "train", "--project",
                                   str(folder), "--out", str(folder / "runs" / f"r{n}"),
                                   "--config", str(config), "--device", "cpu"]),
        Role("reader", lambda n: [*python, "-m", "engine.cli",
                                  *(["info", "--project", str(folder)] if n % 2 else
                                    ["export-annotations", "--project", str(folder),
                                     "--format", "coco", "--out", str(tmp_path / "x.json")])]),
    ]
    rng = random.Random(0)
    end = time.monotonic() + DURATION_S
    try:
        while time.monotonic() < end:
            for role in roles:
                role.ensure_running()
            time.sleep(rng.uniform(1.0, 4.0))
            rng.choice(roles).kill()
    finally:
        for role in roles:
            role.stop()
    editor = roles[0]
    assert editor.kills >= 3 and roles[1].kills + roles[2].kills >= 3, \
        [(role.name, role.starts, role.kills) for role in roles]
    # What each image must hold: its last committed state, or an attempt made after it (a kill
    # between the save and its report).
    committed: dict[int, list] = {}
    later_attempt: dict[int, list] = {}
    commits = 0
    for line in editor.lines:
        if not line.endswith("\n"):
            continue  # cut off by a kill
        record = json.loads(line)
        if "committed" in record:
            committed[record["committed"]] = record["boxes"]
            later_attempt.pop(record["committed"], None)
            commits += 1
        else:
            later_attempt[record["attempt"]] = record["boxes"]
    assert commits >= 20
    with Project.open(folder) as project:
        assert project.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for image_id, boxes in committed.items():
            stored = [[b.x0, b.y0, b.x1, b.y1, b.category_id] for b in project.boxes(image_id)]
            assert stored in (boxes, later_attempt.get(image_id)), image_id
    # A journal left by a kill mid-transaction was rolled back by the next opener: a
    # read-only connection (which may not play a hot journal back) reads the file. (A kill
    # before the journal's header was synced leaves a journal SQLite knows is not hot.)
    left = {p.name for p in Path(folder).iterdir() if p.name.startswith("project")}
    assert left <= {"project.sqlite", "project.sqlite-journal"}, left
    reader = sqlite3.connect(f"{(Path(folder) / 'project.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        assert reader.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        reader.close()
