"""The Label tab as a new user meets it, driven by real mouse events at image coordinates:
grabbing corners and handles, the image list's order, undo across added images, the
suggestions panel and the status bar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, Qt

from app.labeling import geometry
from app.labeling.canvas import GRAB_PX


def _drag_widget(qtbot, canvas, start: QPointF, end: QPointF) -> None:
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start.toPoint())
    for fraction in (0.25, 0.5, 0.75, 1.0):
        qtbot.mouseMove(canvas, (start + (end - start) * fraction).toPoint())
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end.toPoint())


def _draw(qtbot, canvas, box) -> None:
    canvas.set_mode("draw")
    _drag_widget(qtbot, canvas, canvas.image_to_widget(*box[:2]),
                 canvas.image_to_widget(*box[2:]))
    canvas.set_mode("select")


def _rects(window):
    return [(b.x0, b.y0, b.x1, b.y1) for b in window.labeling.editor.boxes]


def _clear_boxes(qtbot, window):
    canvas = window.labeling.canvas
    while window.labeling.editor.boxes:
        canvas.select(0)
        qtbot.keyClick(canvas, Qt.Key.Key_Delete)


def test_a_corner_grabs_within_a_screen_tolerance_at_any_zoom_even_unselected(qtbot, window):
    canvas = window.labeling.canvas
    _clear_boxes(qtbot, window)
    for zoom in (1.0, 2.5):
        canvas.set_zoom(zoom)
        canvas.pan_by(0, 0)
        _draw(qtbot, canvas, (40, 40, 100, 90))
        canvas.select(None)  # nothing selected: the corner drag alone must resize
        # Press 9 screen pixels off the bottom-right corner (outside the handle square), drag
        # 20 image pixels right and down.
        corner = canvas.image_to_widget(100, 90)
        off = QPointF(9, 9) * (1 if GRAB_PX >= 9 else 0)
        start = corner + off
        end = start + QPointF(20 * canvas.zoom, 20 * canvas.zoom)
        _drag_widget(qtbot, canvas, start, end)
        x0, y0, x1, y1 = _rects(window)[-1]
        assert (x0, y0) == (40, 40), "a corner drag must resize, not move"
        assert abs(x1 - (100 + 9 / canvas.zoom + 20)) <= 1
        assert abs(y1 - (90 + 9 / canvas.zoom + 20)) <= 1
        assert canvas.selected == len(_rects(window)) - 1
        _clear_boxes(qtbot, window)


def test_a_side_handle_of_the_selected_box_grabs_a_few_pixels_off_it(qtbot, window):
    canvas = window.labeling.canvas
    _clear_boxes(qtbot, window)
    canvas.set_zoom(2.0)
    _draw(qtbot, canvas, (40, 40, 100, 90))
    canvas.select(0)
    start = canvas.image_to_widget(100, 65) + QPointF(8, 3)  # off the right side's handle
    _drag_widget(qtbot, canvas, start, start + QPointF(20, 0))
    x0, y0, x1, y1 = _rects(window)[0]
    assert (x0, y0, y1) == (40, 40, 90)
    assert abs(x1 - (100 + 28 / 2.0)) <= 1


def test_the_inside_of_a_small_box_still_moves_it():
    # A 9 x 9 box at a zoom where the tolerance is 12 image pixels: its corners reach only
    # 3 pixels, so its centre is a move.
    box = (10.0, 10.0, 19.0, 19.0)
    assert geometry.hit_test([box], 14.5, 14.5, 12.0) == (0, geometry.Handle.MOVE)
    assert geometry.hit_test([box], 18.0, 18.0, 12.0) == (0, geometry.Handle.SE)


def test_the_nearest_corner_of_unselected_boxes_wins():
    boxes = [(0.0, 0.0, 50.0, 50.0), (52.0, 52.0, 90.0, 90.0)]
    assert geometry.corner_at(boxes, 50.5, 50.5, 6.0) == (0, geometry.Handle.SE)
    assert geometry.corner_at(boxes, 51.5, 51.5, 6.0) == (1, geometry.Handle.NW)
    assert geometry.corner_at(boxes, 25.0, 25.0, 6.0) is None


def _write_png(path, size=(24, 16)) -> None:
    from PIL import Image

    Image.new("RGB", size, (90, 120, 150)).save(path)


def test_adding_images_lists_them_in_natural_order_and_keeps_undo(qtbot, window, tmp_path,
                                                                  monkeypatch):
    from app import file_dialogs

    canvas = window.labeling.canvas
    _clear_boxes(qtbot, window)
    _draw(qtbot, canvas, (10, 10, 50, 40))
    assert window.labeling.editor.can_undo
    folder = tmp_path / "new"
    folder.mkdir()
    names = ["raccoon-10.png", "raccoon-2.png", "raccoon-1.png", "raccoon-100.png"]
    for name in names:
        _write_png(folder / name)
    monkeypatch.setattr(file_dialogs, "get_open_file_names",
                        lambda *args, **kwargs: ([str(folder / n) for n in names], ""))
    window.ask_add_images()
    model = window.labeling.image_list.model
    qtbot.waitUntil(lambda: model.total == 4 + len(names), timeout=10000)
    shown = [model.image_row(model.image_id(r)).path for r in range(model.rowCount())]
    added = [Path(p).name for p in shown if "raccoon" in p]
    assert added == ["raccoon-1.png", "raccoon-2.png", "raccoon-10.png", "raccoon-100.png"]
    assert window.labeling.editor.can_undo, "adding images must keep the undo history"
    assert "Added 4 images" in window.statusBar().currentMessage()
    window.labeling.actions["undo"].trigger()  # Edit > Undo: the box drawn before is gone
    assert _rects(window) == []


def test_folders_list_their_images_in_natural_order(tmp_path):
    from engine.data.project import image_files

    for name in ("b-10.png", "b-9.png", "a-1.png"):
        _write_png(tmp_path / name)
    assert [p.name for p in image_files([tmp_path])] == ["a-1.png", "b-9.png", "b-10.png"]


def test_the_image_info_and_labeling_tools_show_only_on_the_label_tab(qtbot, window):
    view = window.labeling
    assert view.size_label.isVisible() and view.count_label.isVisible()
    for index in (1, 2):  # Train, Inspect
        window.tabs.setCurrentIndex(index)
        qtbot.waitUntil(lambda: not view.size_label.isVisible())
        assert not any(widget.isVisible() for widget in view.status_widgets)
        assert not window.toolbar.isVisible()
    window.tabs.setCurrentIndex(0)
    qtbot.waitUntil(lambda: view.size_label.isVisible())
    assert view.count_label.isVisible() and window.toolbar.isVisible()
