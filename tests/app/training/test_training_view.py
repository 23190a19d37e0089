"""The Train tab driven as a user drives it: Start a tiny run on the demo project and watch
the curves and a checkpoint come, pause, resume, stop, resume from the last checkpoint to the
end; kill the worker and see the cause and the offer to resume; a project with nothing to
train on is explained before anything starts. The GUI's event loop keeps serving throughout.
"""

from __future__ import annotations

import os
import signal

import pytest
from PySide6.QtCore import Qt, QTimer

from app.training.view import TrainingView, format_duration, training_data_problem
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.training.runs import list_runs, read_events

TIMEOUT_MS = 180_000  # a loaded 2-core machine: the worker's start alone can take 10 s
TINY = {"rpn_batch_size_per_image": 32, "box_batch_size_per_image": 32,
        "representation_size": 128}


@pytest.fixture
def demo(tmp_path):
    """3 train and 1 val images: 2 steps per epoch at batch size 2."""
    return write_demo_project(tmp_path / "demo", count=4)


@pytest.fixture
def view(qtbot, demo):
    view = TrainingView(demo)
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    form = view.form
    form.set_device("cpu")
    form.min_size.setValue(160)
    form.batch_size.setValue(2)
    form.overrides = {"detector": dict(TINY), "training": {}}
    yield view
    view.shutdown()


def _click(qtbot, button):
    assert button.isEnabled(), f"{button.text()} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _steps_plotted(view):
    x, _ = view.plots.loss_curves["loss"].getData()
    return 0 if x is None else len(x)


@pytest.mark.slow
def test_train_pause_resume_stop_and_resume_from_the_checkpoint(view, qtbot, demo):
    view.form.epochs.setValue(3)  # 6 steps: room to stop after the first checkpoint
    ticks = []
    timer = QTimer(interval=50)
    timer.timeout.connect(lambda: ticks.append(len(ticks)))
    timer.start()
    events = []  # (event, timer ticks so far) for every event the GUI thread handled
    written = []
    view.checkpoint_written.connect(written.append)

    with qtbot.waitSignal(view.running_changed, timeout=5000) as running:
        _click(qtbot, view.start_button)
    assert running.args == [True] and view.is_running()
    view._driver.event.connect(lambda e: events.append((e["event"], len(ticks))))
    # What the speed line read after each event (by the next one it may read "Evaluating").
    speed_lines = []
    view._driver.event.connect(lambda e: speed_lines.append((e["event"], view.speed.text())))
    assert not view.start_button.isEnabled() and not view.form.isEnabled()
    [run] = list_runs(demo)
    assert run.folder == view.run_folder and run.job.training["epochs"] == 3

    # The first step arrives: the curves and the progress bar follow it.
    qtbot.waitUntil(lambda: _steps_plotted(view) >= 1, timeout=TIMEOUT_MS)
    assert view.progress.maximum() == 6
    step_lines = [text for event, text in speed_lines if event == "step"]
    assert step_lines and "batch" in step_lines[0] and "ETA" in step_lines[0], speed_lines
    # Pause takes effect between steps; Resume goes on from there.
    _click(qtbot, view.pause_button)
    qtbot.waitUntil(lambda: view.resume_button.isEnabled(), timeout=TIMEOUT_MS)
    assert view.message_text().startswith("Paused at step")
    assert not view.pause_button.isEnabled()
    _click(qtbot, view.resume_button)
    qtbot.waitUntil(lambda: bool(written), timeout=TIMEOUT_MS)  # epoch 1 evaluated, last.pt saved
    assert written[0] == view.run_folder / "last.pt" and written[0].is_file()
    assert view.plots.data.epochs[0] == 1

    with qtbot.waitSignal(view.running_changed, timeout=TIMEOUT_MS) as ended:
        _click(qtbot, view.stop_button)
    assert ended.args == [False]
    run = view.runs_list.selected_run()
    assert run.state == "stopped" and run.can_resume() and run.best_ap is not None
    stopped_at = run.step
    assert 2 <= stopped_at < 6
    assert view.message_text().startswith(f"Stopped: stopped at step {stopped_at}")
    assert view.resume_run_button.isEnabled()

    with qtbot.waitSignal(view.running_changed, timeout=TIMEOUT_MS):
        _click(qtbot, view.resume_run_button)
    events.clear()
    view._driver.event.connect(lambda e: events.append((e["event"], len(ticks))))
    with qtbot.waitSignal(view.running_changed, timeout=TIMEOUT_MS) as ended:
        pass
    assert ended.args == [False]
    assert view.message_text().startswith("Finished: best AP")
    run = view.runs_list.selected_run()
    assert run.state == "finished" and len(run.epochs) == 3 and run.best is not None
    assert view.plots.data.steps == [1, 2, 3, 4, 5, 6] and view.plots.data.epochs == [1, 2, 3]
    saved = read_events(run.folder)
    assert [e["event"] for e in saved].count("hello") == 2
    assert [e["resumed_at_step"] for e in saved if e["event"] == "started"] == [0, stopped_at]
    # The event loop kept serving while the worker trained: the timer ticked between the
    # resumed run's start and its end, and between its steps.
    started_at = next(t for kind, t in events if kind == "started")
    finished_at = next(t for kind, t in events if kind == "finished")
    assert finished_at - started_at >= 6 - stopped_at
    timer.stop()


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_its_run_can_be_resumed(view, qtbot):
    view.form.epochs.setValue(50)  # still training after the first checkpoint
    with qtbot.waitSignal(view.running_changed, timeout=5000):
        _click(qtbot, view.start_button)
    with qtbot.waitSignal(view.checkpoint_written, timeout=TIMEOUT_MS):
        pass
    with qtbot.waitSignal(view.running_changed, timeout=TIMEOUT_MS) as ended:
        os.kill(view.worker_pid, signal.SIGKILL)
    assert ended.args == [False] and not view.is_running()
    message = view.message_text()
    assert "killed with SIGKILL" in message
    assert "“Resume from last checkpoint” continues from last.pt (step 2)" in message
    assert "color:#c92a2a" in view.message.text()  # shown as an error
    run = view.runs_list.selected_run()
    assert run.state == "failed" and "SIGKILL" in run.message
    assert view.resume_run_button.isEnabled() and view.start_button.isEnabled()


