"""Labeling in the main window, driven by real mouse and keyboard events: draw, select, move,
resize, nudge, delete, undo and redo, class changes, navigation, autosave."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from engine.data.project import Project

from .conftest import wait_for_full_image

AUTOSAVE_WAIT_MS = 1000  # the promise: every edit in the store within 1 s


def _point(canvas, x, y) -> QPoint:
    return canvas.image_to_widget(x, y).toPoint()


def _drag(qtbot, canvas, start, end, button=Qt.MouseButton.LeftButton) -> None:
    qtbot.mousePress(canvas, button, pos=_point(canvas, *start))
    for fraction in (0.25, 0.5, 0.75, 1.0):
        x = start[0] + (end[0] - start[0]) * fraction
        y = start[1] + (end[1] - start[1]) * fraction
        qtbot.mouseMove(canvas, _point(canvas, x, y))
    qtbot.mouseRelease(canvas, button, pos=_point(canvas, *end))


def _stored(window):
    """The current image's boxes as the store has them, read through a second connection."""
    image_id = window.labeling.editor.image_id
    with Project.open(window.project.folder) as other:
        return [(b.x0, b.y0, b.x1, b.y1, b.category_id) for b in other.boxes(image_id)]


def _rects(window):
    return [(b.x0, b.y0, b.x1, b.y1) for b in window.labeling.editor.boxes]


def _clear_boxes(qtbot, window):
    """Delete every box of the current image through the keyboard (select, Del)."""
    canvas = window.labeling.canvas
    while window.labeling.editor.boxes:
        canvas.select(0)
        qtbot.keyClick(canvas, Qt.Key.Key_Delete)


def test_draw_a_box_by_dragging_and_it_is_saved_within_a_second(qtbot, window):
    view = window.labeling
    canvas = view.canvas
    _clear_boxes(qtbot, window)
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_W)
    assert canvas.mode == "draw"
    qtbot.keyClick(canvas, Qt.Key.Key_2)  # class 2 (square) for new boxes
    _drag(qtbot, canvas, (40, 30), (120, 90))
    # Edges snap to pixel edges: exact integers, as a user placing them means.
    assert _rects(window) == [(40, 30, 120, 90)]
    assert view.editor.boxes[0].category_id == 2
    assert view.editor.boxes[0].source == "manual"
    qtbot.waitUntil(lambda: len(_stored(window)) == 1, timeout=AUTOSAVE_WAIT_MS)
    assert window.statusBar().findChild(type(view.count_label)) is not None
    assert view.count_label.text() == "1 box"


def test_drawing_outside_the_image_keeps_the_box_inside(qtbot, window):
    canvas = window.labeling.canvas
    _clear_boxes(qtbot, window)
    canvas.set_mode("draw")
    width, height = canvas.image_size
    _drag(qtbot, canvas, (width - 30, height - 30), (width + 40, height + 40))
    assert _rects(window)[0] == (width - 30, height - 30, width, height)


def test_select_move_resize_then_undo_and_redo_with_the_keyboard(qtbot, window):
    view = window.labeling
    canvas = view.canvas
    _clear_boxes(qtbot, window)
    canvas.set_mode("draw")
    _drag(qtbot, canvas, (40, 40), (100, 100))
    qtbot.keyClick(canvas, Qt.Key.Key_V)
    assert canvas.mode == "select"
    # Move: drag from inside the box.
    _drag(qtbot, canvas, (70, 70), (90, 60))
    x0, y0, x1, y1 = _rects(window)[0]
    assert (x0, y0, x1, y1) == (60, 30, 120, 90)
    # Resize: drag the bottom-right handle.
    _drag(qtbot, canvas, (x1, y1), (x1 + 30, y1 + 20))
    resized = _rects(window)[0]
    assert resized == (60, 30, 150, 110)

    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _rects(window)[0] == (x0, y0, x1, y1)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _rects(window)[0] == (40, 40, 100, 100)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    assert _rects(window)[0] == (x0, y0, x1, y1)
    qtbot.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert _rects(window)[0] == resized
    qtbot.waitUntil(lambda: [s[:4] for s in _stored(window)] == [resized],
                    timeout=AUTOSAVE_WAIT_MS)


