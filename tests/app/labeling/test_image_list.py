"""The image list panel: filters, next/previous and next-unlabeled, thumbnails loaded off the
GUI thread, missing files, clicks, and badges that follow status changes."""

from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

import app.labeling.thumbnails as thumbnails
from app.labeling.image_list import (
    PROBLEM_COLOR,
    PROBLEM_FILTER,
    PROBLEM_ROLE,
    STATUS_COLORS,
    ImageListPanel,
    next_matching,
    step_position,
)
from app.labeling.thumbnails import ThumbnailLoader
from engine.data.annotations import BoxRecord
from engine.data.demo import write_demo_project
from engine.data.project import Project

COUNT = 8


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("template") / "demo", count=COUNT)


@pytest.fixture
def project(demo_template, tmp_path):
    """8 demo images (ids 1-8), statuses and splits set so each filter has a known answer:

    id      1          2          3          4            5        6    7     8
    status  unlabeled  unlabeled  unlabeled  in_progress  skipped  done done  done
    split   train      train      train      train        val      val  test  none
    boxes of class "cross" (id 4) on images 2 and 6 only.
    """
    folder = shutil.copytree(demo_template, tmp_path / "demo")
    with Project.open(folder) as opened:
        ids = [row.id for row in opened.images()]
        assert ids == list(range(1, COUNT + 1))
        with opened.transaction():
            opened.set_status([1, 2, 3], "unlabeled")
            opened.set_status([4], "in_progress")
            opened.set_status([5], "skipped")
            opened.set_split([1, 2, 3, 4], "train")
            opened.set_split([5, 6], "val")
            opened.set_split([7], "test")
            opened.set_split([8], None)
            for image_id in ids:
                boxes = [box.to_record() for box in opened.boxes(image_id)
                         if box.category_id != 4]
                if image_id in (2, 6):
                    boxes.append(BoxRecord(10, 10, 40, 40, 4, source="manual"))
                opened.set_boxes(image_id, boxes, base=opened.boxes(image_id))
        yield opened


@pytest.fixture
def panel(qtbot, project):
    widget = ImageListPanel()
    qtbot.addWidget(widget)
    widget.set_project(project)
    widget.resize(340, 900)
    yield widget
    widget.shutdown()


def _choose(qtbot, combo, data) -> None:
    """Pick the item holding ``data`` with the keyboard, as a user would."""
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Home)
    for _ in range(combo.count()):
        if combo.currentData() == data:
            return
        qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentData() == data


def _shown(panel) -> list[int]:
    return panel.model.shown_ids()


# --- filters -------------------------------------------------------------------------------


def test_each_filter_alone_and_combined(qtbot, panel):
    assert _shown(panel) == list(range(1, 9))
    assert panel.count_label.text() == "8 of 8 images"
    _choose(qtbot, panel.status_filter, "unlabeled")
    assert _shown(panel) == [1, 2, 3]
    assert panel.count_label.text() == "3 of 8 images"
    _choose(qtbot, panel.status_filter, "skipped")
    assert _shown(panel) == [5]
    _choose(qtbot, panel.status_filter, None)
    _choose(qtbot, panel.class_filter, 4)
    assert panel.class_filter.currentText() == "cross"
    assert _shown(panel) == [2, 6]
    _choose(qtbot, panel.class_filter, None)
    _choose(qtbot, panel.split_filter, "val")
    assert _shown(panel) == [5, 6]
    _choose(qtbot, panel.split_filter, "none")
    assert _shown(panel) == [8]
    _choose(qtbot, panel.split_filter, None)
    qtbot.keyClicks(panel.search, "DEMO_00")  # case-insensitive part of the path
    assert _shown(panel) == list(range(1, 9))
    qtbot.keyClicks(panel.search, "5")
    assert _shown(panel) == [6]  # demo_005.png
    panel.search.clear()
    # Combined: train and unlabeled and a cross box -> image 2 only; then no match at all.
    _choose(qtbot, panel.status_filter, "unlabeled")
    _choose(qtbot, panel.split_filter, "train")
    _choose(qtbot, panel.class_filter, 4)
    assert _shown(panel) == [2]
    assert panel.count_label.text() == "1 of 8 images"
    qtbot.keyClicks(panel.search, "demo_003")
    assert _shown(panel) == []
    assert panel.count_label.text() == "0 of 8 images"
    assert panel.neighbour_id(1) is None and panel.next_unlabeled_id() is None


def test_missing_files_filter_and_mark(qtbot, panel, project):
    (project.folder / "images" / "demo_002.png").unlink()  # image 3
    project.check_missing()
    panel.refresh_images([3])
    _choose(qtbot, panel.status_filter, PROBLEM_FILTER)
    assert _shown(panel) == [3]
    assert panel.model.index(0, 0).data(PROBLEM_ROLE) == "missing"
    image = panel.view.viewport().grab().toImage()
    rect = panel.view.visualRect(panel.model.index(0, 0))
    assert _pixels(image, rect, PROBLEM_COLOR) > 50  # the crossed-out frame and the badge


