"""The embedding pooling and the uncertainty-weighted k-center greedy on constructed cases."""

from __future__ import annotations

import math

import pytest
import torch

from engine.active.diversity import greedy_order, pooled_embedding

A = [1.0, 0.0, 0.0]
NEAR_A = [math.cos(0.1), math.sin(0.1), 0.0]  # 0.1 away from A
FAR = [0.0, 0.0, 1.0]  # sqrt(2) away from both


def test_a_far_image_comes_before_a_near_copy_of_one_picked():
    embeddings = torch.tensor([A, NEAR_A, FAR])
    uncertainty = torch.tensor([0.9, 0.9, 0.6])
    picks = greedy_order(uncertainty, embeddings)
    assert [p.index for p in picks] == [0, 2, 1]
    # Nothing labeled: the first pick has diversity 1 and scores its uncertainty.
    assert (picks[0].score, picks[0].diversity) == pytest.approx((0.9, 1.0))
    # The far image: 0.6 * sqrt(2) / 2 = 0.4243; the near-copy: 0.9 * 0.05 (2 sin(0.05) / 2).
    assert picks[1].score == pytest.approx(0.6 * math.sqrt(2) / 2, abs=1e-4)
    assert picks[2].diversity == pytest.approx(math.sin(0.05), abs=1e-4)
    assert picks[2].score == pytest.approx(0.9 * math.sin(0.05), abs=1e-4)


def test_labeled_images_count_as_already_picked():
    embeddings = torch.tensor([A, NEAR_A, FAR])
    uncertainty = torch.tensor([0.9, 0.9, 0.6])
    picks = greedy_order(uncertainty, embeddings, torch.tensor([A]))
    assert picks[0].index == 2
    assert [p.index for p in picks[1:]] == [1, 0]  # A itself is labeled: diversity 0
    assert picks[2].score == pytest.approx(0.0, abs=1e-6)


def test_count_limits_the_picks():
    picks = greedy_order(torch.tensor([0.1, 0.5, 0.3]), torch.eye(3), count=2)
    assert [p.index for p in picks] == [1, 2]


def test_embedding_averages_the_image_not_the_padding():
    level = torch.zeros((1, 2, 4, 4))
    level[0, 0, :2, :2] = 1.0  # the image fills the top-left quarter of the padded batch
    level[0, 1, 2:, 2:] = 5.0  # padding (never so in a real batch; it would show here)
    embedding = pooled_embedding([level], 0, fill=(0.5, 0.5))
    assert embedding.tolist() == pytest.approx([1.0, 0.0])
    two_levels = pooled_embedding([level, level[:, :, :2, :2]], 0, fill=(0.5, 0.5))
    assert two_levels.norm().item() == pytest.approx(1.0)
    assert two_levels.shape == (4,)
