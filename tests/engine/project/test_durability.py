"""A kill -9 of a writing process leaves exactly the last committed state.

A child process writes in a loop, one transaction per step, and prints each step's number once
it has committed. We kill it with SIGKILL while it writes, reopen the project and check that it
holds exactly the steps 1..m for some m at least the last printed one (and at most one more:
committed, killed before printing), each step complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.data.annotations import BoxRecord
from engine.data.project import Project

from ...conftest import REPO

# Each step, in one transaction: a new image (its file absent, so no file I/O muddles timing)
# with 20 + step % 30 boxes whose x0 is the step number, and a replacement of the boxes of a
# counter image by one box whose x0 is the step number. Many statements per step make it
# likely that the kill lands inside a transaction rather than between two.
CHILD = """
import sys
from engine.data.annotations import BoxRecord
from engine.data.annotations import BoxRecord
from engine.data.project import Project

project = Project.open(sys.argv[1])
category = project.categories()[0].id
counter = project.images()[0].id
step = 0
while True:
    step += 1
    with project.transaction():
        image = project.insert_image(project.folder / f"step_{step}.png", width=100,
                                     height=100, hash=None, problem="missing")
        project.set_boxes(image, [BoxRecord(step, i, step + 1, i + 1, category)
                                  for i in range(20 + step % 30)], base=project.boxes(image))
        project.set_boxes(counter, [BoxRecord(step, 0, step + 1, 1, category)],
                          base=project.boxes(counter))
    print(step, flush=True)
"""


def _boxes_expected(step: int) -> int:
    return 20 + step % 30


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_kill_9_while_writing_leaves_the_last_committed_state(tmp_path):
    with Project.create(tmp_path / "p") as project:
        project.add_category("thing")
        project.insert_image(tmp_path / "p" / "counter.png", width=100, height=100, hash=None)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "p")],
                             stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    printed = 0
    deadline = time.monotonic() + 60
    try:
        # Let it commit a good number of steps, then kill it mid-stream, at a moment that
        # depends on timing (as a real crash would).
        while printed < 25 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            printed = int(line)
        time.sleep(0.003 * (printed % 7))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        for line in child.stdout:  # steps committed and printed just before the kill
            printed = int(line)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert printed >= 25, "the writer did not get going"

    with Project.open(tmp_path / "p") as project:
        db = project.connection
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        images = project.images()
        counter, steps = images[0], images[1:]
        last = len(steps)
        assert printed <= last <= printed + 1  # every printed step is there, nothing beyond
        assert [image.path for image in steps] == [f"step_{k}.png" for k in range(1, last + 1)]
        for k, image in enumerate(steps, start=1):
            boxes = project.boxes(image.id)
            assert len(boxes) == _boxes_expected(k), f"step {k} is partial"
            assert {box.x0 for box in boxes} == {float(k)}
        assert [box.x0 for box in project.boxes(counter.id)] == [float(last)]
        assert db.execute("SELECT count(*) FROM boxes").fetchone()[0] == 1 + sum(
            _boxes_expected(k) for k in range(1, last + 1))


# Dies inside a transaction on purpose: the rows are in the page cache and the journal, the
# commit never comes. What it leaves is a "hot journal" beside the database.
DIES_MID_CHANGE = """
import os, signal, sys
from engine.data.annotations import BoxRecord
from engine.data.annotations import BoxRecord
from engine.data.project import Project

project = Project.open(sys.argv[1])
category = project.categories()[0].id
image = project.images()[0].id
project.connection.execute("PRAGMA cache_size = 1")  # spill pages to the file before COMMIT
with project.transaction():
    for step in range(200):
        project.add_boxes(image, [BoxRecord(1, 1, 2, 2, category)] * 20)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
@pytest.mark.parametrize("read_only", [False, True])
def test_a_change_left_half_written_is_undone_at_the_next_open(tmp_path, read_only):
    """A process killed mid-change leaves ``project.sqlite-journal``; the next open (even a
    read-only one by a user who may write) plays it back: 3 committed boxes, not 4,003."""
    folder = tmp_path / "p"
    with Project.create(folder) as project:
        category = project.add_category("thing").id
        image = project.insert_image(folder / "a.png", width=100, height=100, hash=None)
        project.add_boxes(image, [BoxRecord(10, 10, 20, 20, category)] * 3)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", DIES_MID_CHANGE, str(folder)], env=env,
                           cwd=REPO, timeout=120)
    assert child.returncode == -signal.SIGKILL
    journal = folder / "project.sqlite-journal"
    assert journal.exists() and journal.stat().st_size > 0

    with Project.open(folder, read_only=read_only) as project:
        assert len(project.boxes(project.images()[0].id)) == 3
        assert project.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not journal.exists()
