"""Golden values for anchors, checkable by hand.

An anchor of size s and ratio r = h / w has w = s / sqrt(r), h = s * sqrt(r), centred on (0, 0),
so its corners are (-w/2, -h/2, w/2, h/2) rounded to whole pixels.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from engine.detector.anchors import AnchorSpec, anchors_for_features, cell_anchors, grid_anchors
from engine.detector.rpn import flatten_levels

# sqrt(0.5) = 0.70711, 1 / sqrt(0.5) = 1.41421.
# size 32, ratio 0.5: w = 32 * 1.41421 = 45.25 -> half 22.63 -> 23; h = 22.63 -> half 11.31 -> 11
# size 32, ratio 1.0: w = h = 32 -> half 16
# size 32, ratio 2.0: w = 22.63 -> 11; h = 45.25 -> 23
CELL_32 = torch.tensor(
    [
        [-23.0, -11.0, 23.0, 11.0],
        [-16.0, -16.0, 16.0, 16.0],
        [-11.0, -23.0, 11.0, 23.0],
    ]
)


def test_cell_anchors_one_size_three_ratios():
    assert_close(cell_anchors((32,), (0.5, 1.0, 2.0)), CELL_32)


def test_cell_anchors_nine_ratio_major_then_size():
    # Rows: ratio 0.5 for sizes 32, 64, 128, then ratio 1.0, then ratio 2.0.
    # size 64, ratio 0.5: w = 90.51 -> half 45.25 -> 45; h = 45.25 -> half 22.63 -> 23
    # size 128, ratio 0.5: w = 181.02 -> half 90.51 -> 91; h = 90.51 -> half 45.25 -> 45
    expected = torch.tensor(
        [
            [-23.0, -11.0, 23.0, 11.0],
            [-45.0, -23.0, 45.0, 23.0],
            [-91.0, -45.0, 91.0, 45.0],
            [-16.0, -16.0, 16.0, 16.0],
            [-32.0, -32.0, 32.0, 32.0],
            [-64.0, -64.0, 64.0, 64.0],
            [-11.0, -23.0, 11.0, 23.0],
            [-23.0, -45.0, 23.0, 45.0],
            [-45.0, -91.0, 45.0, 91.0],
        ]
    )
    assert_close(cell_anchors((32, 64, 128), (0.5, 1.0, 2.0)), expected)


def test_grid_anchors_order_row_column_anchor():
    anchors = grid_anchors(CELL_32, (2, 3), (16, 16))
    # H * W * A = 2 * 3 * 3
    assert anchors.shape == (18, 4)
    # Index (i * W + j) * A + a is row i, column j, anchor a, shifted by (16 j, 16 i).
    assert_close(anchors[0:3], CELL_32)  # row 0, column 0: no shift
    assert_close(anchors[4], torch.tensor([0.0, -16.0, 32.0, 16.0]))  # (0, 1), a 1: x + 16
    assert_close(anchors[9], torch.tensor([-23.0, 5.0, 23.0, 27.0]))  # (1, 0), a 0: y + 16
    assert_close(anchors[17], torch.tensor([21.0, -7.0, 43.0, 39.0]))  # (1, 2), a 2: +32, +16


def test_grid_anchors_stride_is_y_then_x():
    anchors = grid_anchors(CELL_32, (2, 3), (8, 16))  # stride (sy, sx) = (8, 16)
    # Row 1, column 2, anchor 1: shift x = 2 * 16 = 32, y = 1 * 8 = 8; index (1*3 + 2)*3 + 1 = 16
    assert_close(anchors[16], torch.tensor([16.0, -8.0, 48.0, 24.0]))


def test_flatten_levels_matches_anchor_order():
    # Objectness value = 100 i + 10 j + a at (anchor a, row i, column j) on a 2x3 map, A = 3.
    a_idx = torch.arange(3).view(3, 1, 1)
    i_idx = torch.arange(2).view(1, 2, 1)
    j_idx = torch.arange(3).view(1, 1, 3)
    objectness = (100 * i_idx + 10 * j_idx + a_idx).float()[None]  # (1, 3, 2, 3)
    # Deltas (1, A * 4, H, W): channel 4 a + c holds 1000 c + the objectness value.
    deltas = torch.cat(
        [objectness[0, a : a + 1] + 1000 * torch.arange(4).view(4, 1, 1) for a in range(3)]
    )[None]
    flat_obj, flat_deltas = flatten_levels([objectness], [deltas])
    # Same order as grid_anchors: row, column, anchor.
    expected = torch.tensor(
        [0.0, 1, 2, 10, 11, 12, 20, 21, 22, 100, 101, 102, 110, 111, 112, 120, 121, 122]
    )
    assert_close(flat_obj, expected[None])
    assert_close(flat_deltas[0, 16], torch.tensor([121.0, 1121.0, 2121.0, 3121.0]))


def test_anchors_for_features_counts_and_strides():
    spec = AnchorSpec(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0), (0.5, 1.0, 2.0)))
    # Padded 64 x 96 image; features 16 x 24 (stride 4) and 8 x 12 (stride 8).
    levels = anchors_for_features(spec, (64, 96), [(16, 24), (8, 12)])
    assert [lvl.shape[0] for lvl in levels] == [16 * 24 * 3, 8 * 12 * 3]  # 1152 and 288
    assert spec.num_anchors_per_location == [3, 3]
    # Level 0, row 0, column 1, anchor 0: CELL_32[0] shifted by x + 4.
    assert_close(levels[0][3], torch.tensor([-19.0, -11.0, 27.0, 11.0]))
    # Level 1 (size 64, ratio 0.5 = [-45, -23, 45, 23]), row 1, column 1: shift (8, 8).
    assert_close(levels[1][(1 * 12 + 1) * 3], torch.tensor([-37.0, -15.0, 53.0, 31.0]))


def test_anchor_spec_mismatch_raises():
    with pytest.raises(ValueError, match="levels"):
        AnchorSpec(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),))


def test_anchors_for_features_wrong_level_count_raises():
    spec = AnchorSpec(sizes=((32,), (64,)), aspect_ratios=((1.0,), (1.0,)))
    with pytest.raises(ValueError, match="feature levels"):
        anchors_for_features(spec, (64, 64), [(16, 16)])
