"""Autosave: a kill -9 of the app one second after the last edit loses nothing; closing the
window loses nothing at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from PySide6.QtCore import Qt

from engine.data.project import Project
from tests.conftest import REPO

AUTOSAVE_PROMISE_S = 1.0


def _stored_boxes(folder, image_id):
    with Project.open(folder) as project:
        return [[b.x0, b.y0, b.x1, b.y1, b.category_id] for b in project.boxes(image_id)]


def test_a_kill_9_one_second_after_the_last_edit_loses_nothing(demo_folder):
    with Project.open(demo_folder) as project:
        first = project.images()[0].id
        project.set_boxes(first, [], status="unlabeled", base=project.boxes(first))
    with subprocess.Popen(
            [sys.executable, "-m", "tests.app.scripted_labeling", str(demo_folder), "3"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}) as child:
        try:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            edited = json.loads(line)
            time.sleep(AUTOSAVE_PROMISE_S)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert len(edited["boxes"]) == 3
    assert _stored_boxes(demo_folder, edited["image_id"]) == edited["boxes"]
    with Project.open(demo_folder) as project:
        assert project.image(first).status == "in_progress"


def test_closing_the_window_right_after_an_edit_saves_it(qtbot, window):
    canvas = window.labeling.canvas
    image_id = window.labeling.editor.image_id
    canvas.select(0)
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Right)  # nudge, then close at once (no timer)
    expected = [[b.x0, b.y0, b.x1, b.y1, b.category_id] for b in window.labeling.editor.boxes]
    folder = window.project.folder
    window.close()
    assert _stored_boxes(folder, image_id) == expected
