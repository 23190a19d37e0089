"""Checking inputs and training targets before they reach the detector.

A bad box (zero area, inverted, outside the image: :mod:`engine.box_validity`, policy "reject"
with half a pixel of tolerance) or a class id outside the model's classes would otherwise
surface as a NaN loss many steps later; here it is an error naming the image, the box and the
reason.
"""

from __future__ import annotations

import torch

from ..box_validity import TARGET_TOLERANCE, box_problem


class InvalidTargetError(ValueError):
    """A training target the detector cannot learn from."""


def check_images(images: list[torch.Tensor], transform=None) -> None:
    """Each image must be a (3, H, W) floating-point tensor, and, when the model's
    ``transform`` (:class:`~engine.detector.transform.Transform`) is given, one it can resize
    (see its ``size_problem``)."""
    if not isinstance(images, (list, tuple)) or not images:
        raise TypeError("images must be a non-empty list of (3, H, W) float tensors")
    for index, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image {index}: expected a (3, H, W) tensor, got {shape}")
        if not image.is_floating_point():
            raise ValueError(
                f"image {index}: expected floats in [0, 1], got {image.dtype}; divide by 255"
            )
        problem = transform.size_problem(*image.shape[-2:]) if transform is not None else None
        if problem is not None:
            raise ValueError(f"image {index}: {problem}")


def check_targets(
    images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]], num_classes: int
) -> None:
    """Each target holds ``boxes`` (K, 4) float x0, y0, x1, y1 inside its image with positive
    width and height, and ``labels`` (K,) int64 in 1..num_classes - 1 (0 is the background)."""
    if len(targets) != len(images):
        raise InvalidTargetError(f"got {len(images)} images but {len(targets)} targets")
    for index, (image, target) in enumerate(zip(images, targets)):
        boxes, labels = target.get("boxes"), target.get("labels")
        if not isinstance(boxes, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise InvalidTargetError(f"target {index}: needs tensors 'boxes' and 'labels'")
        if boxes.dim() != 2 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
            raise InvalidTargetError(
                f"target {index}: boxes must be a float (K, 4) tensor, got "
                f"{boxes.dtype} {tuple(boxes.shape)}"
            )
        if labels.shape != (boxes.shape[0],) or labels.is_floating_point():
            raise InvalidTargetError(
                f"target {index}: labels must be an integer (K,) tensor with K = {boxes.shape[0]}"
            )
        height, width = image.shape[-2:]
        for k, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
            reason = box_problem(box, width, height, tolerance=TARGET_TOLERANCE)
            if reason:
                raise InvalidTargetError(f"target {index}, box {k} {box}: {reason}")
            if not 1 <= label < num_classes:
                raise InvalidTargetError(
                    f"target {index}, box {k}: label {label} is outside 1..{num_classes - 1} "
                    f"(0 is the background; the model has {num_classes} classes with it)"
                )
