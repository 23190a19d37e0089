"""The Train tab's presets (listed, loadable, chosen for the device and data), its measured
duration, and the runs list's State (paused) and Configuration (readable in full) columns."""

from __future__ import annotations

import json
import os

import pytest
from PySide6.QtCore import Qt

from app import file_dialogs
from app.training.runs_list import COLUMNS, RunsList
from app.training.settings_form import TrainingSettingsForm
from app.training.view import TrainingView
from engine.data.demo import write_demo_project
from engine.training import events
from engine.training.job import TrainingJob
from engine.training.runs import EventLog, new_run_folder, write_job

STATE, CONFIGURATION = COLUMNS.index("State"), COLUMNS.index("Configuration")


@pytest.fixture
def form(qtbot, tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps(
        {"description": "my own", "detector": {"min_size": 416}, "training": {"epochs": 5}}))
    form = TrainingSettingsForm(devices=[("cpu", "CPU")], presets_folder=tmp_path)
    qtbot.addWidget(form)
    form.show()
    return form


def _choose(form, name):
    index = form.preset.findText(name)
    assert index >= 0, f"{name} is not listed"
    form.preset.setCurrentIndex(index)
    form.preset.activated.emit(index)


def test_presets_are_listed_and_fill_the_form(form):
    listed = [form.preset.itemText(i) for i in range(form.preset.count())]
    assert {"cpu", "reference-gpu", "demo-cpu", "raccoon-cpu", "mine"} <= set(listed)
    assert listed[-1] == "Load from file…"
    _choose(form, "demo-cpu")
    assert (form.min_size.value(), form.epochs.value(), form.batch_size.value()) == (240, 3, 4)
    assert form.time_budget.value() == 0
    job = form.job("/p", "/p/runs/r")
    assert job.detector["rpn_batch_size_per_image"] == 128  # a setting without a field
    _choose(form, "cpu")
    assert form.time_budget.value() == 8
    assert form.job("/p", "/r").training["time_budget_s"] == 480.0
    # Setting the epochs means training for them: the budget goes off.
    form.epochs.setValue(7)
    assert form.time_budget.value() == 0 and "time_budget_s" not in form.training_settings()
    _choose(form, "mine")
    assert (form.min_size.value(), form.epochs.value()) == (416, 5)


def test_mixed_precision_can_be_turned_off(form):
    assert form.amp.isChecked() and "amp" not in form.training_settings()
    form.amp.setChecked(False)
    assert form.training_settings()["amp"] is False


def test_a_preset_file_loads_and_a_bad_one_is_named(form, tmp_path, monkeypatch):
    good = tmp_path / "elsewhere.json"
    good.write_text(json.dumps({"detector": {"min_size": 288}, "training": {}}))
    monkeypatch.setattr(file_dialogs, "get_open_file_name", lambda *a, **k: (str(good), ""))
    _choose(form, "Load from file…")
    assert form.preset.currentText() == "elsewhere" and form.min_size.value() == 288
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    monkeypatch.setattr(file_dialogs, "get_open_file_name", lambda *a, **k: (str(bad), ""))
    _choose(form, "Load from file…")
    assert form.preset.currentIndex() == 0 and "bad.json: not JSON" in form.preset.toolTip()


def _run_with_events(project, *records):
    folder = new_run_folder(project)
    write_job(folder, TrainingJob(project=str(project), out=str(folder),
                                  detector={"min_size": 240},
                                  training={"time_budget_s": 480.0, "batch_size": 4}))
    with EventLog(folder) as log:
        for record in records:
            log.append(record)
    return folder


def test_the_state_column_says_paused_while_paused(qtbot, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    folder = _run_with_events(project, events.Hello(protocol=1, pid=os.getpid()),
                              events.Paused(step=4))
    runs = RunsList(project)
    qtbot.addWidget(runs)
    item = runs.tree.topLevelItem(0)
    assert item.text(STATE) == "paused"
    with EventLog(folder) as log:
        log.append(events.Resumed(step=4))
    runs.refresh()
    assert runs.tree.topLevelItem(0).text(STATE) == "running"


def test_the_configuration_column_is_wide_enough_to_read(qtbot, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    _run_with_events(project)
    runs = RunsList(project)
    qtbot.addWidget(runs)
    runs.resize(420, 300)  # the Train tab's left panel
    runs.show()
    item = runs.tree.topLevelItem(0)
    text = item.text(CONFIGURATION)
    run = runs.runs[0]
    assert text.replace("\n", ", ") == run.describe()  # nothing left out
    assert "time budget 8 min" in text
    metrics = runs.tree.fontMetrics()
    widest = max(metrics.horizontalAdvance(line) for line in text.splitlines())
    assert runs.tree.columnWidth(CONFIGURATION) >= widest
    assert item.toolTip(CONFIGURATION) == run.describe()
    assert len(text.splitlines()) >= 2  # on several short lines, not one long one


def test_the_tab_starts_from_the_preset_for_the_cpu_and_measures_the_duration(qtbot, tmp_path):
    project = write_demo_project(tmp_path / "demo", count=4)
    view = TrainingView(project)
    qtbot.addWidget(view)
    try:
        form = view.form
        assert form.preset.currentText() == "cpu" and form.backbone.currentText() == \
            "efficientnet_lite0"
        assert form.min_size.value() == 240 and form.time_budget.value() == 4
        assert view.preset_note.text().startswith("Preset cpu: a short schedule on the CPU")
        assert "not measured yet" in view.duration.text()
        # Tiny settings so that the timed steps are quick here.
        form.set_device("cpu")
        form.min_size.setValue(128)
        form.batch_size.setValue(1)
        form.overrides = {"detector": {"rpn_batch_size_per_image": 32,
                                       "box_batch_size_per_image": 32,
                                       "representation_size": 128}, "training": {}}
        view.measured_steps = 1  # the program times 3; one is enough to see it work
        qtbot.mouseClick(view.measure_button, Qt.MouseButton.LeftButton)
        assert not view.measure_button.isEnabled()
        qtbot.waitUntil(lambda: "timed here" in view.duration.text()
                        or "could not" in view.duration.text(), timeout=300_000)
        text = view.duration.text()
        assert text.startswith("Expected duration: 04:00 (the time budget): about "), text
        assert "(1 step timed here), then an evaluation" in text
        assert view.measure_button.isEnabled()
        form.epochs.setValue(2)
        assert "Measure again" in view.duration.text()
    finally:
        view.shutdown()
