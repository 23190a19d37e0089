"""The inspector's run state without any widget: a checkpoint and an image make one first run,
late results are dropped, setting changes during a rerun run only the latest, a hidden view
waits, failures are reported; with the real detector on a real checkpoint.

The runner runs what the session submits only when the test says (on the test's thread, in
order, dropping cancelled calls as the app's TaskRunner does), so every interleaving of the
user's actions and the worker's results can be played out exactly.
"""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

import pytest

import app.inspector.session as session_module
from app.inspector.session import InspectorSession, default_settings
from engine.data.demo import CLASSES
from engine.data.project import CategoryRow
from engine.detector.checkpoint import load_detector

from .conftest import CATEGORY_IDS


class _Task:
    def __init__(self, runner, function, args, on_done, on_error, on_progress):
        self.runner, self.function, self.args = runner, function, args
        self.on_done, self.on_error, self.on_progress = on_done, on_error, on_progress
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def progress(self, fraction: float, text: str = "") -> None:
        if not self.cancelled and self.on_progress is not None:
            self.on_progress(fraction, text)


class SteppedRunner:
    """The :class:`~app.inspector.session.Runner` contract, one call at a time on demand."""

    def __init__(self) -> None:
        self.queue: list[_Task] = []
        self.ran: list[str] = []

    def submit(self, function, *args, on_done=None, on_error=None, on_progress=None):
        task = _Task(self, function, args, on_done, on_error, on_progress)
        self.queue.append(task)
        return task

    def pending(self) -> list[str]:
        return [task.function.__name__ for task in self.queue if not task.cancelled]

    def run_next(self) -> str | None:
        """Run the next call not cancelled (cancelled ones are dropped); its name."""
        while self.queue and self.queue[0].cancelled:
            self.queue.pop(0)
        if not self.queue:
            return None
        task = self.queue.pop(0)
        kwargs = {"task": task} if "task" in inspect.signature(task.function).parameters else {}
        try:
            result = task.function(*task.args, **kwargs)
        except Exception as error:  # delivered to on_error, as TaskRunner does
            if not task.cancelled and task.on_error is not None:
                task.on_error(error, "")
        else:
            if not task.cancelled and task.on_done is not None:
                task.on_done(result)
        self.ran.append(task.function.__name__)
        return task.function.__name__

    def run_all(self) -> None:
        while self.queue:
            self.run_next()


