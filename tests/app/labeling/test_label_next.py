"""'Sort by: most useful to label next' in the Label tab: the ranking runs off the GUI thread
with progress, orders the list (unlabeled images by rank, then the others as usual), shows each
score, and Cancel leaves the list as it was."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.labeling.image_list import LABEL_NEXT_ORDER, RANK_ROLE, USUAL_ORDER
from engine.data.demo import write_demo_project

from ..conftest import random_run_checkpoint


@pytest.fixture
def demo_folder(tmp_path):
    """3 labeled and 4 unlabeled demo images (the window fixture opens this one)."""
    return write_demo_project(tmp_path / "demo", count=3, unlabeled=4)


@pytest.fixture
def model_run(demo_folder):
    """A small random checkpoint in the project's runs folder, as training leaves it."""
    return random_run_checkpoint(demo_folder, min_size=128, max_size=160, sharpen=3)


def _choose(panel, order: str) -> None:
    index = panel.sort.findData(order)
    panel.sort.setCurrentIndex(index)
    panel.sort.activated.emit(index)


def _listed(panel) -> list[int]:
    return panel.model.shown_ids()


def test_label_next_orders_the_list_by_rank_with_scores(qtbot, model_run, window):
    view = window.labeling
    panel = view.image_list
    view.assist.refresh_checkpoints()
    usual = _listed(panel)
    unlabeled = {row.id for row in window.project.images(status="unlabeled")}
    progress = []
    view.ranker.progressed.connect(lambda fraction, text: progress.append(text))

    _choose(panel, LABEL_NEXT_ORDER)
    assert view.ranker.running
    assert panel.rank_progress.isVisibleTo(panel) and panel.rank_cancel.isVisibleTo(panel)
    qtbot.waitUntil(lambda: not view.ranker.running, timeout=60000)

    assert not panel.rank_progress.isVisibleTo(panel)
    assert progress and progress[-1] == "7 / 7 images"  # 4 unlabeled, then 3 labeled
    listed = _listed(panel)
    assert set(listed[:4]) == unlabeled
    assert listed[4:] == [i for i in usual if i not in unlabeled]  # the others as before
    ranks = [panel.model.index(row, 0).data(RANK_ROLE) for row in range(len(listed))]
    assert [r.rank for r in ranks[:4]] == [1, 2, 3, 4]
    assert ranks[4:] == [None, None, None]
    tooltip = panel.model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "Label next #1: score" in tooltip and "uncertainty" in tooltip
    assert panel.sort.currentData() == LABEL_NEXT_ORDER
    # D walks the ranked order.
    view.show_image(listed[0])
    view.step(1)
    assert view.editor.image_id == listed[1]

    _choose(panel, USUAL_ORDER)
    assert _listed(panel) == usual


def test_cancel_leaves_the_usual_order(qtbot, model_run, window):
    view = window.labeling
    panel = view.image_list
    view.assist.refresh_checkpoints()
    usual = _listed(panel)
    _choose(panel, LABEL_NEXT_ORDER)
    assert view.ranker.running
    panel.rank_cancel.click()
    assert not view.ranker.running
    assert not panel.rank_progress.isVisibleTo(panel)
    assert panel.sort.currentData() == USUAL_ORDER
    qtbot.waitUntil(lambda: not view.ranker.busy, timeout=60000)
    qtbot.wait(50)  # any late delivery would have arrived
    assert _listed(panel) == usual and not panel.model.ranked

    # Choosing the usual order while it runs stops it as well.
    _choose(panel, LABEL_NEXT_ORDER)
    assert view.ranker.running
    _choose(panel, USUAL_ORDER)
    assert not view.ranker.running and not panel.rank_progress.isVisibleTo(panel)
    qtbot.waitUntil(lambda: not view.ranker.busy, timeout=60000)
    qtbot.wait(50)
    assert _listed(panel) == usual and not panel.model.ranked


def test_without_a_model_the_list_says_what_to_do(qtbot, window):
    view = window.labeling
    panel = view.image_list
    messages = []
    view.message.connect(messages.append)
    _choose(panel, LABEL_NEXT_ORDER)
    assert not view.ranker.running
    assert panel.sort.currentData() == USUAL_ORDER
    assert "Choose a model" in messages[-1]


def test_a_ranked_row_says_its_place_and_score():
    from pathlib import Path

    from app.labeling.image_list import ranking_text, row_details
    from engine.active.ranking import RankedImage
    from engine.data.project import ImageRow

    row = ImageRow(7, "a.png", Path("/x/a.png"), 320, 240, None, "unlabeled", None, None, 0)
    ranked = RankedImage(rank=2, image_id=7, path="/x/a.png", score=0.4123, uncertainty=0.8,
                         diversity=0.5154, class_uncertainty=0.7, flip_disagreement=0.9,
                         detections=3)
    assert row_details(row) == "0 boxes · no split"
    assert row_details(row, ranked) == "#2 · score 0.41 · 0 boxes · no split"
    assert ranking_text(ranked) == ("Label next #2: score 0.412 = uncertainty 0.80 × diversity "
                                    "0.52 (class scores 0.70, flip disagreement 0.90; "
                                    "3 detections)")
