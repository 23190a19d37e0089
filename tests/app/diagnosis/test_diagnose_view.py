"""The Diagnose tab: the worker runs a tiny checkpoint over a tiny project's split off the GUI
thread, fills the charts and the box list, re-evaluates a what-if, and a double-click on a box
opens it in the inspector on its image."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt

from app.main_window import MainWindow
from engine import build_model
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import save_detector
from engine.detector.class_map import classes_for
from engine.diagnosis.funnel import FATES

WAIT_MS = 300_000  # a shared CPU under load


@pytest.fixture
def tiny(tmp_path):
    project = write_demo_project(tmp_path / "demo", count=4, val_fraction=0.5)
    with Project.open(project) as store:
        classes = classes_for(store.categories())
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(classes) + 1, min_size=96, max_size=128,
                        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    checkpoint = tmp_path / "model.pt"
    save_detector(checkpoint, model, classes)
    return project, checkpoint


def test_diagnose_fills_the_charts_and_a_box_opens_in_the_inspector(qtbot, tiny, settings):
    project, checkpoint = tiny
    window = MainWindow(project, settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    view = window.diagnose
    window.tabs.setCurrentWidget(view)
    view.set_checkpoints([checkpoint])
    assert view.run_button.isEnabled()
    with qtbot.waitSignal(view.diagnosis_ready, timeout=WAIT_MS):
        view.run_button.click()
        assert view.busy and view.cancel_button.isEnabled()  # the GUI thread is free
    diagnosis = view.diagnosis
    boxes = diagnosis.base.funnel.boxes
    assert boxes > 0
    assert sum(view.funnel_chart.values) == boxes and len(view.funnel_chart.values) == len(FATES)
    assert len(view.dap_chart.values) == 6
    assert sum(view.anchor_histograms.histograms["all levels"]) == boxes
    assert len(view.anchor_histograms.plots) == 6  # P2..P6 and all levels
    assert view.box_table.rowCount() == boxes
    assert "%" in view.suggestion_label.text()

    # The suggested preset, in one click, into the Train tab's form (shapes of 20-90 px shrunk
    # to 96 px images are smaller than the default anchors: the search finds better ones).
    assert diagnosis.suggestion.changed
    view.tabs.setCurrentIndex(1)
    view.train_button.click()
    assert window.tabs.currentWidget() is window.training
    job = window.training.form.job(project, project / "runs" / "x")
    assert job.detector["anchor_sizes"] == diagnosis.preset["detector"]["anchor_sizes"]
    assert job.detector["aspect_ratios"] == diagnosis.preset["detector"]["aspect_ratios"]
    window.tabs.setCurrentWidget(view)

    # What if: a stricter score threshold, from the kept outputs.
    view.what_if_fields["box_score_thresh"].setValue(0.9)
    with qtbot.waitSignal(view.diagnosis_ready, timeout=WAIT_MS):
        view.what_if_button.click()
    assert view.last_what_if.settings["box_score_thresh"] == pytest.approx(0.9)
    assert view.what_if_table.rowCount() == 2 + len(FATES)

    # A double-click on a box: the inspector, on that box's image, with the checkpoint.
    row = view.box_rows()[0]
    rect = view.box_table.visualItemRect(view.box_table.item(0, 0))
    view.box_table.scrollToItem(view.box_table.item(0, 0))
    # Item views take a double-click on the item that was pressed: press, then double-click.
    qtbot.mouseClick(view.box_table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.box_table.viewport(), Qt.MouseButton.LeftButton,
                      pos=rect.center())
    assert window.tabs.currentWidget() is window.inspector
    session = window.inspector.session
    assert session.image_path.name == row["path"].split("/")[-1]
    assert session.checkpoint == checkpoint
    # Once its trace arrives: the detections stage, with the box selected.
    qtbot.waitUntil(lambda: window.inspector.trace is not None, timeout=WAIT_MS)
    assert window.inspector.stage_key == "detections"
    selection = window.inspector._selections.get("detections")
    assert selection is not None and selection.kind == "target"
    assert selection.index == row["box_index"]
    window.close()


def test_cancel_stops_the_diagnosis(qtbot, tiny, settings):
    project, checkpoint = tiny
    window = MainWindow(project, settings=settings)
    qtbot.addWidget(window)
    view = window.diagnose
    view.set_checkpoints([checkpoint])
    view.start()
    view.cancel()
    assert not view.busy and view.run_button.isEnabled()
    assert view.status.text() == "Cancelled."
    window.close()
