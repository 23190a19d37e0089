"""Hit testing, handles and drags on the canvas, as pure functions (no Qt)."""

from __future__ import annotations

import pytest

from app.labeling.geometry import (
    MIN_BOX_SIZE,
    Handle,
    handle_at,
    hit_test,
    moved,
    pasted,
    rect_from_drag,
    resized,
)

IMAGE = (100.0, 80.0)  # width, height


def test_handles_sit_on_corners_and_side_middles():
    box = (10.0, 20.0, 50.0, 60.0)
    assert handle_at(box, 10, 20, tolerance=3) is Handle.NW
    assert handle_at(box, 51, 41, tolerance=3) is Handle.E  # middle of the right side is y 40
    assert handle_at(box, 30, 58, tolerance=3) is Handle.S
    assert handle_at(box, 30, 40, tolerance=3) is Handle.MOVE
    assert handle_at(box, 70, 40, tolerance=3) is None


def test_the_smallest_box_under_the_point_wins_so_nested_boxes_stay_reachable():
    big, small = (0.0, 0.0, 90.0, 70.0), (40.0, 30.0, 50.0, 40.0)
    assert hit_test([small, big], 45, 35, tolerance=2) == (0, Handle.MOVE)
    assert hit_test([big, small], 45, 35, tolerance=2) == (1, Handle.MOVE)
    assert hit_test([big, small], 10, 10, tolerance=2) == (0, Handle.MOVE)
    assert hit_test([big, small], 95, 75, tolerance=2) is None


def test_the_selected_boxs_handles_win_over_a_smaller_box():
    big, small = (0.0, 0.0, 90.0, 70.0), (86.0, 66.0, 96.0, 76.0)
    # The big box's SE corner (90, 70) lies inside the small box: selected, it is grabbable.
    assert hit_test([big, small], 90, 70, tolerance=2, selected=0) == (0, Handle.SE)
    assert hit_test([big, small], 90, 70, tolerance=2) == (1, Handle.MOVE)


def test_drawing_a_box_by_dragging_any_direction_stays_inside_the_image():
    assert rect_from_drag((30, 40), (10, 5), IMAGE) == (10, 5, 30, 40)
    assert rect_from_drag((90, 70), (130, -20), IMAGE) == (90, 0, 100, 70)
    assert rect_from_drag((10, 10), (11, 30), IMAGE) is None  # 1 px wide: a slipped click


def test_moving_keeps_the_size_and_stops_at_the_edges():
    box = (10.0, 10.0, 30.0, 20.0)
    assert moved(box, 5, -3, IMAGE) == (15, 7, 35, 17)
    assert moved(box, -50, 0, IMAGE) == (0, 10, 20, 20)
    assert moved(box, 500, 500, IMAGE) == (80, 70, 100, 80)


def test_resizing_moves_only_the_grabbed_edges_and_flips_across():
    box = (10.0, 10.0, 30.0, 20.0)
    assert resized(box, Handle.SE, 40, 50, IMAGE) == (10, 10, 40, 50)
    assert resized(box, Handle.N, 0, 5, IMAGE) == (10, 5, 30, 20)
    assert resized(box, Handle.E, 200, 15, IMAGE) == (10, 10, 100, 20)  # clamped to the image
    # Dragging the left edge past the right one flips the box instead of inverting it.
    assert resized(box, Handle.W, 35, 15, IMAGE) == (30, 10, 35, 20)
    narrow = resized(box, Handle.W, 30, 15, IMAGE)
    assert narrow[2] - narrow[0] == pytest.approx(MIN_BOX_SIZE)
    with pytest.raises(ValueError):
        resized(box, Handle.MOVE, 0, 0, IMAGE)


def test_a_box_pasted_into_a_smaller_image_is_cut_to_it_or_dropped():
    assert pasted((90.0, 70.0, 150.0, 120.0), IMAGE) == (90, 70, 100, 80)
    assert pasted((120.0, 10.0, 150.0, 30.0), IMAGE) is None
