"""Resize scale, resize, padding and box mapping of the input transform, with literal values."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from engine.detector.transform import (
    Transform,
    pad_batch,
    resize_boxes,
    resize_image,
    resize_scale,
)

MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.1)


def test_resize_scale_short_side_rule():
    # 480 x 640: 800 / 480 = 1.6667; the long side becomes 1066.7 <= 1333.
    assert resize_scale(480, 640, 800.0, 1333.0) == pytest.approx(1.6666667)


def test_resize_scale_long_side_rule():
    # 100 x 1000: 800 / 100 = 8 would give a long side of 8000; 1333 / 1000 = 1.333 instead.
    assert resize_scale(100, 1000, 800.0, 1333.0) == pytest.approx(1.333)
    # Portrait is the same: the rule uses the short and long side, not h and w.
    assert resize_scale(1000, 100, 800.0, 1333.0) == pytest.approx(1.333)


def test_resize_image_sizes_are_floored():
    # 20 x 35, min 30: scale 1.5 -> (30, floor(52.5) = 52).
    assert resize_image(torch.zeros(3, 20, 35), 30, 1000).shape == (3, 30, 52)
    # 10 x 50, min 20 max 60: scale min(2, 1.2) = 1.2 -> (12, 60).
    assert resize_image(torch.zeros(3, 10, 50), 20, 60).shape == (3, 12, 60)


def test_resize_image_keeps_a_constant_image_constant():
    image = torch.full((3, 20, 30), 0.25)
    assert_close(resize_image(image, 40, 1000), torch.full((3, 40, 60), 0.25))


def test_pad_batch_to_multiple_of_32_top_left():
    small = torch.ones(3, 30, 40)
    tall = 2 * torch.ones(3, 50, 20)
    batch = pad_batch([small, tall])
    # Largest sizes 50 x 40 rounded up to 64 x 64.
    assert batch.shape == (2, 3, 64, 64)
    assert_close(batch[0, :, :30, :40], small)
    assert batch[0, :, 30:, :].abs().sum() == 0  # bottom
    assert batch[0, :, :, 40:].abs().sum() == 0  # right
    assert_close(batch[1, :, :50, :20], tall)
    assert batch[1, :, 50:, :].abs().sum() == 0
    assert batch[1, :, :, 20:].abs().sum() == 0


def test_pad_batch_already_divisible_is_unchanged():
    image = torch.rand(3, 32, 64)
    batch = pad_batch([image])
    assert batch.shape == (1, 3, 32, 64)
    assert_close(batch[0], image)


def test_resize_boxes_scales_x_by_width_and_y_by_height():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    # From (h, w) = (100, 200) to (50, 400): y * 0.5, x * 2.
    out = resize_boxes(boxes, (100, 200), (50, 400))
    assert_close(out, torch.tensor([[20.0, 10.0, 60.0, 20.0]]))


def _transform() -> Transform:
    return Transform(min_size=(32, 64), max_size=128, image_mean=MEAN, image_std=STD).eval()


def _image(height: int, width: int) -> torch.Tensor:
    # mean + std per channel: normalized to exactly 1 everywhere.
    values = torch.tensor(MEAN) + torch.tensor(STD)
    return values[:, None, None].expand(3, height, width).clone()


def test_transform_eval_sizes_normalization_and_padding():
    transform = _transform()
    images = [_image(32, 48), _image(40, 40)]
    targets = [
        {"boxes": torch.tensor([[4.0, 8.0, 12.0, 16.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0]]), "labels": torch.tensor([2])},
    ]
    batch, new_targets = transform(images, targets)
    # Evaluation uses the last min_size, 64.
    # 32 x 48: min(64 / 32, 128 / 48) = 2 -> 64 x 96; 40 x 40: 64 / 40 = 1.6 -> 64 x 64.
    assert batch.original_sizes == [(32, 48), (40, 40)]
    assert batch.image_sizes == [(64, 96), (64, 64)]
    assert batch.tensors.shape == (2, 3, 64, 96)
    assert_close(batch.tensors[1, :, :, :64], torch.ones(3, 64, 64))
    assert batch.tensors[1, :, :, 64:].abs().sum() == 0
    # Boxes scale with the image: x 2 for image 0, x 1.6 for image 1.
    assert_close(new_targets[0]["boxes"], torch.tensor([[8.0, 16.0, 24.0, 32.0]]))
    assert_close(new_targets[1]["boxes"], torch.tensor([[16.0, 32.0, 48.0, 64.0]]))
    assert new_targets[1]["labels"].tolist() == [2]
    # The caller's targets are left alone.
    assert_close(targets[0]["boxes"], torch.tensor([[4.0, 8.0, 12.0, 16.0]]))


def test_transform_to_original_sizes_maps_back_and_clips():
    transform = _transform()
    batch, _ = transform([_image(32, 48), _image(40, 40)])
    detections = [
        {"boxes": torch.tensor([[8.0, 16.0, 24.0, 32.0]])},
        # Image 1 was scaled by 1.6: 16 / 1.6 = 10 ... ; 64.8 / 1.6 = 40.5 is clipped to 40.
        {"boxes": torch.tensor([[16.0, 32.0, 48.0, 64.0], [0.0, 0.0, 64.8, 64.0]])},
    ]
    out = Transform.to_original_sizes(detections, batch)
    assert_close(out[0]["boxes"], torch.tensor([[4.0, 8.0, 12.0, 16.0]]))
    assert_close(out[1]["boxes"], torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 40.0, 40.0]]))