class Listener:
    """Records what the session tells its view."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.traces: list = []

    def on_checkpoint(self, path):
        self.events.append(("checkpoint", Path(path).name))

    def on_image(self, display):
        self.events.append(("image", display))

    def on_detector(self, detector):
        self.events.append(("detector", len(detector.classes)))

    def on_busy(self, busy, text):
        self.events.append(("busy", busy, text))

    def on_status(self, text):
        self.events.append(("status", text))

    def on_failure(self, message):
        self.events.append(("failure", message))

    def on_trace(self, trace):
        self.traces.append(trace)

    def failures(self) -> list[str]:
        return [event[1] for event in self.events if event[0] == "failure"]


@pytest.fixture
def harness():
    runner, listener = SteppedRunner(), Listener()
    visible = {"shown": True}
    session = InspectorSession(runner, listener, display=lambda image: image.size,
                               visible=lambda: visible["shown"])
    return session, runner, listener, visible


def _first_trace(session, runner, checkpoint, sample):
    path, boxes, ids = sample
    session.set_image(path, boxes, ids)
    session.offer_checkpoints([checkpoint])
    assert runner.pending() == ["_load_image_job", "_load_checkpoint_job"]
    runner.run_next()
    runner.run_next()
    assert runner.pending() == ["_first_run_job"]
    runner.run_next()
    return session.trace


def test_a_checkpoint_and_an_image_make_one_first_run(harness, inspector_checkpoint,
                                                      demo_sample):
    session, runner, listener, _ = harness
    trace = _first_trace(session, runner, inspector_checkpoint, demo_sample)
    path, boxes, ids = demo_sample
    assert trace is not None and listener.traces[-1] is trace
    # Project categories 11..14 are the checkpoint's classes 1..4 (saved with it).
    assert trace.target_labels.tolist() == [c - 10 for c in ids]
    assert session.classes.name(1) == CLASSES[0]
    detector = load_detector(inspector_checkpoint)
    assert trace.settings == pytest.approx(default_settings(detector))
    assert not session.busy and session.inspection is not None
    # The image reached the view as ``display`` made it; then the load, the run and its end.
    assert ("image", None) in listener.events
    image_size = session.image.size
    assert ("image", image_size) in listener.events
    busy = [event for event in listener.events if event[0] == "busy"]
    assert busy[-2][:2] == ("busy", True) and busy[-2][2].startswith("Running resnet18 on")
    assert busy[-1][:2] == ("busy", False) and "first run" in busy[-1][2]
    assert any(event[0] == "status" and "running the detector" in event[1]
               for event in listener.events)
    # Then the box head's background precompute.
    assert runner.pending() == ["_precompute_job"] and session.precomputing
    runner.run_next()
    assert not session.precomputing
    # The same image and boxes again (a window refreshing): nothing to do.
    session.set_image(path, boxes, ids)
    assert runner.pending() == [] and session.trace is trace


def test_a_run_started_before_the_image_changed_is_never_shown(harness, inspector_checkpoint,
                                                               demo_sample):
    session, runner, listener, _ = harness
    path, boxes, ids = demo_sample
    session.set_image(path, boxes, ids)
    session.offer_checkpoints([inspector_checkpoint])
    runner.run_next()
    runner.run_next()
    assert runner.pending() == ["_first_run_job"]
    session.set_image(path, boxes[:1], ids[:1])  # the user labels on: one box left
    assert runner.pending() == ["_load_image_job"]  # the old run was cancelled
    runner.run_all()
    shown = [trace for trace in listener.traces if trace is not None]
    assert len(shown) == 1 and shown[0].target_boxes.shape == (1, 4)


def test_setting_changes_during_a_rerun_run_only_the_latest(harness, inspector_checkpoint,
                                                            demo_sample):
    session, runner, listener, _ = harness
    first = _first_trace(session, runner, inspector_checkpoint, demo_sample)
    assert runner.pending() == ["_precompute_job"]
    settings = dict(session.settings)
    session.change_settings({**settings, "box_nms_thresh": 0.4})
    # The precompute steps aside for the rerun.
    assert runner.pending() == ["_rerun_job"] and not session.precomputing
    for value in (0.35, 0.3, 0.25):
        session.change_settings({**settings, "box_nms_thresh": value})
    assert runner.pending() == ["_rerun_job"] and session.rerun_in_flight
    assert runner.run_next() == "_rerun_job"  # the first ends; only the latest change follows
    assert session.trace.settings["box_nms_thresh"] == pytest.approx(0.4)
    assert runner.pending() == ["_rerun_job"]
    runner.run_next()
    assert session.trace.settings["box_nms_thresh"] == pytest.approx(0.25)
    assert runner.ran.count("_rerun_job") == 2 and not session.rerun_in_flight
    assert session.settings["box_nms_thresh"] == pytest.approx(0.25)
    # A box-head-only change reused the backbone's features and the proposals; no precompute.
    assert session.trace.levels is first.levels and session.trace.rpn is first.rpn
    assert runner.pending() == []
    assert listener.events[-1][0] == "status" and "rerun" in listener.events[-1][1]
    # An RPN change: a rerun, then the precompute of the box head for the new candidates.
    session.change_settings({**session.settings, "rpn_nms_thresh": 0.6})
    runner.run_next()
    assert session.trace.rpn is not first.rpn
    assert runner.pending() == ["_precompute_job"]


def test_a_hidden_view_runs_nothing_until_shown(harness, inspector_checkpoint, demo_sample):
    session, runner, _, visible = harness
    visible["shown"] = False
    path, boxes, ids = demo_sample
    session.set_image(path, boxes, ids)
    session.offer_checkpoints([inspector_checkpoint])
    runner.run_all()
    assert session.trace is None and not session.busy and "_first_run_job" not in runner.ran
    visible["shown"] = True
    session.shown()
    assert runner.pending() == ["_first_run_job"]
    runner.run_all()
    assert session.trace is not None


def test_a_bad_checkpoint_is_reported_and_another_one_runs(harness, inspector_checkpoint,
                                                           demo_sample, tmp_path):
    session, runner, listener, _ = harness
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    path, boxes, ids = demo_sample
    session.set_image(path, boxes, ids)
    session.offer_checkpoints([bad, inspector_checkpoint])
    runner.run_all()
    assert len(listener.failures()) == 1 and "broken.pt" in listener.failures()[0]
    assert not session.busy and session.trace is None and session.detector is None
    session.load_checkpoint(inspector_checkpoint)
    runner.run_all()
    assert session.trace is not None
    assert ("checkpoint", "best.pt") in listener.events


def test_a_rewritten_checkpoint_is_loaded_again(harness, inspector_checkpoint, demo_sample,
                                                tmp_path):
    session, runner, _, _ = harness
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(inspector_checkpoint.read_bytes())
    first = _first_trace(session, runner, checkpoint, demo_sample)
    runner.run_all()
    session.offer_checkpoints([checkpoint])  # unchanged: nothing to do
    assert runner.pending() == [] and session.trace is first
    stamp = checkpoint.stat()
    os.utime(checkpoint, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    session.offer_checkpoints([checkpoint])
    assert runner.pending() == ["_load_checkpoint_job"] and session.trace is None
    runner.run_all()
    assert session.trace is not None and session.trace is not first


def test_project_categories_are_matched_to_the_checkpoints_classes_by_name(
        harness, inspector_checkpoint, demo_sample):
    """The class map's rule (engine.detector.class_map): the project's categories carry other
    ids than the ones the checkpoint saved (11..14), matched by name; one renamed since
    training is no class of the checkpoint any more."""
    session, runner, _, _ = harness
    path, boxes, ids = demo_sample
    new_id = {name: 21 + index for index, name in enumerate(CLASSES)}
    renamed = next(name for name, c in CATEGORY_IDS.items() if c == ids[0])
    categories = [CategoryRow(new_id[name], name if name != renamed else "renamed", "#000000")
                  for name in CLASSES]
    project_ids = [new_id[name] for name in (
        next(n for n, c in CATEGORY_IDS.items() if c == category) for category in ids)]
    session.set_image(path, boxes, project_ids, categories)
    session.offer_checkpoints([inspector_checkpoint])
    runner.run_all()
    trace = session.trace
    kept = [c - 10 for c in ids if c != CATEGORY_IDS[renamed]]
    assert 0 < len(kept) < len(ids)
    assert trace.target_labels.tolist() == kept
    left_out = session.ground_truth.left_out
    assert {box.name for box in left_out} == {"renamed"}
    assert all("not a class of this checkpoint" in box.note for box in left_out)
    # Renaming it back is a change of the image's categories: a new run, the box used again.
    session.set_image(path, boxes, project_ids,
                      [CategoryRow(new_id[name], name, "#000000") for name in CLASSES])
    runner.run_all()
    assert session.trace.target_labels.tolist() == [c - 10 for c in ids]


def test_the_session_imports_no_qt():
    """Its own imports and those of the inspector modules it uses name no Qt binding."""
    package = Path(session_module.__file__).parent
    seen, todo = set(), ["session"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                if node.level == 1:
                    todo.extend(m.split(".")[0] for m in modules if m)
                    todo.extend(alias.name for alias in node.names
                                if (package / f"{alias.name}.py").exists() and not node.module)
            else:
                continue
            assert not any(m.startswith(("PySide6", "pyqtgraph", "PyQt", "app.workers",
                                         "app.qt_images")) for m in modules), (name, modules)
    assert {"session", "ground_truth", "stage_base", "scene", "hit_testing"} <= seen


def test_an_image_the_model_cannot_take_is_named_and_nothing_runs(harness, inspector_checkpoint,
                                                                  tmp_path):
    from PIL import Image

    session, runner, listener, _ = harness
    strip = tmp_path / "strip.png"
    Image.new("RGB", (4000, 20)).save(strip)
    session.set_image(strip, [], [])
    session.offer_checkpoints([inspector_checkpoint])
    runner.run_all()
    (failure,) = listener.failures()
    assert failure.startswith(f"{strip}: a 4000x20 image is too elongated")
    assert "_first_run_job" not in runner.ran and not session.busy
