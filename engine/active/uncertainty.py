"""How unsure a detector is about an image: per-detection measures and their aggregate.

Every measure is in [0, 1], 0 sure and 1 as unsure as it can be, so that they can be averaged:

- :func:`normalized_entropy` of a detection's class distribution (softmax over the background
  and the K classes): Shannon entropy divided by its largest value, ``log(K + 1)``. Uncertainty
  sampling by entropy is the classic query strategy (Settles 2009, "Active Learning Literature
  Survey", section 3.1; Shannon 1948); for detectors, per box, Brust et al. 2019, "Active
  Learning for Deep Object Detection", and Haussmann et al. 2020, "Scalable Active Learning for
  Object Detection" (entropy of the box head's scores, aggregated per image).
- :func:`margin_uncertainty`: one minus the margin between the two most probable classes
  (Scheffer et al. 2001; Settles 2009, section 3.1): 0 when one class takes all, 1 on a tie.
- :func:`flip_disagreement`: the detections on the image and on its mirror image (the boxes
  flipped back) should agree. Each detection is matched to the other side's detection of
  highest IoU (``torchvision.ops.box_iou``); its disagreement is the mean of ``1 - IoU`` and
  the total variation distance between the two class distributions (0 when equal, 1 when
  disjoint), 1 when nothing on the other side overlaps it. After CALD (Yu et al. 2022,
  "Consistency-based Active Learning for Object Detection", box IoU and class-distribution
  divergence between an image and its augmentation) and Elezi et al. 2022, "Not All Labels Are
  Equal" (consistency under horizontal flip).

:func:`image_uncertainty` aggregates one image's detections: the mean of the ``top_k`` largest
per-detection values (the image is as useful as its few hardest objects, not its many easy
ones: a sum would favour crowded images, a plain mean would dilute one hard object among easy
ones). An image with no detection at all counts as fully uncertain (1.0): the model found
nothing, so either it misses the image's objects entirely (the most useful to label) or the
image is empty (labeling says so in one key press).
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_iou

# An image without detections: as unsure as can be (see the module docstring).
NO_DETECTION_UNCERTAINTY = 1.0
TOP_K = 3


def normalized_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """(D, C) class distributions (rows summing to 1, background included) -> (D,) entropy
    divided by ``log(C)``, in [0, 1]: 1 for the uniform distribution, 0 for a one-hot one.
    0 * log 0 is taken as 0. C = 1 gives zeros (nothing to be unsure about)."""
    classes = probabilities.shape[-1]
    if classes < 2:
        return torch.zeros(probabilities.shape[:-1], dtype=probabilities.dtype)
    p = probabilities.clamp(min=0)
    logs = torch.where(p > 0, p.log(), torch.zeros_like(p))
    return (-(p * logs).sum(-1) / math.log(classes)).clamp(0, 1)


def margin_uncertainty(probabilities: torch.Tensor) -> torch.Tensor:
    """(D, C) class distributions -> (D,) ``1 - (p_first - p_second)``, the two largest
    probabilities: 0 when one class has probability 1, 1 on a tie of the two best."""
    if probabilities.shape[-1] < 2:
        return torch.zeros(probabilities.shape[:-1], dtype=probabilities.dtype)
    top = probabilities.topk(2, dim=-1).values
    return (1 - (top[..., 0] - top[..., 1])).clamp(0, 1)


def flip_boxes(boxes: torch.Tensor, width: float) -> torch.Tensor:
    """(D, 4) boxes x0 y0 x1 y1 on an image ``width`` pixels wide -> the same boxes on its
    mirror image (or, applied again, back): ``x0' = width - x1``, ``x1' = width - x0``."""
    flipped = boxes.clone()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def flip_disagreement(boxes: torch.Tensor, probabilities: torch.Tensor,
                      other_boxes: torch.Tensor, other_probabilities: torch.Tensor
                      ) -> torch.Tensor:
    """(D,) disagreement in [0, 1] of each detection (``boxes`` (D, 4), class distributions
    ``probabilities`` (D, C)) with the other view's detections (``other_boxes`` (E, 4) in the
    same image's coordinates, i.e. flipped back, ``other_probabilities`` (E, C)).

    Matched to the other detection of highest IoU: ``0.5 * (1 - IoU) + 0.5 * TV(p, q)`` with
    ``TV(p, q) = 0.5 * sum |p - q|``; 1 when no other detection overlaps it (IoU 0)."""
    count = boxes.shape[0]
    if count == 0:
        return torch.zeros(0)
    if other_boxes.shape[0] == 0:
        return torch.ones(count)
    iou = box_iou(boxes.float(), other_boxes.float())  # (D, E)
    best_iou, best = iou.max(dim=1)
    variation = 0.5 * (probabilities.float() - other_probabilities.float()[best]).abs().sum(-1)
    disagreement = 0.5 * (1 - best_iou) + 0.5 * variation
    return torch.where(best_iou > 0, disagreement, torch.ones_like(disagreement)).clamp(0, 1)


def image_uncertainty(per_detection: torch.Tensor, top_k: int = TOP_K) -> float:
    """One image's uncertainty from its detections' values (D,) in [0, 1]: the mean of the
    ``top_k`` largest (of all of them when fewer); :data:`NO_DETECTION_UNCERTAINTY` for D = 0."""
    if per_detection.numel() == 0:
        return NO_DETECTION_UNCERTAINTY
    k = min(top_k, per_detection.numel())
    return float(per_detection.flatten().topk(k).values.mean())