# --- navigation ----------------------------------------------------------------------------


def test_step_position_and_next_matching_by_hand():
    shown = [0, 2, 5, 7]  # rows 1, 3, 4, 6 filtered out
    assert step_position(shown, 2, 1) == 5 and step_position(shown, 2, -1) == 0
    assert step_position(shown, 7, 1) is None and step_position(shown, 0, -1) is None
    assert step_position(shown, 2, 2) == 7 and step_position(shown, 2, 3) is None
    # From a hidden current position: the first shown after it / before it.
    assert step_position(shown, 3, 1) == 5 and step_position(shown, 3, -1) == 2
    assert step_position(shown, 8, 1) is None and step_position(shown, 8, -1) == 7
    assert step_position(shown, None, 1) == 0 and step_position(shown, None, -1) == 7
    assert step_position([], None, 1) is None
    odd = {5, 7}.__contains__
    assert next_matching(shown, 5, odd) == 7
    assert next_matching(shown, 7, odd) == 5  # wraps round
    assert next_matching(shown, 3, odd) == 5  # from a hidden position
    assert next_matching(shown, 5, {5}.__contains__) is None  # never the current itself
    assert next_matching(shown, None, odd) == 5


def test_neighbours_at_the_ends_and_with_filters(qtbot, panel):
    assert panel.current_image_id() is None
    assert panel.neighbour_id(1) == 1 and panel.neighbour_id(-1) == 8
    panel.select_image(1)
    assert panel.neighbour_id(-1) is None and panel.neighbour_id(1) == 2
    panel.select_image(8)
    assert panel.neighbour_id(1) is None and panel.neighbour_id(-1) == 7
    # With a filter, steps go through the shown rows only.
    _choose(qtbot, panel.split_filter, "val")
    panel.select_image(5)
    assert panel.neighbour_id(1) == 6 and panel.neighbour_id(-1) is None
    # The current image filtered out: +1 is the first shown image after it.
    panel.select_image(2)
    assert panel.current_image_id() == 2 and not panel.view.selectionModel().hasSelection()
    assert panel.neighbour_id(1) == 5 and panel.neighbour_id(-1) is None


def test_next_unlabeled_wraps_skips_missing_and_follows_filters(qtbot, panel, project):
    panel.select_image(2)
    assert panel.next_unlabeled_id() == 3
    panel.select_image(3)
    assert panel.next_unlabeled_id() == 1  # wrapped round
    panel.select_image(7)
    assert panel.next_unlabeled_id() == 1
    (project.folder / "images" / "demo_000.png").unlink()  # image 1
    project.check_missing()
    panel.refresh_images([1])
    assert panel.next_unlabeled_id() == 2  # a missing file cannot be labeled
    _choose(qtbot, panel.class_filter, 4)  # images 2 and 6
    panel.select_image(2)
    assert panel.next_unlabeled_id() is None  # no other unlabeled image with a cross


# --- selection -----------------------------------------------------------------------------


def test_clicks_and_keys_in_the_list_emit_the_image_id(qtbot, panel):
    panel.show()
    _choose(qtbot, panel.status_filter, "unlabeled")
    index = panel.model.index(1, 0)  # image 2
    with qtbot.waitSignal(panel.image_selected, timeout=2000) as clicked:
        qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton,
                         pos=panel.view.visualRect(index).center())
    assert clicked.args == [2]
    assert panel.current_image_id() == 2
    with qtbot.waitSignal(panel.image_selected, timeout=2000) as moved:
        qtbot.keyClick(panel.view, Qt.Key.Key_Down)
    assert moved.args == [3]
    # Letters do not jump to names (D and A belong to the window); select_image is silent.
    with qtbot.assertNotEmitted(panel.image_selected):
        qtbot.keyClick(panel.view, Qt.Key.Key_D)
        panel.select_image(1)
    assert panel.view.currentIndex().row() == 0


def test_a_filter_hiding_the_current_image_clears_the_highlight_and_restores_it(qtbot, panel):
    panel.select_image(4)
    assert panel.view.currentIndex().row() == 3
    with qtbot.assertNotEmitted(panel.image_selected):
        qtbot.keyClicks(panel.search, "demo_007")
    assert _shown(panel) == [8] and panel.current_image_id() == 4
    assert not panel.view.selectionModel().hasSelection()
    assert panel.neighbour_id(1) == 8
    panel.search.clear()
    assert panel.view.currentIndex().row() == 3
    assert panel.view.selectionModel().isSelected(panel.model.index(3, 0))


# --- refresh -------------------------------------------------------------------------------


