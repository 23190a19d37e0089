"""Anchors: the reference boxes the RPN scores and refines, A per location on every FPN level.

At a level with stride s, location (i, j) of the feature map is the image point
(j * s, i * s); around it sit A = len(sizes) * len(aspect_ratios) anchors. An anchor of size
``size`` and aspect ratio ``r = height / width`` has width ``size / sqrt(r)`` and height
``size * sqrt(r)`` (area size^2), its corners rounded to whole pixels as in torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# torchvision's defaults for the ResNet FPN: one size per level P2..P6, three ratios each.
DEFAULT_SIZES: tuple[tuple[int, ...], ...] = ((32,), (64,), (128,), (256,), (512,))
DEFAULT_ASPECT_RATIOS: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),) * 5


def cell_anchors(sizes: tuple[float, ...], aspect_ratios: tuple[float, ...]) -> torch.Tensor:
    """The A anchors of one location, centred on (0, 0): (A, 4), ratio-major then size.

    Row ``k`` has ratio ``aspect_ratios[k // len(sizes)]`` and size ``sizes[k % len(sizes)]``.
    """
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    widths = (w_ratios[:, None] * scales[None, :]).view(-1)
    heights = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-widths, -heights, widths, heights], dim=1) / 2).round()


def grid_anchors(
    cell: torch.Tensor, feature_size: tuple[int, int], stride: tuple[int, int]
) -> torch.Tensor:
    """All anchors of one level: (H * W * A, 4), ordered by row, then column, then anchor.

    ``cell`` (A, 4) from :func:`cell_anchors`; ``feature_size`` (H, W); ``stride`` (sy, sx).
    """
    height, width = feature_size
    stride_y, stride_x = stride
    device = cell.device
    shifts_x = torch.arange(0, width, dtype=torch.int32, device=device) * stride_x
    shifts_y = torch.arange(0, height, dtype=torch.int32, device=device) * stride_y
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x = shift_x.reshape(-1)
    shift_y = shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4)


@dataclass(frozen=True)
class AnchorSpec:
    """Anchor sizes and aspect ratios for each FPN level, finest level first."""

    sizes: tuple[tuple[float, ...], ...] = DEFAULT_SIZES
    aspect_ratios: tuple[tuple[float, ...], ...] = DEFAULT_ASPECT_RATIOS

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.aspect_ratios):
            raise ValueError(
                f"anchor sizes give {len(self.sizes)} levels but aspect ratios give "
                f"{len(self.aspect_ratios)}; give one tuple of each per FPN level"
            )

    @property
    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def cell_anchors(self, device: torch.device | None = None) -> list[torch.Tensor]:
        """The (A_l, 4) centred anchors of each level."""
        return [cell_anchors(s, r).to(device) for s, r in zip(self.sizes, self.aspect_ratios)]


def anchors_for_features(
    spec: AnchorSpec,
    padded_image_size: tuple[int, int],
    feature_sizes: list[tuple[int, int]],
    device: torch.device | None = None,
) -> list[torch.Tensor]:
    """Anchors of every level for a batch padded to ``padded_image_size`` (H, W).

    The stride of a level is the padded image size divided (integer division) by its feature
    size, per axis. Returns one (H_l * W_l * A_l, 4) tensor per level; the same anchors serve
    every image of the batch.
    """
    if len(feature_sizes) != len(spec.sizes):
        raise ValueError(
            f"the backbone gives {len(feature_sizes)} feature levels but the anchors are "
            f"configured for {len(spec.sizes)}; give one sizes tuple per level"
        )
    anchors = []
    for cell, size in zip(spec.cell_anchors(device), feature_sizes):
        stride = (padded_image_size[0] // size[0], padded_image_size[1] // size[1])
        anchors.append(grid_anchors(cell, size, stride))
    return anchors
