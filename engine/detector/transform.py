"""Input transform: normalize, resize, batch with padding; and mapping detections back.

Images enter as CHW float tensors in [0, 1] of any size. Each is normalized by the backbone's
mean and standard deviation, then resized so its short side is ``min_size`` unless that makes
the long side exceed ``max_size`` (then the long side is ``max_size``). The batch is padded
with zeros at the bottom and right to a common size divisible by 32, so every FPN level's
stride divides it. Boxes scale with the image; detections are scaled back to each original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import clip_boxes_to_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE_DIVISIBLE = 32
# The fewest pixels a side may have after the resize: below this a very elongated image (a
# 20000 x 100 strip) shrinks to a sliver the FPN's coarse levels round to nothing. The ONNX
# export takes sides from 16 pixels as well.
MIN_RESIZED_SIDE = 16


@dataclass
class ImageBatch:
    """A padded batch. ``tensors`` (N, 3, H_pad, W_pad); ``image_sizes`` the (h, w) of each
    resized image inside it, before padding; ``original_sizes`` the (h, w) it came in with."""

    tensors: torch.Tensor
    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]


def normalize(image: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (3, H, W) with zero mean and unit deviation per channel."""
    mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device)
    std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device)
    return (image - mean_t[:, None, None]) / std_t[:, None, None]


def resize_scale(height: int, width: int, min_size: float, max_size: float) -> float:
    """The factor that brings the short side to ``min_size`` with the long side <= ``max_size``."""
    return min(min_size / min(height, width), max_size / max(height, width))


def resized_size(height: int, width: int, min_size: float, max_size: float) -> tuple[int, int]:
    """(h, w) after :func:`resize_image`: floor(side * scale)."""
    scale = resize_scale(height, width, float(min_size), float(max_size))
    return math.floor(height * scale), math.floor(width * scale)


@dataclass(frozen=True)
class InputSizeCheck:
    """Can an image go through the resize to ``min_size`` / ``max_size``? Not when a side ends
    under :data:`MIN_RESIZED_SIDE` pixels (``min_size``: the smallest of a multi-scale
    transform's). Called on a (C, H, W) tensor it gives the problem or None."""

    min_size: int
    max_size: int

    def problem(self, height: int, width: int) -> str | None:
        new_height, new_width = resized_size(height, width, self.min_size, self.max_size)
        if min(new_height, new_width) >= MIN_RESIZED_SIDE:
            return None
        return (f"a {width}x{height} image is too elongated for this model: resized to its input "
                f"size (short side {self.min_size}, long side at most {self.max_size} pixels) "
                f"it would be {new_width}x{new_height}, and a side needs at least "
                f"{MIN_RESIZED_SIDE} pixels; crop it or cut it into parts")

    def __call__(self, image: torch.Tensor) -> str | None:
        return self.problem(int(image.shape[-2]), int(image.shape[-1]))


def resize_image(image: torch.Tensor, min_size: float, max_size: float) -> torch.Tensor:
    """(C, H, W) -> (C, floor(H * s), floor(W * s)) by bilinear interpolation, s from
    :func:`resize_scale`."""
    scale = resize_scale(image.shape[-2], image.shape[-1], float(min_size), float(max_size))
    return F.interpolate(
        image[None],
        scale_factor=scale,
        mode="bilinear",
        recompute_scale_factor=True,
        align_corners=False,
    )[0]


def resize_boxes(
    boxes: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]
) -> torch.Tensor:
    """Scale (K, 4) boxes from an image of size ``from_size`` (h, w) to one of ``to_size``."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32, device=boxes.device) / torch.tensor(
        from_size[0], dtype=torch.float32, device=boxes.device
    )
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32, device=boxes.device) / torch.tensor(
        from_size[1], dtype=torch.float32, device=boxes.device
    )
    x0, y0, x1, y1 = boxes.unbind(1)
    return torch.stack((x0 * ratio_w, y0 * ratio_h, x1 * ratio_w, y1 * ratio_h), dim=1)


def pad_batch(images: list[torch.Tensor], size_divisible: int = SIZE_DIVISIBLE) -> torch.Tensor:
    """List of (3, h_i, w_i) -> (N, 3, H, W), H and W the largest sizes rounded up to a multiple
    of ``size_divisible``, each image in the top-left corner and zeros elsewhere."""
    max_h = max(img.shape[-2] for img in images)
    max_w = max(img.shape[-1] for img in images)
    padded_h = int(math.ceil(max_h / size_divisible) * size_divisible)
    padded_w = int(math.ceil(max_w / size_divisible) * size_divisible)
    batch = images[0].new_zeros((len(images), images[0].shape[0], padded_h, padded_w))
    for img, slot in zip(images, batch):
        slot[:, : img.shape[-2], : img.shape[-1]].copy_(img)
    return batch


class Transform(torch.nn.Module):
    """Normalize, resize and batch images (and their target boxes).

    In training, ``min_size`` may be a tuple: each image draws one of its values uniformly
    (multi-scale training); in evaluation the last value is used.
    """

    def __init__(
        self,
        *,
        min_size: int | tuple[int, ...],
        max_size: int,
        image_mean: tuple[float, ...],
        image_std: tuple[float, ...],
        size_divisible: int = SIZE_DIVISIBLE,
    ) -> None:
        super().__init__()
        self.min_size = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size = max_size
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.size_divisible = size_divisible

    def size_problem(self, height: int, width: int) -> str | None:
        """Why an image of ``height`` x ``width`` pixels cannot go through this transform, or
        None (see :class:`InputSizeCheck`)."""
        return self.size_check().problem(height, width)

    def size_check(self) -> InputSizeCheck:
        """This transform's :class:`InputSizeCheck` (small and picklable: for data loaders)."""
        return InputSizeCheck(min(self.min_size), self.max_size)

    def _choose_min_size(self) -> int:
        if not self.training:
            return self.min_size[-1]
        # Drawn with torch's generator so that seeded runs repeat.
        index = int(torch.empty(1).uniform_(0.0, float(len(self.min_size))).item())
        return self.min_size[index]

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> tuple[ImageBatch, list[dict[str, torch.Tensor]] | None]:
        """Returns the padded batch and, when given, targets with boxes in the resized images."""
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        resized, new_targets = [], [] if targets is not None else None
        for i, image in enumerate(images):
            image = normalize(image, self.image_mean, self.image_std)
            image = resize_image(image, self._choose_min_size(), self.max_size)
            resized.append(image)
            if targets is not None:
                target = dict(targets[i])
                target["boxes"] = resize_boxes(
                    target["boxes"], original_sizes[i], tuple(image.shape[-2:])
                )
                new_targets.append(target)
        image_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in resized]
        batch = ImageBatch(pad_batch(resized, self.size_divisible), image_sizes, original_sizes)
        return batch, new_targets

    @staticmethod
    def to_original_sizes(
        detections: list[dict[str, torch.Tensor]], batch: ImageBatch
    ) -> list[dict[str, torch.Tensor]]:
        """Each image's detections with their boxes mapped from the resized image back to the
        original (clipped to it: scaling up can overshoot the border by float rounding). New
        dicts: the given ones keep their resized-image boxes."""
        return [
            {**det, "boxes": clip_boxes_to_image(resize_boxes(det["boxes"], resized, original),
                                                 original)}
            for det, resized, original in zip(detections, batch.image_sizes,
                                              batch.original_sizes)
        ]
