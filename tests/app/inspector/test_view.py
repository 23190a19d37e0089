"""The inspector view driven as a user drives it: load a checkpoint and an image, step through
every stage, click a proposal, change a threshold, export a stage."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

import app.inspector.session as session_module
import app.inspector.view as view_module
from app.inspector.controls import SLIDER_STEPS
from app.inspector.stages import STAGE_KEYS, STAGES, StageContext, ViewOptions, select_at
from app.inspector.view import InspectorView
from engine.data.demo import CLASSES

RUN_TIMEOUT_MS = 120_000  # a loaded CI machine; the run itself takes about a second


@pytest.fixture
def view(qtbot):
    view = InspectorView()
    qtbot.addWidget(view)
    view.resize(1300, 850)
    yield view
    view.shutdown()


def _inspect(qtbot, view, checkpoint, sample, boxes=None, category_ids=None):
    path, sample_boxes, sample_ids = sample
    view.show()
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        view.set_image(path, sample_boxes if boxes is None else boxes,
                       sample_ids if category_ids is None else category_ids)
        view.set_checkpoints([checkpoint])
    return view.trace


def _click_image(qtbot, view, x, y):
    point = view.canvas.image_to_widget(x, y).toPoint()
    qtbot.mouseClick(view.canvas, Qt.MouseButton.LeftButton, pos=point)
    return view.canvas.widget_to_image(point.toPointF())


def test_step_through_every_stage_with_next_and_export_each(qtbot, view, inspector_checkpoint,
                                                             demo_sample, tmp_path):
    trace = _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    assert trace.target_boxes.shape[0] == len(demo_sample[1])
    # Project categories 11..14 became the checkpoint's classes 1..4.
    assert trace.target_labels.tolist() == [c - 10 for c in demo_sample[2]]
    assert view.controls.isEnabled() and not view.progress.isVisible()
    seen = []
    for stage in STAGES:
        seen.append(view.stage_key)
        assert view.caption.text().startswith(f"{stage.number} · ")
        assert view.stage_list.currentItem().text() == stage.label
        exported = view.export_png(tmp_path / f"{stage.key}.png")
        picture = QImage(str(exported))
        assert (picture.width(), picture.height()) == (view.centre.width(), view.centre.height())
        qtbot.mouseClick(view.next_button, Qt.MouseButton.LeftButton)
    assert seen == list(STAGE_KEYS)
    assert view.stage_key == STAGE_KEYS[-1]  # Next stops at the last stage
    qtbot.mouseClick(view.previous_button, Qt.MouseButton.LeftButton)
    assert view.stage_key == STAGE_KEYS[-2]


def test_click_a_proposal_and_read_its_level(qtbot, view, inspector_checkpoint, demo_sample):
    trace = _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    view.set_stage("roi-levels")
    levels = trace.roi_levels
    index = int(levels.sqrt_area[:50].argmax())  # a large one among the drawn best
    x0, y0, _, y1 = trace.rpn.proposals[index].tolist()
    x, y = _click_image(qtbot, view, x0 + 0.5, (y0 + y1) / 2)
    # Which proposal that is: the pure hit test at the clicked image point.
    expected = select_at("roi-levels", StageContext(
        trace, options=ViewOptions(max_boxes=view.max_boxes_box.value()),
        tolerance=view_module.CLICK_TOLERANCE_PX / view.canvas.zoom), x, y)
    assert expected is not None and expected.kind == "proposal"
    k = int(levels.level[expected.index])
    name = levels.level_names[k - levels.k_min]
    assert f"Proposal {expected.index}: pooled from {name}" in view.info.text()
    assert f"stride {2 ** k} px" in view.info.text()
    assert view.chart.isVisible() and view.chart.chart.highlight == k - levels.k_min
    assert view.canvas.scene().count("roi samples") == 196


def test_change_the_score_threshold_and_see_the_detections_change(qtbot, view,
                                                                  inspector_checkpoint,
                                                                  demo_sample):
    trace = _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    view.set_stage("detections")
    before = trace.detections.scores
    assert float(before.min()) < 0.6 < float(before.max())
    spin = view.controls.boxes["box_score_thresh"]
    spin.setFocus()
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(spin, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        qtbot.keyClicks(spin, "0.6")
        qtbot.keyClick(spin, Qt.Key.Key_Return)
    after = view.trace.detections.scores
    assert view.trace.settings["box_score_thresh"] == pytest.approx(0.6)
    assert 0 < after.numel() < before.numel() and bool((after > 0.6).all())
    drawn = sum(view.canvas.scene().count(f"detections {name}") for name in CLASSES)
    assert drawn == after.numel()
    assert view.controls.sliders["box_score_thresh"].value() == round(0.6 * SLIDER_STEPS)
    # The backbone did not run again: the rerun reused the first run's features.
    assert view.trace.levels is trace.levels


def test_slider_moves_during_a_rerun_run_only_the_latest(qtbot, view, inspector_checkpoint,
                                                         demo_sample, monkeypatch):
    _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    release, runs = threading.Event(), []
    real = session_module._rerun_job

    def slow_rerun(inspection, overrides):
        runs.append(overrides["box_nms_thresh"])
        release.wait(30)
        return real(inspection, overrides)

    monkeypatch.setattr(session_module, "_rerun_job", slow_rerun)
    slider = view.controls.sliders["box_nms_thresh"]
    for value in (0.40, 0.35, 0.30, 0.25):
        slider.setValue(round(value * SLIDER_STEPS))
    qtbot.waitUntil(lambda: len(runs) == 1)
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        release.set()  # the first rerun finishes, then only the latest value runs
    qtbot.waitUntil(lambda: view.trace.settings["box_nms_thresh"] == pytest.approx(0.25),
                    timeout=RUN_TIMEOUT_MS)
    assert runs == [pytest.approx(0.40), pytest.approx(0.25)]
    assert view.controls.boxes["box_nms_thresh"].value() == pytest.approx(0.25)


def test_the_first_run_happens_off_the_gui_thread_with_the_controls_disabled(
        qtbot, view, inspector_checkpoint, demo_sample, monkeypatch):
    release, threads = threading.Event(), []
    real = session_module._first_run_job

    def held_run(*args, task):
        threads.append(threading.current_thread())
        release.wait(30)
        return real(*args, task=task)

    monkeypatch.setattr(session_module, "_first_run_job", held_run)
    path, boxes, ids = demo_sample
    view.show()
    view.set_image(path, boxes, ids)
    view.set_checkpoints([inspector_checkpoint])
    qtbot.waitUntil(lambda: bool(threads))
    # The run is waiting on the worker; the window keeps handling events meanwhile.
    assert threads[0] is not threading.main_thread()
    assert view.busy and view.progress.isVisible()
    assert not view.controls.isEnabled() and not view.next_button.isEnabled()
    assert "Running resnet18" in view.status.text()
    view.stage_list.setCurrentRow(3)
    assert view.stage_key == STAGE_KEYS[3]
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        release.set()
    assert view.controls.isEnabled() and not view.busy
    assert view.caption.text().startswith("3b · ")


def test_a_hidden_view_runs_nothing_until_shown(qtbot, view, inspector_checkpoint, demo_sample,
                                                monkeypatch):
    runs = []
    real = session_module._first_run_job
    monkeypatch.setattr(session_module, "_first_run_job",
                        lambda *args, task: runs.append(1) or real(*args, task=task))
    path, boxes, ids = demo_sample
    view.set_image(path, boxes, ids)
    view.set_checkpoints([inspector_checkpoint])
    qtbot.waitUntil(lambda: not view.busy, timeout=RUN_TIMEOUT_MS)
    qtbot.wait(50)
    assert runs == [] and view.trace is None
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        view.show()
    assert runs == [1]


def test_without_boxes_matching_is_skipped_and_unknown_categories_are_noted(
        qtbot, view, inspector_checkpoint, demo_sample):
    trace = _inspect(qtbot, view, inspector_checkpoint, demo_sample, boxes=[], category_ids=[])
    assert trace.anchor_matching is None
    assert not view.stage_list.item(1).flags() & Qt.ItemFlag.ItemIsEnabled
    qtbot.mouseClick(view.next_button, Qt.MouseButton.LeftButton)
    assert view.stage_key == "proposals-before-nms"
    # A box of a category the checkpoint never learned: drawn, noted, not a target.
    box = demo_sample[1][0]
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        view.set_image(demo_sample[0], [box], [99])
    assert view.trace.target_boxes.shape == (0, 4)
    view.set_stage("detections")
    assert "not a class of this checkpoint" in view.info.text()
    assert view.canvas.scene().count("ground truth not used") == 1


def test_a_bad_checkpoint_is_reported_and_another_can_be_chosen(qtbot, view, inspector_checkpoint,
                                                               demo_sample, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    path, boxes, ids = demo_sample
    view.show()
    view.set_image(path, boxes, ids)
    with qtbot.waitSignal(view.failed, timeout=RUN_TIMEOUT_MS) as failure:
        view.set_checkpoints([bad, inspector_checkpoint])
    assert "broken.pt" in failure.args[0]
    assert not view.busy and view.trace is None
    assert [view.checkpoint_box.itemData(i) for i in range(2)] == [str(bad),
                                                                   str(inspector_checkpoint)]
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        view.checkpoint_box.activated.emit(1)  # what choosing the second entry does
    assert view.checkpoint_box.currentIndex() == 1
    assert Path(view.checkpoint_box.currentData()) == inspector_checkpoint


def test_a_rewritten_checkpoint_is_reloaded_and_the_same_image_is_not_rerun(
        qtbot, view, inspector_checkpoint, demo_sample, tmp_path, monkeypatch):
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(inspector_checkpoint.read_bytes())
    _inspect(qtbot, view, checkpoint, demo_sample)
    loads, runs = [], []
    real_load, real_run = session_module._load_checkpoint_job, session_module._first_run_job
    monkeypatch.setattr(session_module, "_load_checkpoint_job",
                        lambda path: loads.append(path) or real_load(path))
    monkeypatch.setattr(session_module, "_first_run_job",
                        lambda *args, task: runs.append(1) or real_run(*args, task=task))
    first = view.trace
    view.set_image(*demo_sample)  # the window refreshing the same image: nothing to do
    view.set_checkpoints([checkpoint])  # the file has not changed: nothing to do
    qtbot.wait(50)
    assert view.trace is first and loads == [] and runs == []
    # Training writes best.pt again: offering it again loads it again.
    checkpoint.write_bytes(inspector_checkpoint.read_bytes())
    stamp = checkpoint.stat()
    os.utime(checkpoint, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    with qtbot.waitSignal(view.trace_changed, timeout=RUN_TIMEOUT_MS):
        view.set_checkpoints([checkpoint])
    assert loads == [checkpoint] and runs == [1]
