"""The Inspect tab as a learner meets it: what it says without a checkpoint, sliders a mouse
can set, NMS stages that show survivors first, a caption on the anchor grid's offset, and the
box head opening on its best-scoring proposal. Driven through the real widgets."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

from app.inspector.controls import SLIDER_MIN_WIDTH, InspectionControls
from app.inspector.stages import Selection
from app.inspector.view import InspectorView

from .test_view import _inspect


@pytest.fixture
def view(qtbot):
    view = InspectorView()
    qtbot.addWidget(view)
    view.resize(1300, 850)
    yield view
    view.shutdown()


def test_without_a_checkpoint_the_tab_says_what_to_do(qtbot, view):
    view.show()
    view.set_checkpoints([])
    qtbot.waitExposed(view)
    assert view.hint.isVisible()
    text = view.hint.text()
    assert "Train" in text and "Open checkpoint" in text
    # No disabled controls showing 0.00, no empty caption or black legend strip.
    assert not view.controls.isVisible() and not view.options_group.isVisible()
    assert not view.legend.isVisible() and not view.caption.isVisible()


def test_with_a_checkpoint_the_hint_gives_way_to_the_stages(qtbot, view, inspector_checkpoint,
                                                            demo_sample):
    _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    assert not view.hint.isVisible()
    assert view.canvas.isVisible() and view.controls.isVisible()


def test_threshold_sliders_are_wide_and_fine(qtbot):
    controls = InspectionControls()
    qtbot.addWidget(controls)
    controls.resize(280, 600)
    controls.show()
    qtbot.waitExposed(controls)
    slider = controls.sliders["box_score_thresh"]
    assert slider.width() >= SLIDER_MIN_WIDTH
    controls.set_settings({"box_score_thresh": 0.05})
    start = slider.value()
    # A 10 px mouse drag on the handle.
    handle_x = round(slider.width() * start / slider.maximum())
    y = slider.height() // 2
    with qtbot.waitSignal(controls.changed, timeout=2000):
        qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(handle_x + 3, y))
        for dx in (3, 6, 9, 13):
            qtbot.mouseMove(slider, QPoint(handle_x + dx, y))
        qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(handle_x + 13, y))
    moved = controls.boxes["box_score_thresh"].value() - 0.05
    assert 0 < moved <= 0.07, moved


def test_rpn_nms_shows_survivors_first_and_the_suppressed_on_demand(qtbot, view,
                                                                      inspector_checkpoint,
                                                                      demo_sample):
    trace = _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    view.set_stage("proposals-nms")
    assert not view.suppressed_check.isChecked()
    assert view.canvas.scene().count("suppressed") == 0
    qtbot.mouseClick(view.suppressed_check, Qt.MouseButton.LeftButton)
    suppressed = int((trace.rpn.suppressed_by >= 0).sum())
    limit = view.max_boxes_box.value()

    def drawn():
        return sum(len(layer.boxes) for layer in view.canvas.scene().layers
                   if hasattr(layer, "boxes"))

    assert view.canvas.scene().count("suppressed") == max(
        0, min(suppressed, limit - trace.rpn.final.numel()))
    assert drawn() <= limit
    view.set_option("max_boxes", 20)
    assert drawn() <= 20
    assert "of" in view.caption.text() and "drawn" in view.caption.text()


def test_the_anchor_grid_offset_is_captioned_on_the_picture(qtbot, view, inspector_checkpoint,
                                                             demo_sample):
    _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    view.set_stage("anchors")
    labels = [label.text for label in view.canvas.scene().labels]
    assert any("half a cell above and left" in text for text in labels)
    assert "half a cell beyond the image's top and left" in view.caption.text()


def test_the_box_head_stage_opens_on_the_best_scoring_proposal(qtbot, view, inspector_checkpoint,
                                                               demo_sample):
    trace = _inspect(qtbot, view, inspector_checkpoint, demo_sample)
    view.set_stage("class-scores")
    probs = trace.box_head.class_probs
    objectness = trace.rpn.scores[trace.rpn.final]
    combined = objectness * probs[:, 1:].max(dim=1).values
    best = int(combined.argmax())
    assert f"Proposal {best}," in view.info.text() and "best-scoring" in view.info.text()
    assert "Opened on the best-scoring proposal" in view.caption.text()
    # A click elsewhere shows that proposal instead, without the note.
    view.set_selection(Selection("proposal", 0 if best else 1))
    assert "best-scoring" not in view.info.text()
