"""Balanced sampling of positives and negatives for a loss mini-batch."""

from __future__ import annotations

import torch


def sample_positives_negatives(
    labels: torch.Tensor, batch_size: int, positive_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick at most ``batch_size`` examples, at most ``positive_fraction`` of them positive.

    ``labels`` (N,): -1 ignore, 0 negative, >= 1 positive (a class id or 1 for the RPN).
    Returns two boolean masks (N,): the sampled positives and the sampled negatives. When there
    are too few positives the batch is filled with negatives. Chosen uniformly at random with
    torch's global generator.
    """
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(batch_size * positive_fraction))
    num_neg = min(negative.numel(), batch_size - num_pos)
    pos_idx = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
    neg_idx = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]

    pos_mask = torch.zeros_like(labels, dtype=torch.bool)
    neg_mask = torch.zeros_like(labels, dtype=torch.bool)
    pos_mask[pos_idx] = True
    neg_mask[neg_idx] = True
    return pos_mask, neg_mask
