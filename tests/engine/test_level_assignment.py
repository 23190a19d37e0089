"""FPN level assignment (k = floor(4 + log2(sqrt(w h) / 224)), clamped) and multi-level pooling."""

from __future__ import annotations

import torch
from torch.testing import assert_close
from torchvision.ops import roi_align

from engine.detector.poolers import assign_levels, multiscale_roi_align, pooled_level_range


def _squares(*sides: float) -> torch.Tensor:
    return torch.tensor([[0.0, 0.0, s, s] for s in sides])


def test_assign_levels_golden_values():
    # Pooled levels P2..P5 (strides 4..32).
    result = assign_levels(_squares(224, 112, 448, 56, 1000, 10), k_min=2, k_max=5)
    assert_close(result.sqrt_area, torch.tensor([224.0, 112.0, 448.0, 56.0, 1000.0, 10.0]))
    # 4 + log2(s / 224): 224 -> 4, 112 -> 3, 448 -> 5, 56 -> 2,
    # 1000 -> 4 + log2(4.4643) = 6.1584, 10 -> 4 + log2(0.044643) = -0.4854 (+ 1e-6 each).
    assert_close(
        result.raw_level,
        torch.tensor([4.0, 3.0, 5.0, 2.0, 6.158429, -0.485427]),
        atol=1e-5,
        rtol=0,
    )
    # 1000 is clamped down to 5, 10 up to 2.
    assert result.level.tolist() == [4, 3, 5, 2, 5, 2]
    assert result.level.dtype == torch.int64
    assert result.index.tolist() == [2, 1, 3, 0, 3, 0]  # level - k_min


def test_assign_levels_boundary_just_below_canonical_size():
    # 4 + log2(223.99 / 224) = 3.99994, below 4 even with the 1e-6 epsilon -> level 3.
    result = assign_levels(_squares(223.99, 224.0), k_min=2, k_max=5)
    assert result.level.tolist() == [3, 4]
    assert_close(result.raw_level[0], torch.tensor(3.999936), atol=1e-5, rtol=0)


def test_assign_levels_uses_geometric_mean_of_sides():
    # 112 x 448: sqrt(112 * 448) = sqrt(50176) = 224 -> level 4.
    result = assign_levels(torch.tensor([[10.0, 20.0, 122.0, 468.0]]), k_min=2, k_max=5)
    assert_close(result.sqrt_area, torch.tensor([224.0]))
    assert result.level.tolist() == [4]


def test_pooled_level_range_from_strides():
    assert pooled_level_range([4, 8, 16, 32]) == (2, 5)


def test_multiscale_roi_align_pools_each_box_from_its_level():
    torch.manual_seed(0)
    strides = [4, 8]
    # Two images, padded 64 x 64: level 0 is 16 x 16, level 1 is 8 x 8.
    features = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8)]
    proposals = [
        torch.tensor([[4.0, 4.0, 30.0, 20.0], [10.0, 12.0, 60.0, 50.0]]),  # image 0
        torch.tensor([[0.0, 8.0, 40.0, 44.0]]),  # image 1
    ]
    level_index = torch.tensor([0, 1, 1])
    pooled = multiscale_roi_align(features, strides, proposals, level_index, 7, 2)
    assert pooled.shape == (3, 3, 7, 7)

    # Each box on its own: one image's map of its level, image index 0, scale 1 / stride.
    def alone(level: int, image: int, box: torch.Tensor) -> torch.Tensor:
        roi = torch.cat([torch.zeros(1), box])[None]
        return roi_align(features[level][image : image + 1], roi, (7, 7), 1.0 / strides[level], 2)

    assert_close(pooled[0], alone(0, 0, proposals[0][0])[0])
    assert_close(pooled[1], alone(1, 0, proposals[0][1])[0])
    assert_close(pooled[2], alone(1, 1, proposals[1][0])[0])
    # Pooling box 0 from the other level would give something else.
    assert not torch.allclose(pooled[0], alone(1, 0, proposals[0][0])[0])


def test_multiscale_roi_align_single_level():
    torch.manual_seed(1)
    feature = torch.randn(1, 2, 8, 8)
    box = torch.tensor([[2.0, 3.0, 20.0, 25.0]])
    pooled = multiscale_roi_align([feature], [4], [box], torch.tensor([0]), 5, 2)
    roi = torch.tensor([[0.0, 2.0, 3.0, 20.0, 25.0]])
    assert_close(pooled, roi_align(feature, roi, (5, 5), 0.25, 2))
