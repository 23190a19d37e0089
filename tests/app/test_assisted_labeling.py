"""Model-assisted labeling in the window: a checkpoint's suggestions on this image and on all
unlabeled ones, the score thresholds, accepting and rejecting, and what reaches the store."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from engine.data.demo import CLASSES

from .conftest import random_run_checkpoint, wait_for_full_image


@pytest.fixture
def model_run(demo_folder):
    """A checkpoint in the project's runs folder, as training leaves it. Random weights with a
    sharpened classifier: (meaningless) boxes scoring about 0.6 to 0.8 on every image."""
    return random_run_checkpoint(demo_folder, min_size=224, max_size=320, sharpen=3)


def _predict_current(qtbot, view):
    assist = view.assist
    assist.refresh_checkpoints()
    assert assist.checkpoint.currentText().startswith("2026-11-25_10-00-00: best")
    assist.predict_image.click()
    qtbot.waitUntil(lambda: not assist.running, timeout=60000)
    assert view.editor.suggestions, "the sharpened model should suggest boxes"


def test_suggestions_shown_by_threshold_then_accepted_into_the_store(qtbot, model_run,
                                                                       window):
    view = window.labeling
    assist = view.assist
    boxes_before = len(view.editor.boxes)
    _predict_current(qtbot, view)
    suggestions = view.editor.suggestions
    scores = sorted(s.score for s in suggestions)
    # The slider hides what scores below it; a class of its own threshold overrides it.
    assist.slider.setValue(0)
    assert len(view.canvas._suggestions) == len(suggestions)
    first_class = suggestions[0].category_id
    assist.set_class_threshold(first_class, 0.99)
    assert all(box.category_id != first_class for _i, box in view.canvas._suggestions)
    assist.set_class_threshold(first_class, None)
    middle = scores[len(scores) // 2]
    assist.slider.setValue(int(middle * 100))
    shown = assist.shown()
    assert all(box.score >= int(middle * 100) / 100 for _i, box in shown)
    assert len(view.canvas._suggestions) == len(shown) < len(suggestions) or \
        len(set(scores)) == 1

    assist.accept_shown.click()
    accepted = view.editor.boxes[boxes_before:]
    assert len(accepted) == len(shown)
    assert all(box.source == "predicted" and box.score is not None for box in accepted)
    assert len(view.editor.suggestions) == len(suggestions) - len(shown)
    view.flush()
    image_id = view.editor.image_id
    stored = [b for b in window.project.boxes(image_id) if b.source == "predicted"]
    assert sorted(b.score for b in stored) == sorted(b.score for b in accepted)
    assert len(window.project.predictions(image_id)) == len(suggestions) - len(shown)

    # One suggestion picked on the canvas and accepted with Enter, another rejected with Del.
    assist.slider.setValue(0)
    index, box = view.canvas._suggestions[0]
    view.canvas._select_suggestion(index)
    qtbot.keyClick(view.canvas, Qt.Key.Key_Return)
    assert view.editor.boxes[-1].score == box.score
    index, _box = view.canvas._suggestions[0]
    view.canvas._select_suggestion(index)
    remaining = len(view.editor.suggestions)
    qtbot.keyClick(view.canvas, Qt.Key.Key_Delete)
    assert len(view.editor.suggestions) == remaining - 1
    # Undo brings the rejected suggestion back.
    qtbot.keyClick(view.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(view.editor.suggestions) == remaining


def test_predicting_every_unlabeled_image_stores_their_suggestions(qtbot, model_run, window):
    view = window.labeling
    images = window.project.images()
    unlabeled = [image.id for image in images[1:3]]
    window.project.set_status(unlabeled, "unlabeled")
    view.assist.refresh_checkpoints()
    view.assist.predict_unlabeled.click()
    assert view.assist.progress.maximum() == 2
    qtbot.waitUntil(lambda: not view.assist.running, timeout=60000)
    counts = window.project.prediction_counts()
    assert set(counts) == set(unlabeled)
    # Going there shows them, dashed, ready to accept.
    view.show_image(unlabeled[0])
    wait_for_full_image(qtbot, window)
    assert len(view.editor.suggestions) == counts[unlabeled[0]]
    view.assist.accept_all.click()
    assert not view.editor.suggestions
    assert window.project.image(unlabeled[0]).status == "unlabeled"  # saved on the timer
    qtbot.waitUntil(lambda: window.project.image(unlabeled[0]).status == "in_progress",
                    timeout=2000)


def test_without_a_trained_model_the_panel_says_so(window):
    assist = window.labeling.assist
    assert assist.checkpoint.currentIndex() == -1
    assert assist.checkpoint.placeholderText().startswith("none yet")
    assert not assist.predict_image.isEnabled()


def test_the_class_threshold_table_shows_every_row_uncut(window):
    table = window.labeling.assist.class_table
    assert table.rowCount() == len(CLASSES)
    last = table.visualRect(table.model().index(table.rowCount() - 1, 0))
    assert last.isValid() and last.bottom() < table.viewport().height()
    assert not table.verticalScrollBar().isVisible()


def test_accept_all_says_what_it_accepts_and_is_off_with_none_shown(qtbot, model_run, window):
    view = window.labeling
    assist = view.assist
    _predict_current(qtbot, view)
    total = len(view.editor.suggestions)
    qtbot.mouseClick(assist.slider, Qt.MouseButton.LeftButton)  # focus; then keys move it
    assist.slider.setValue(100)  # every suggestion scores below 1.0: none shown
    assert view.canvas._suggestions == ()
    assert not assist.accept_all.isEnabled() and not assist.accept_shown.isEnabled()
    scores = sorted(s.score for s in view.editor.suggestions)
    assist.slider.setValue(int(scores[-1] * 100))  # only the best ones shown
    shown = len(assist.shown())
    assert assist.accept_all.isEnabled()
    assert assist.accept_shown.text() == f"Accept shown ({shown})"
    assert assist.accept_all.text() == f"Accept all ({total})"
    if shown < total:
        assert f"the {total - shown} hidden by the threshold too" in assist.accept_all.toolTip()
    assist.accept_all.click()
    assert not view.editor.suggestions
