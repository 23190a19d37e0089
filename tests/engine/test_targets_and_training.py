"""Training inputs: bad boxes and labels give an error naming them; empty images train."""

from __future__ import annotations

import math

import pytest
import torch

from engine import build_model
from engine.detector.targets import InvalidTargetError

TINY = {"min_size": 96, "max_size": 128, "rpn_batch_size_per_image": 32,
        "box_batch_size_per_image": 32}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("resnet18", num_classes=3, **TINY)
    net.train()
    return net


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


@pytest.mark.parametrize(
    ("box", "label", "message"),
    [
        ([10, 10, 10, 40], 1, "zero width or height"),
        ([40, 10, 10, 40], 1, "inverted"),
        ([10, 10, 140, 40], 1, "outside the 128x96 image"),
        ([10, 10, 30, math.nan], 1, "not finite"),
        ([10, 10, 30, 40], 3, "label 3 is outside 1..2"),
        ([10, 10, 30, 40], 0, "label 0 is outside 1..2"),
    ],
)
def test_bad_targets_are_named(model, box, label, message):
    images = [torch.rand(3, 96, 128), torch.rand(3, 96, 128)]
    targets = [_target([[1, 1, 20, 20]], [1]), _target([box], [label])]
    with pytest.raises(InvalidTargetError, match="target 1, box 0") as error:
        model(images, targets)
    assert message in str(error.value)


def test_images_without_boxes_train(model):
    torch.manual_seed(0)
    images = [torch.rand(3, 96, 128), torch.rand(3, 80, 100)]
    targets = [_target([], []), _target([[10, 10, 60, 50]], [2])]
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    only_negatives = model([images[0]], [targets[0]])
    assert only_negatives["loss_box_reg"].item() == 0.0
    assert only_negatives["loss_rpn_box_reg"].item() == 0.0
    assert only_negatives["loss_objectness"].item() > 0.0


def test_training_without_targets_says_so(model):
    with pytest.raises(ValueError, match="needs targets"):
        model([torch.rand(3, 64, 64)])


def test_images_must_be_float_chw():
    net = build_model("resnet18", num_classes=3, **TINY).eval()
    with pytest.raises(ValueError, match="divide by 255"):
        net([torch.zeros(3, 32, 32, dtype=torch.uint8)])
    with pytest.raises(ValueError, match=r"expected a \(3, H, W\) tensor"):
        net([torch.zeros(32, 32, 3)])


def test_loss_falls_when_overfitting_one_image():
    torch.manual_seed(0)
    net = build_model("resnet18", num_classes=2, **TINY)
    net.train()
    image = torch.full((3, 96, 128), 0.2)
    image[:, 20:70, 30:90] = 0.9
    target = [_target([[30, 20, 90, 70]], [1])]
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01,
                                momentum=0.9)
    history = []
    for _ in range(20):
        loss = sum(net([image], target).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0]


def test_eval_returns_boxes_in_original_coordinates():
    torch.manual_seed(0)
    net = build_model("resnet18", num_classes=3, box_score_thresh=0.0, **TINY).eval()
    with torch.no_grad():
        (out,) = net([torch.rand(3, 200, 300)])
    assert set(out) == {"boxes", "labels", "scores"}
    assert len(out["boxes"]) > 0
    assert out["boxes"][:, 2].max() <= 300 and out["boxes"][:, 3].max() <= 200
    assert out["labels"].min() >= 1
