"""The review queue on the Label tab: a review run off the GUI thread with progress, cancel,
choosing an entry (its image shown, the box selected, the proposal drawn), Y to accept the
model's correction and N to keep the label, and Ctrl+Z undoing an accepted correction."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from engine.active.review import BADLOC, MISSING, SWAP, ReviewEntry, ReviewQueue
from engine.data.demo import CLASSES

from ..conftest import random_run_checkpoint, wait_for_full_image


def _entry(kind, row, box_index, box, category_id, proposal, proposal_category_id):
    return ReviewEntry(kind, 0.1, row.id, str(row.file), box_index, box, category_id, proposal,
                       proposal_category_id, 0.97, 0.2, True)


@pytest.fixture
def queue(window):
    """By hand, on the demo's first two images: their first box badly placed (the proposal 5 px
    to the right), then a missing box, then a swapped class."""
    project = window.project
    first, second = project.images()[:2]
    a = project.boxes(first.id)[0]
    b = project.boxes(second.id)[0]
    other = 1 + b.category_id % len(CLASSES)
    box_a, box_b = (a.x0, a.y0, a.x1, a.y1), (b.x0, b.y0, b.x1, b.y1)
    moved = (a.x0 + 5, a.y0, a.x1 + 5, a.y1)
    return ReviewQueue(
        entries=[_entry(BADLOC, first, 0, box_a, a.category_id, moved, a.category_id),
                 _entry(MISSING, second, None, None, None, (1.0, 2.0, 30.0, 40.0), 1),
                 _entry(SWAP, second, 0, box_b, b.category_id, box_b, other)],
        image_scores={first.id: 0.2, second.id: 0.2}, flagged=[first.id, second.id],
        source="by hand")


def test_choosing_accepting_keeping_and_undoing(qtbot, window, queue):
    view = window.labeling
    review = view.review
    review.show_queue(queue)
    first, missing, swap = queue.entries
    # The first entry is chosen: its image shown, the label box selected, the proposal drawn.
    assert view.editor.image_id == first.image_id
    assert view.canvas.selected == 0
    mark = view.canvas.review_mark
    assert (mark.x0, mark.x1) == (first.proposal[0], first.proposal[2])
    before = view.editor.boxes
    qtbot.keyClick(view.canvas, Qt.Key.Key_Y)  # accept: the box moves to the proposal
    assert review.table.item(0, 3).text() == "accepted"
    # The next entry is chosen: a missing box on the second image, nothing selected; the
    # first image's moved box was saved on the way.
    box = window.project.boxes(first.image_id)[0]
    assert (box.x0, box.y0, box.x1, box.y1) == first.proposal
    assert review.table.currentRow() == 1
    assert view.editor.image_id == missing.image_id and view.canvas.selected is None
    count = len(view.editor.boxes)
    qtbot.keyClick(view.canvas, Qt.Key.Key_N)  # keep: nothing changes
    assert len(view.editor.boxes) == count
    assert review.table.item(1, 3).text() == "kept"
    assert review.table.currentRow() == 2
    qtbot.keyClick(view.canvas, Qt.Key.Key_Y)  # accept: the class changes
    assert view.editor.boxes[0].category_id == swap.proposal_category_id
    # Undo, as every edit: the class comes back, then (on the first image) the box's place.
    qtbot.keyClick(view.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.editor.boxes[0].category_id == swap.category_id
    qtbot.keyClick(view.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.editor.image_id == first.image_id and view.editor.boxes == before
    # Undone edits leave the decisions as made; accept again is refused on a decided row.
    review.table.selectRow(1)
    assert view.editor.image_id == missing.image_id
    boxes = view.editor.boxes
    review.accept_current()
    assert view.editor.boxes == boxes


def test_accepting_a_missing_box_adds_it_and_a_changed_box_is_not_overwritten(
        qtbot, window, queue):
    view = window.labeling
    review = view.review
    review.show_queue(queue)
    review.table.selectRow(1)
    count = len(view.editor.boxes)
    review.accept_current()
    added = view.editor.boxes[-1]
    assert len(view.editor.boxes) == count + 1
    assert (added.x0, added.y1, added.category_id, added.source) == (1.0, 40.0, 1, "predicted")
    # The swapped box edited since the review: its correction is not applied.
    review.table.selectRow(2)
    view._edit_selected("Nudge", x0=view.editor.boxes[0].x0 + 1)
    messages = []
    view.message.connect(messages.append)
    review.accept_current()
    assert view.editor.boxes[0].category_id == queue.entries[2].category_id
    assert any("changed since the review" in m for m in messages)


@pytest.fixture
def model_run(demo_folder):
    """A sharpened random checkpoint in a run folder that trained on train."""
    return random_run_checkpoint(demo_folder, min_size=128, max_size=160, sharpen=30,
                                 train_split="train")


def test_a_review_runs_off_the_gui_thread_and_lists_its_queue(qtbot, window, model_run):
    view = window.labeling
    window.project.set_split([row.id for row in window.project.images()], "val")
    view.assist.refresh_checkpoints()
    review = view.review
    assert review.run_button.isEnabled()
    seen = []
    shown = review._progressed
    review._progressed = lambda f, t: seen.append(t) or shown(f, t)
    review.run_button.click()
    assert review.running and review.cancel.isEnabled() and not review.run_button.isEnabled()
    qtbot.waitUntil(lambda: not review.running, timeout=120000)
    # The runner delivers the latest progress when the GUI thread gets to it (steps between
    # may be skipped), in order.
    predicting = [t for t in seen if t.startswith("predicting: image ")]
    assert predicting and predicting == sorted(predicting), seen
    assert not review.progress.isVisible()
    assert review.queue is not None and len(review.queue.image_scores) == 4
    assert review.table.rowCount() == len(review.queue.entries)
    assert "on the val split" in review.summary.text()
    wait_for_full_image(qtbot, window)


def test_a_review_can_be_cancelled(qtbot, window, model_run):
    view = window.labeling
    window.project.set_split([row.id for row in window.project.images()], "val")
    view.assist.refresh_checkpoints()
    review = view.review
    review.run_button.click()
    review.cancel.click()
    assert not review.running and review.run_button.isEnabled()
    qtbot.waitUntil(lambda: not review._runner.busy, timeout=120000)
    assert review.queue is None and review.table.rowCount() == 0