def test_a_project_without_a_train_split_is_explained_before_starting(qtbot, tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=3)
    with Project.open(folder) as project:
        project.set_split([image.id for image in project.images()], None)
    view = TrainingView(folder)
    qtbot.addWidget(view)
    _click(qtbot, view.start_button)
    assert not view.is_running() and list_runs(folder) == []
    assert view.message_text().startswith("Nothing to train on: training uses the images "
                                          "marked done in the train split, and none of the "
                                          "project's 3 images is both.")
    assert "give the project a split (for example 80% train, 20% val)" in view.message_text()
    view.shutdown()


def test_what_else_stops_a_run_before_it_starts(tmp_path):
    empty = write_demo_project(tmp_path / "demo", count=1)
    with Project.open(empty) as project:
        project.set_split([image.id for image in project.images()], "train")
    problem, warning = training_data_problem(empty)
    assert problem is None and warning.startswith("No val images")
    with Project.open(empty) as project:
        project.set_status([image.id for image in project.images()], "unlabeled")
    problem, _ = training_data_problem(empty)
    assert problem.startswith("Nothing to train on")
    problem, _ = training_data_problem(tmp_path / "nowhere")
    assert problem.startswith("The project cannot be opened")


def test_what_the_worker_says_is_shown(qtbot, demo):
    view = TrainingView(demo)
    qtbot.addWidget(view)
    view.show_event({"event": "started", "device": "cuda:0", "amp": True, "train_images": 30,
                     "val_images": 8, "classes": ["a", "b"], "epochs": 12,
                     "steps_per_epoch": 15, "total_steps": 180, "batch_size": 2,
                     "world_size": 1, "lr": 0.0025, "resumed_at_step": 45})
    assert view.message_text() == ("Training on cuda:0: 30 train / 8 val images, 2 classes, "
                                   "12 epochs of 15 steps, lr 0.0025, resumed at step 45.")
    assert (view.progress.value(), view.progress.maximum()) == (45, 180)
    view.show_event({"event": "step", "step": 46, "total_steps": 180, "epoch": 4, "batch": 1,
                     "batches": 15, "losses": {}, "loss": 0.8125, "lr": 0.0025,
                     "images_per_s": 12.5, "eta_s": 21.4})
    assert view.progress.value() == 46
    assert view.speed.text() == ("Epoch 4, batch 1/15 · loss 0.812 · 12.50 images/s · "
                                 "ETA 00:21")
    for n in range(6):
        view.show_event({"event": "warning", "kind": "unreadable_image", "step": 46,
                         "message": f"img{n}.jpg cannot be read; left out"})
    assert view.warnings.text().splitlines() == [
        "Warning: img2.jpg cannot be read; left out", "Warning: img3.jpg cannot be read; left out",
        "Warning: img4.jpg cannot be read; left out", "Warning: img5.jpg cannot be read; left out",
        "(2 earlier warnings in events.jsonl)"]
    view.show_event({"event": "output", "text": "a library printing to stdout"})  # ignored
    view.shutdown()


def test_durations_read_as_a_clock():
    assert format_duration(None) == "--:--"
    assert format_duration(75.4) == "01:15"
    assert format_duration(3 * 3600 + 62) == "3:01:02"
