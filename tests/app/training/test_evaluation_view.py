"""The evaluation view: per-class table, images filtered by their errors, errors drawn over the
image; the model run off the GUI thread.

The first image holds the error analysis' golden example (see
tests/engine/training/test_error_analysis.py) scaled by 4 and moved 40 px down, so the tags fit
above the boxes: one box found, a duplicate, a wrong class, a low-IoU box, a background box,
and two missed boxes (B, a square; C, a circle). The second image is found perfectly.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.training.evaluation_view import EvaluationView, overlay_boxes
from engine.data.demo import write_demo_project
from engine.detector.checkpoint import ClassInfo
from engine.training.error_analysis import ErrorAnalysis, ImageErrors
from engine.training.evaluation import STAT_NAMES, EvalResult

CLASSES = [ClassInfo(1, "circle", 1), ClassInfo(2, "square", 2)]
OFFSET = torch.tensor([0, 40, 0, 40])


def _boxes(rows):
    return torch.tensor(rows, dtype=torch.float) * 4 + OFFSET


@pytest.fixture
def analysis(tmp_path):
    paths = []
    for name in ("golden.png", "perfect.png"):
        Image.new("RGB", (400, 160), (200, 200, 200)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    golden = ImageErrors(
        1, paths[0], gt_boxes=_boxes([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]),
        gt_labels=torch.tensor([1, 2, 1]), gt_difficult=torch.zeros(3, dtype=torch.bool),
        det_boxes=_boxes([[0, 0, 10, 10], [0, 0, 10, 11], [20, 0, 30, 10], [40, 0, 50, 25],
                          [70, 0, 80, 10], [20, 0, 30, 10]]),
        det_labels=torch.tensor([1, 1, 1, 1, 2, 2]),
        det_scores=torch.tensor([0.9, 0.8, 0.7, 0.6, 0.55, 0.3]))
    perfect = ImageErrors(
        2, paths[1], gt_boxes=_boxes([[5, 5, 20, 20]]), gt_labels=torch.tensor([2]),
        gt_difficult=torch.zeros(1, dtype=torch.bool), det_boxes=_boxes([[5, 5, 20, 20]]),
        det_labels=torch.tensor([2]), det_scores=torch.tensor([0.95]))
    evaluation = EvalResult({**dict.fromkeys(STAT_NAMES, 0.0), "AP": 0.4, "AP50": 0.6},
                            {"circle": 0.3, "square": 0.5}, {"circle": 0.5, "square": 0.7})
    result = ErrorAnalysis(CLASSES, [golden, perfect], evaluation)
    result.rematch(0.5, 0.5)
    return result


@pytest.fixture
def view(qtbot, tmp_path):
    view = EvaluationView(tmp_path)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    yield view
    view.shutdown()


def _row(view, row):
    return [view.table.item(row, c).text() for c in range(view.table.columnCount())]


def test_the_table_counts_per_class(view, analysis):
    view.show_analysis(analysis)
    assert _row(view, 0) == ["circle", "0.300", "0.500", "2", "1", "3", "1"]
    # The second image's square is found.
    assert _row(view, 1) == ["square", "0.500", "0.700", "2", "1", "1", "1"]
    assert _row(view, 2) == ["all classes", "0.400", "0.600", "4", "2", "4", "2"]


def test_the_filter_lists_the_images_with_that_kind_of_error(view, analysis, qtbot):
    view.show_analysis(analysis)
    listed = lambda: [view.images.item(i).text() for i in range(view.images.count())]  # noqa: E731
    assert listed() == ["golden.png  4 FP, 2 missed", "perfect.png  ✓"]
    view.filter.setFocus()
    qtbot.keyClick(view.filter, Qt.Key.Key_Down)
    assert view.filter_kind() == "errors" and listed() == ["golden.png  4 FP, 2 missed"]
    qtbot.keyClick(view.filter, Qt.Key.Key_Down)
    assert view.filter_kind() == "false positives" and len(listed()) == 1
    qtbot.keyClick(view.filter, Qt.Key.Key_Down)
    assert view.filter_kind() == "missed" and len(listed()) == 1


def test_errors_are_tagged_with_their_reason_and_drawn(view, analysis, qtbot):
    names = {1: "circle", 2: "square"}
    golden = analysis.images[0]
    assert [b.text for b in overlay_boxes(golden, "errors", names)] == [
        "circle 0.80: duplicate", "circle 0.70: wrong class (is square)",
        "circle 0.60: low IoU 0.40", "square 0.55: background", "missed: square",
        "missed: circle"]
    assert [b.kind for b in overlay_boxes(golden, "missed", names)] == ["missed", "missed"]
    assert overlay_boxes(golden, "all", names)[0].text == "circle 0.90"
    view.set_filter("false positives")
    view.show_analysis(analysis)
    qtbot.waitUntil(lambda: view._image is not None)
    shown = view.picture.pixmap()
    assert not shown.isNull() and shown.width() > 400  # drawn at the picture's size
    scale = view._image.width() / 400

    def colours_near(x, y):
        return {QColor(view._image.pixel(round(x * scale) + dx, round(y * scale) + dy)).name()
                for dx in (-1, 0, 1) for dy in (-1, 0, 1)}

    # The background false positive (280, 40)-(320, 80): its bottom edge is drawn in red.
    assert "#e03131" in colours_near(300, 80)
    # No missed box is drawn under this filter: C's bottom edge (160..200, 80) stays grey.
    assert colours_near(180, 80) == {"#c8c8c8"}


def test_a_lower_score_threshold_matches_again_without_the_model(view, analysis, qtbot):
    view.show_analysis(analysis)
    view.score.setFocus()
    view.score.selectAll()
    qtbot.keyClicks(view.score, "0.25")
    qtbot.keyClick(view.score, Qt.Key.Key_Enter)
    assert analysis.score_threshold == pytest.approx(0.25)
    assert _row(view, 1) == ["square", "0.500", "0.700", "2", "2", "1", "0"]


def test_evaluating_a_checkpoint_runs_off_the_gui_thread(qtbot, tmp_path):
    from engine.detector.build import build_model
    from engine.detector.checkpoint import save_detector

    project = write_demo_project(tmp_path / "demo", count=4)
    model = build_model("efficientnet_lite0", num_classes=5, weights="none", min_size=160,
                        max_size=224, representation_size=64)
    classes = [ClassInfo(i + 1, name, i + 1)
               for i, name in enumerate(("circle", "square", "triangle", "cross"))]
    checkpoint = save_detector(tmp_path / "best.pt", model, classes)
    view = EvaluationView(project)
    qtbot.addWidget(view)
    try:
        view.set_checkpoint(checkpoint, "run/best.pt")
        assert "press Evaluate" in view.title.text()
        with qtbot.waitSignal(view.analysis_ready, timeout=120_000):
            qtbot.mouseClick(view.evaluate_button, Qt.MouseButton.LeftButton)
        assert view.table.rowCount() == 5
        assert view.images.count() == 1  # the demo's one val image
        assert "on 1 val images: AP" in view.title.text()
    finally:
        view.shutdown()
