"""Balanced sampling: at most batch * fraction positives, the rest negatives, never ignored."""

from __future__ import annotations

import torch

from engine.detector.sampling import sample_positives_negatives

# 4 positives (labels 1 and 2), 8 negatives, 4 ignored.
LABELS = torch.tensor([1, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1])
POSITIVE = LABELS >= 1
NEGATIVE = LABELS == 0


def test_counts_fraction_and_fill():
    torch.manual_seed(0)
    pos, neg = sample_positives_negatives(LABELS, batch_size=8, positive_fraction=0.25)
    # 8 * 0.25 = 2 positives of the 4; 8 - 2 = 6 negatives of the 8.
    assert int(pos.sum()) == 2
    assert int(neg.sum()) == 6
    assert pos.dtype == torch.bool and neg.dtype == torch.bool
    assert not (pos & neg).any()
    assert not (pos & ~POSITIVE).any()
    assert not (neg & ~NEGATIVE).any()
    assert not ((pos | neg) & (LABELS == -1)).any()


def test_fraction_rounds_down():
    # 10 * 0.25 = 2.5 -> 2 positives; 8 negatives fill the batch of 10.
    pos, neg = sample_positives_negatives(LABELS, batch_size=10, positive_fraction=0.25)
    assert (int(pos.sum()), int(neg.sum())) == (2, 8)


def test_few_positives_are_all_taken_and_negatives_fill():
    labels = torch.tensor([0, 0, 1, 0, 0, -1, 0, 0, 0, 0, 0, -1])  # 1 positive, 9 negatives
    pos, neg = sample_positives_negatives(labels, batch_size=8, positive_fraction=0.5)
    # min(1, 4) = 1 positive, 8 - 1 = 7 negatives of the 9.
    assert pos.tolist() == [False, False, True] + [False] * 9
    assert int(neg.sum()) == 7
    assert not (neg & (labels != 0)).any()


def test_too_few_of_both_takes_everything_not_ignored():
    labels = torch.tensor([1.0, 0.0, -1.0, 0.0])  # float labels, as the RPN makes them
    pos, neg = sample_positives_negatives(labels, batch_size=8, positive_fraction=0.5)
    assert pos.tolist() == [True, False, False, False]
    assert neg.tolist() == [False, True, False, True]


def test_no_positives_gives_a_batch_of_negatives():
    labels = torch.tensor([0, 0, 0, 0, -1])
    pos, neg = sample_positives_negatives(labels, batch_size=3, positive_fraction=0.5)
    assert not pos.any()
    assert int(neg.sum()) == 3
    assert not neg[4]


def test_deterministic_under_manual_seed():
    labels = torch.cat([torch.ones(50), torch.zeros(200), -torch.ones(20)]).long()
    torch.manual_seed(123)
    first = sample_positives_negatives(labels, batch_size=64, positive_fraction=0.25)
    torch.manual_seed(123)
    second = sample_positives_negatives(labels, batch_size=64, positive_fraction=0.25)
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    assert (int(first[0].sum()), int(first[1].sum())) == (16, 48)