def _pixels(image, rect, color: str) -> int:
    """Pixels of exactly ``color`` inside ``rect`` of ``image`` (device-independent px)."""
    target = QColor(color).rgb()
    return sum(image.pixel(x, y) == target
               for y in range(rect.top(), rect.bottom() + 1)
               for x in range(rect.left(), rect.right() + 1))


def test_refresh_after_a_status_change_moves_the_badge_and_the_filters(qtbot, panel, project):
    panel.show()
    row_rect = panel.view.visualRect(panel.model.index(1, 0))  # image 2, unlabeled
    before = panel.view.viewport().grab().toImage()
    assert _pixels(before, row_rect, STATUS_COLORS["unlabeled"]) > 50
    assert _pixels(before, row_rect, STATUS_COLORS["done"]) == 0
    project.set_status([2], "done")
    panel.refresh_images([2])
    after = panel.view.viewport().grab().toImage()
    assert _pixels(after, row_rect, STATUS_COLORS["unlabeled"]) == 0
    assert _pixels(after, row_rect, STATUS_COLORS["done"]) > 50
    # Under an "unlabeled" filter the image leaves the list; the current image stays current.
    _choose(qtbot, panel.status_filter, "unlabeled")
    panel.select_image(3)
    project.set_status([3], "done")
    panel.refresh_images([3])
    assert _shown(panel) == [1] and panel.count_label.text() == "1 of 8 images"
    assert panel.current_image_id() == 3 and panel.next_unlabeled_id() == 1
    # A refresh of everything (after an import) sees new images and new classes.
    project.add_category("star")
    new = project.insert_image(project.folder / "images" / "demo_000.png.copy", width=8,
                               height=8, hash=None, status="unlabeled")
    panel.refresh_images()
    assert _shown(panel) == [1, new] and panel.class_filter.findText("star") > 0
    assert panel.current_image_id() == 3


# --- thumbnails ----------------------------------------------------------------------------


def test_thumbnails_load_off_the_gui_thread_and_problems_show(qtbot, panel, project,
                                                              monkeypatch):
    threads, paths = set(), []
    real = thumbnails.load_thumbnail

    def recording(path, side):
        threads.add(threading.current_thread())
        paths.append(path.name)
        return real(path, side)

    monkeypatch.setattr(thumbnails, "load_thumbnail", recording)
    images = project.folder / "images"
    (images / "demo_003.png").unlink()  # image 4: gone, and the store flags it
    project.check_missing()
    (images / "demo_001.png").unlink()  # image 2: gone since; the store does not know
    (images / "demo_002.png").write_bytes(b"not a png")  # image 3: unreadable
    panel.refresh_images([4])
    panel.show()
    loader = panel.loader
    qtbot.waitUntil(lambda: all(loader.get(i) is not None for i in (1, 5, 6, 7, 8))
                    and loader.problem(2) == "missing" and loader.problem(3) == "unreadable",
                    timeout=10000)
    assert threads and threading.main_thread() not in threads
    assert "demo_003.png" not in paths  # flagged missing: never asked for
    assert loader.get(1).deviceIndependentSize().toSize().width() == 64  # 320x240 -> 64x48
    model = panel.model
    assert [model.index(r, 0).data(PROBLEM_ROLE) for r in range(4)] == [
        None, "missing", "unreadable", "missing"]
    image = panel.view.viewport().grab().toImage()
    for row in (1, 2, 3):
        assert _pixels(image, panel.view.visualRect(model.index(row, 0)), PROBLEM_COLOR) > 50


def test_loader_runs_newest_requests_first_drops_scrolled_out_and_bounds_memory(
        qtbot, tmp_path, monkeypatch):
    from PIL import Image

    for name in "abcdef":
        Image.new("RGB", (40, 40), (200, 0, 0)).save(tmp_path / f"{name}.png")
    started, release = [], threading.Event()
    real = thumbnails.load_thumbnail_image

    def gated(path, side):
        started.append(path.stem)
        if path.stem == "a":
            release.wait(5)
        return real(path, side)

    monkeypatch.setattr(thumbnails, "load_thumbnail_image", gated)
    # Room for two 32x32 RGB thumbnails (4 bytes a pixel in a pixmap).
    loader = ThumbnailLoader(32, cache_bytes=2 * 32 * 32 * 4)
    for key, name in enumerate("abcdef", start=1):
        loader.request(key, tmp_path / f"{name}.png")
    # a runs (held), b is next in the worker's queue; c-f wait, newest first; d scrolls away.
    loader.keep_only({1, 2, 3, 5, 6})
    release.set()
    qtbot.waitUntil(lambda: loader.waiting == 0 and len(started) == 5, timeout=5000)
    qtbot.waitUntil(lambda: loader.get(3) is not None, timeout=5000)
    assert started == ["a", "b", "f", "e", "c"]
    assert loader.cached_bytes <= 2 * 32 * 32 * 4
    assert loader.get(1) is None and loader.get(2) is None  # evicted, least recently used
    loader.shutdown()
