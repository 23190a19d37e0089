"""Golden values for box coding: dx = wx (x - xa) / wa, dw = ww log(w / wa), and back."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from engine.detector.box_coding import DEFAULT_CLAMP, BoxCoder

RPN = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
HEAD = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
LOG2 = math.log(2.0)  # 0.693147

# Reference boxes and targets, with centre (cx, cy) and size (w, h) written out.
REFERENCES = torch.tensor(
    [
        [0.0, 0.0, 10.0, 20.0],  # c (5, 10), w 10, h 20
        [10.0, 10.0, 30.0, 50.0],  # c (20, 30), w 20, h 40
        [10.0, 10.0, 30.0, 50.0],  # c (20, 30), w 20, h 40
    ]
)
TARGETS = torch.tensor(
    [
        [0.0, 0.0, 20.0, 20.0],  # c (10, 10), w 20, h 20
        [15.0, 20.0, 25.0, 40.0],  # c (20, 30), w 10, h 20
        [20.0, 0.0, 40.0, 40.0],  # c (30, 20), w 20, h 40
    ]
)
# Row 0: dx = (10 - 5) / 10 = 0.5, dy = 0, dw = log(20 / 10) = log 2, dh = log(20 / 20) = 0
# Row 1: same centre; dw = log(10 / 20) = -log 2, dh = log(20 / 40) = -log 2
# Row 2: dx = (30 - 20) / 20 = 0.5, dy = (20 - 30) / 40 = -0.25, same size
CODES_UNIT = torch.tensor(
    [
        [0.5, 0.0, LOG2, 0.0],
        [0.0, 0.0, -LOG2, -LOG2],
        [0.5, -0.25, 0.0, 0.0],
    ]
)
# Weights (10, 10, 5, 5) multiply each column.
CODES_HEAD = torch.tensor(
    [
        [5.0, 0.0, 5 * LOG2, 0.0],
        [0.0, 0.0, -5 * LOG2, -5 * LOG2],
        [5.0, -2.5, 0.0, 0.0],
    ]
)


def test_encode_unit_weights():
    assert_close(RPN.encode(TARGETS, REFERENCES), CODES_UNIT)


def test_encode_box_head_weights():
    assert_close(HEAD.encode(TARGETS, REFERENCES), CODES_HEAD)


def test_decode_literal_values_one_code_per_box():
    # decode returns (K, C, 4), here C = 1.
    assert_close(RPN.decode(CODES_UNIT, REFERENCES), TARGETS[:, None, :])
    assert_close(HEAD.decode(CODES_HEAD, REFERENCES), TARGETS[:, None, :])


def test_decode_several_codes_per_box():
    # One reference [0, 0, 10, 20], two classes: a zero code gives back the reference,
    # the second code is row 0 above.
    codes = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.5, 0.0, LOG2, 0.0]])
    expected = torch.tensor([[[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 20.0, 20.0]]])
    assert_close(RPN.decode(codes, REFERENCES[:1]), expected)


def test_decode_encode_round_trip():
    boxes = torch.tensor([[3.0, 4.0, 50.0, 33.0], [100.0, 0.5, 101.0, 90.0]])
    refs = torch.tensor([[0.0, 0.0, 32.0, 32.0], [90.0, 10.0, 130.0, 30.0]])
    for coder in (RPN, HEAD):
        assert_close(coder.decode(coder.encode(boxes, refs), refs)[:, 0], boxes)


def test_decode_clamps_width_and_height_at_log_1000_over_16():
    assert math.isclose(DEFAULT_CLAMP, math.log(1000 / 16))  # 4.135
    # Reference [0, 0, 16, 16]: centre 8, size 16. A huge dw, dh is clamped to log(62.5), so
    # w = h = 16 * 62.5 = 1000 and the box is [8 - 500, 8 - 500, 8 + 500, 8 + 500].
    ref = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    expected = torch.tensor([[[-492.0, -492.0, 508.0, 508.0]]])
    assert_close(RPN.decode(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), ref), expected)
    # The clamp applies after dividing by the weight: 1000 / 5 = 200 is clamped too.
    assert_close(HEAD.decode(torch.tensor([[0.0, 0.0, 1000.0, 1000.0]]), ref), expected)
    # Exactly at the clamp nothing changes; only width grows here, height stays 16.
    at_clamp = torch.tensor([[0.0, 0.0, DEFAULT_CLAMP, 0.0]])
    assert_close(RPN.decode(at_clamp, ref), torch.tensor([[[-492.0, 0.0, 508.0, 16.0]]]))