def test_nudge_delete_duplicate_and_change_class_from_the_keyboard(qtbot, window):
    view = window.labeling
    canvas = view.canvas
    _clear_boxes(qtbot, window)
    canvas.set_mode("draw")
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    _drag(qtbot, canvas, (40, 40), (80, 80))
    canvas.set_mode("select")
    assert canvas.selected == 0
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    x0, y0, _, _ = _rects(window)[0]
    qtbot.keyClick(canvas, Qt.Key.Key_3)
    assert view.editor.boxes[0].category_id == 3
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    assert view.editor.boxes[0].difficult
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert len(view.editor.boxes) == 2 and canvas.selected == 1
    assert _rects(window)[1][:2] == (x0 + 10, y0 + 10)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert len(view.editor.boxes) == 1
    # The two nudges are one undo step: undo the delete, duplicate, difficult, class, nudges.
    for _ in range(5):
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _rects(window) == [(40, 40, 80, 80)] and view.editor.boxes[0].category_id == 1


def test_copy_boxes_and_paste_them_into_the_next_image(qtbot, window):
    view = window.labeling
    canvas = view.canvas
    first = view.editor.boxes
    canvas.select(None)
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    wait_for_full_image(qtbot, window)
    before = len(view.editor.boxes)
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    pasted = view.editor.boxes[before:]
    assert [(b.x0, b.y0, b.x1, b.y1, b.category_id) for b in pasted] == \
        [(b.x0, b.y0, b.x1, b.y1, b.category_id) for b in first]


def test_navigation_with_keys_and_undo_returns_to_the_edited_image(qtbot, window):
    view = window.labeling
    canvas = view.canvas
    ids = [image.id for image in window.project.images()]
    assert view.editor.image_id == ids[0]
    canvas.select(None)
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Right)  # no selection: next image
    assert view.editor.image_id == ids[1]
    canvas.select(0)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    assert view.editor.image_id == ids[3]
    assert view.image_list.current_image_id() == ids[3]
    qtbot.keyClick(canvas, Qt.Key.Key_A)
    assert view.editor.image_id == ids[2]
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.editor.image_id == ids[1]  # the undo shows the image it changed
    assert view.image_list.current_image_id() == ids[1]


def test_mark_done_and_next_unlabeled(qtbot, window):
    view = window.labeling
    ids = [image.id for image in window.project.images()]
    window.project.set_status(ids[2:], "unlabeled")
    view.image_list.refresh_images(ids)
    view.canvas.setFocus()
    qtbot.keyClick(view.canvas, Qt.Key.Key_U)
    assert view.editor.image_id == ids[2]
    qtbot.keyClick(view.canvas, Qt.Key.Key_Space)
    assert window.project.image(ids[2]).status == "done"
    qtbot.keyClick(view.canvas, Qt.Key.Key_U)
    assert view.editor.image_id == ids[3]


def test_zoom_and_pan_keep_the_point_under_the_cursor(qtbot, window):
    canvas = window.labeling.canvas
    anchor = _point(canvas, 100, 80)
    qtbot.mouseMove(canvas, anchor)
    before = canvas.zoom
    canvas.zoom_by(2.0, canvas.image_to_widget(100, 80))
    assert canvas.zoom == before * 2
    x, y = canvas.widget_to_image(anchor.toPointF())
    assert abs(x - 100) < 1 and abs(y - 80) < 1
    # Pan with the middle button: the image follows the mouse, 40 screen pixels right.
    x_before, _ = canvas.widget_to_image(anchor.toPointF())
    start = _point(canvas, 20, 20)
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(canvas, start + QPoint(20, 0))
    qtbot.mouseMove(canvas, start + QPoint(40, 0))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, pos=start + QPoint(40, 0))
    x, y = canvas.widget_to_image(anchor.toPointF())
    assert abs(x - (x_before - 40 / canvas.zoom)) < 1e-6 and abs(y - 80) < 1
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert window.labeling.zoom_label.text().endswith("%")
