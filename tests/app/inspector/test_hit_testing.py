"""What did the user click: outlines first, then the smallest box around the point."""

from __future__ import annotations

import numpy as np

from app.inspector.hit_testing import border_distance, box_at, pick

BOXES = np.array([
    [0.0, 0.0, 100.0, 100.0],   # 0: large
    [20.0, 20.0, 40.0, 40.0],   # 1: small, inside 0
    [30.0, 30.0, 60.0, 60.0],   # 2: overlaps 1
])


def test_border_distance_golden_values():
    distance = border_distance(BOXES, 25.0, 35.0)
    # Inside 0: nearest edge x0 at 25; inside 1: x0 edge 5 away; outside 2: 5 px left of it.
    assert distance.tolist() == [25.0, 5.0, 5.0]
    assert border_distance(BOXES, 103.0, 104.0)[0] == 5.0  # 3-4-5 from the corner


def test_a_click_on_an_outline_picks_that_box_even_inside_a_larger_one():
    assert box_at(BOXES, 40.5, 25.0, tolerance=1.0) == 1   # on box 1's right edge
    assert box_at(BOXES, 50.0, 59.0, tolerance=2.0) == 2   # near box 2's bottom edge
    assert box_at(BOXES, 99.0, 50.0, tolerance=2.0) == 0   # box 0's right edge


def test_elsewhere_the_smallest_box_around_the_point_wins():
    assert box_at(BOXES, 35.0, 35.0, tolerance=1.0) == 1   # in 0, 1 and 2: 1 is smallest
    assert box_at(BOXES, 50.0, 50.0, tolerance=1.0) == 2
    assert box_at(BOXES, 80.0, 80.0, tolerance=1.0) == 0
    assert box_at(BOXES, 150.0, 80.0, tolerance=1.0) is None
    assert box_at(np.zeros((0, 4)), 1.0, 1.0) is None


def test_pick_prefers_any_outline_then_containment_in_group_order():
    targets = ("target", BOXES[:1], np.array([7]))
    anchors = ("anchor", BOXES[1:], np.array([100, 200]))
    # Inside the target, on an anchor's outline: the anchor.
    assert pick([targets, anchors], 40.0, 30.0, tolerance=1.0) == ("anchor", 100)
    # Inside the target and inside anchor 200, on no outline: the first group, the target.
    assert pick([targets, anchors], 50.0, 50.0, tolerance=1.0) == ("target", 7)
    assert pick([targets, anchors], 500.0, 500.0) is None
