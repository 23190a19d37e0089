"""Pooling proposals from FPN levels: which level each box is pooled from, and RoIAlign there.

The structure of Detectron2's ``modeling/poolers.py``: :func:`assign_levels` (their
``assign_boxes_to_levels``) is equation 1 of the FPN paper (Lin et al. 2017),
``k = floor(k0 + log2(sqrt(w * h) / 224))`` with k0 = 4, clamped to the pooled levels, and
:func:`multiscale_roi_align` pools each box from its level with torchvision's RoIAlign (7x7,
sampling ratio 2, as torchvision's ``MultiScaleRoIAlign``). :class:`RoIPooler` holds the levels'
strides and the output size and applies both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.ops import box_area
from torchvision.ops import roi_align as torchvision_roi_align

CANONICAL_SIZE = 224
CANONICAL_LEVEL = 4
# Added before flooring, as torchvision's LevelMapper does, so that a box of exactly 224 * 2^j
# lands on level 4 + j even when log2 rounds just below the whole number.
LEVEL_EPS = 1e-6


@dataclass
class LevelAssignment:
    """Per proposal (P,): ``sqrt_area`` = sqrt(w * h); ``raw_level`` = k0 + log2(sqrt_area / 224)
    (+ a small epsilon against rounding); ``level`` = floor(raw_level) clamped to
    [k_min, k_max]; ``index`` = level - k_min, the position in the list of pooled maps."""

    sqrt_area: torch.Tensor
    raw_level: torch.Tensor
    level: torch.Tensor
    index: torch.Tensor


def assign_levels(boxes: torch.Tensor, k_min: int, k_max: int) -> LevelAssignment:
    """FPN paper, equation 1, with k0 = 4 and canonical size 224, for boxes (P, 4)."""
    sqrt_area = torch.sqrt(box_area(boxes))
    raw_level = CANONICAL_LEVEL + torch.log2(sqrt_area / CANONICAL_SIZE) + torch.tensor(
        LEVEL_EPS, dtype=sqrt_area.dtype
    )
    level = torch.clamp(torch.floor(raw_level), min=k_min, max=k_max).to(torch.int64)
    return LevelAssignment(sqrt_area, raw_level, level, level - k_min)


def multiscale_roi_align(
    features: list[torch.Tensor],
    strides: list[int],
    proposals: list[torch.Tensor],
    level_index: torch.Tensor,
    output_size: int = 7,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """Pool each proposal from its level.

    ``features`` per pooled level (N, C, H_l, W_l) with ``strides``; ``proposals`` per image
    (P_i, 4); ``level_index`` (P,) into ``features`` for the concatenated proposals.
    Returns (P, C, output_size, output_size).
    """
    boxes = torch.cat(proposals, dim=0)
    image_index = torch.cat(
        [torch.full_like(b[:, :1], i) for i, b in enumerate(proposals)], dim=0
    )
    rois = torch.cat([image_index, boxes], dim=1)  # (P, 5): image index, x0, y0, x1, y1
    first = features[0]
    if len(features) == 1:
        return torchvision_roi_align(
            first, rois, (output_size, output_size), 1.0 / strides[0], sampling_ratio
        )
    pooled = torch.zeros(
        (rois.shape[0], first.shape[1], output_size, output_size),
        dtype=first.dtype,
        device=first.device,
    )
    for index, (feature, stride) in enumerate(zip(features, strides)):
        in_level = torch.where(level_index == index)[0]
        pooled[in_level] = torchvision_roi_align(
            feature, rois[in_level], (output_size, output_size), 1.0 / stride, sampling_ratio
        ).to(pooled.dtype)
    return pooled


def pooled_level_range(strides: list[int]) -> tuple[int, int]:
    """(k_min, k_max) for feature maps with the given power-of-two strides."""
    return int(math.log2(strides[0])), int(math.log2(strides[-1]))


class RoIPooler:
    """Multi-scale RoIAlign over the pooled FPN levels (P_k has stride 2^k).

    ``strides`` of the pooled maps in order, e.g. [4, 8, 16, 32] for P2..P5.
    """

    def __init__(
        self, strides: list[int], *, output_size: int = 7, sampling_ratio: int = 2
    ) -> None:
        self.strides = list(strides)
        self.k_min, self.k_max = pooled_level_range(self.strides)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio

    def assign(self, boxes: torch.Tensor) -> LevelAssignment:
        """The level of each box (P, 4), in the resized image's pixels."""
        return assign_levels(boxes, self.k_min, self.k_max)

    def __call__(self, features: list[torch.Tensor], proposals: list[torch.Tensor]) -> torch.Tensor:
        """Each proposal's RoIAlign grid from its level: ``features`` per pooled level
        (N, C, H_l, W_l), ``proposals`` per image (P_i, 4) -> (P, C, output_size, output_size)."""
        levels = self.assign(torch.cat(proposals))
        return multiscale_roi_align(
            features, self.strides, proposals, levels.index, self.output_size, self.sampling_ratio
        )
