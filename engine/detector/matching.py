"""Matching predictions (anchors or proposals) to ground-truth boxes by IoU.

Label values used throughout: a match index >= 0 is the ground-truth box a prediction is
assigned to; ``BELOW_LOW_THRESHOLD`` (-1) marks a background prediction; ``BETWEEN_THRESHOLDS``
(-2) marks one to ignore in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


@dataclass(frozen=True)
class Matcher:
    """Assigns each prediction the ground-truth box it overlaps most.

    ``iou >= high_threshold``: matched; ``iou < low_threshold``: background (-1); in between:
    ignored (-2). With ``allow_low_quality_matches``, every prediction that ties for the best
    IoU of some ground-truth box keeps its match even below ``high_threshold``, so that each box
    gets at least one positive (Faster R-CNN, section 3.1.2).
    """

    high_threshold: float
    low_threshold: float
    allow_low_quality_matches: bool

    def __call__(self, iou: torch.Tensor) -> torch.Tensor:
        """``iou`` (M ground-truth boxes, N predictions) -> match index per prediction (N,)."""
        if iou.shape[0] == 0:
            raise ValueError("cannot match predictions against an image with no boxes")
        best_iou, matches = iou.max(dim=0)
        best_gt_for_each_prediction = matches.clone() if self.allow_low_quality_matches else None

        matches[best_iou < self.low_threshold] = BELOW_LOW_THRESHOLD
        between = (best_iou >= self.low_threshold) & (best_iou < self.high_threshold)
        matches[between] = BETWEEN_THRESHOLDS

        if best_gt_for_each_prediction is not None:
            # Predictions that reach the highest IoU some ground-truth box has (ties included)
            # get back the match they had before thresholding.
            best_iou_per_gt = iou.max(dim=1).values
            _, low_quality = torch.where(iou == best_iou_per_gt[:, None])
            matches[low_quality] = best_gt_for_each_prediction[low_quality]
        return matches


def match_labels(matches: torch.Tensor) -> torch.Tensor:
    """Match indices (N,) from :class:`Matcher` -> labels (N,) int64: 1 matched (positive),
    0 below the low threshold (negative), -1 between the thresholds (ignored)."""
    labels = (matches >= 0).to(torch.int64)
    labels[matches == BETWEEN_THRESHOLDS] = -1
    return labels
