"""Diversity: image embeddings from the detector's own features, and a greedy batch order that
weighs each image's uncertainty by its distance to what is labeled or already chosen.

Embedding (:func:`pooled_embedding`): each FPN level's map averaged over the image's own pixels
(the padding left out), the levels concatenated, the whole L2-normalised: (L * C,), so that
two images' Euclidean distance is in [0, 2] and depends on what they show, not on how bright
or busy they are overall.

Order (:func:`greedy_order`): an uncertainty-weighted k-center greedy. Core-set selection
(Sener & Savarese 2018, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach") picks next the image farthest from everything labeled or picked (k-center greedy);
weighting that distance by the image's uncertainty, as Haussmann et al. 2020 ("Scalable Active
Learning for Object Detection") combine the two, picks next the image maximising::

    score = uncertainty * diversity,   diversity = min distance / 2   (in [0, 1])

the minimum over the labeled images and the images picked before it. A near-copy of a picked
image has diversity near 0 and falls to the back, however uncertain; with nothing labeled and
nothing picked yet the diversity of every image is 1 and the most uncertain comes first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def pooled_embedding(maps: list[torch.Tensor], index: int, fill: tuple[float, float] = (1.0, 1.0)
                     ) -> torch.Tensor:
    """Image ``index`` of a padded batch's feature ``maps`` (per level (N, C, H_l, W_l)) ->
    its (L * C,) float32 embedding, unit length. ``fill`` (h / H_pad, w / W_pad): the share
    of the padded batch the image's resized pixels fill (1, 1 without padding); each level is
    averaged over its first ``ceil(H_l * h / H_pad)`` rows and ``ceil(W_l * w / W_pad)``
    columns, the cells that see the image."""
    parts = []
    for level in maps:
        rows = max(1, math.ceil(level.shape[-2] * fill[0] - 1e-6))
        cols = max(1, math.ceil(level.shape[-1] * fill[1] - 1e-6))
        parts.append(level[index, :, :rows, :cols].float().mean(dim=(-2, -1)))
    return F.normalize(torch.cat(parts), dim=0)


@dataclass(frozen=True)
class Pick:
    """One image in the greedy order: its ``index`` among the candidates, its ``score``
    (uncertainty * diversity) and ``diversity`` (half the distance to the nearest labeled or
    earlier picked image, in [0, 1]) at the moment it was picked."""

    index: int
    score: float
    diversity: float


def greedy_order(uncertainty: torch.Tensor, embeddings: torch.Tensor,
                 labeled: torch.Tensor | None = None, *, count: int | None = None
                 ) -> list[Pick]:
    """Order candidates by the uncertainty-weighted k-center greedy of the module docstring.

    ``uncertainty`` (N,) in [0, 1]; ``embeddings`` (N, E) unit rows; ``labeled`` (M, E) unit
    rows of the labeled images (None or M = 0: none). Returns the first ``count`` picks (all N
    by default), best first. Ties go to the lower index. O(N * (N + M) * E)."""
    n = uncertainty.shape[0]
    count = n if count is None else min(count, n)
    uncertainty = uncertainty.float()
    embeddings = embeddings.float()
    if labeled is not None and labeled.shape[0] > 0:
        nearest = torch.cdist(embeddings, labeled.float()).min(dim=1).values
    else:
        nearest = torch.full((n,), 2.0)
    nearest = nearest.clamp(0, 2)
    taken = torch.zeros(n, dtype=torch.bool)
    picks: list[Pick] = []
    for _ in range(count):
        diversity = nearest / 2
        score = torch.where(taken, torch.full_like(diversity, -1.0), uncertainty * diversity)
        index = int(score.argmax())
        picks.append(Pick(index, float(score[index]), float(diversity[index])))
        taken[index] = True
        distance = torch.cdist(embeddings, embeddings[index:index + 1]).squeeze(1)
        nearest = torch.minimum(nearest, distance.clamp(0, 2))
    return picks
