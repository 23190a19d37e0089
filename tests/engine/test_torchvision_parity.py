"""Parity with torchvision's Faster R-CNN: same weights in, same detections and losses out.

torchvision is a peer implementation nobody here wrote. Both models get the same seeded random
weights (the classifier sharpened so that detections pass the score threshold) and the same
real photos at a small size. Our speed options (folding frozen BatchNorm, channels-last) reorder
floating-point sums, so the exact comparison turns them off; ``test_speed_options_*`` checks
them separately.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn,
)

from engine import build_model

SMALL = {"min_size": 224, "max_size": 320}
EXACT = {"fold_frozen_batchnorm": False, "channels_last": False}
BUILDERS = {
    "resnet50": fasterrcnn_resnet50_fpn,
    "mobilenet_v3_large": fasterrcnn_mobilenet_v3_large_fpn,
}
TARGETS = [
    {"boxes": torch.tensor([[20.0, 30.0, 150.0, 180.0]]), "labels": torch.tensor([1])},
    {
        "boxes": torch.tensor([[10.0, 10.0, 100.0, 120.0], [50.0, 60.0, 200.0, 170.0]]),
        "labels": torch.tensor([2, 3]),
    },
]


def _pair(backbone: str, **ours_kwargs):
    torch.manual_seed(0)
    theirs = BUILDERS[backbone](weights=None, weights_backbone=None, num_classes=5, **SMALL)
    with torch.no_grad():
        # Random weights give near-uniform class scores; sharpen them so detections exist.
        theirs.roi_heads.box_predictor.cls_score.weight.mul_(30)
    ours = build_model(backbone, num_classes=5, **SMALL, **ours_kwargs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def _assert_same_detections(ours_out, theirs_out, box_tol=1e-3, score_tol=1e-5):
    for mine, ref in zip(ours_out, theirs_out, strict=True):
        assert len(ref["boxes"]) > 0, "the sharpened classifier should give detections"
        assert torch.equal(mine["labels"], ref["labels"])
        torch.testing.assert_close(mine["boxes"], ref["boxes"], atol=box_tol, rtol=0)
        torch.testing.assert_close(mine["scores"], ref["scores"], atol=score_tol, rtol=0)


@pytest.mark.parametrize("backbone", list(BUILDERS))
def test_state_dict_keys_equal_torchvision(backbone):
    ours, theirs = _pair(backbone)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize("backbone", list(BUILDERS))
def test_eval_detections_equal_torchvision(backbone, real_images):
    ours, theirs = _pair(backbone, **EXACT)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        _assert_same_detections(ours(real_images), theirs(real_images))


@pytest.mark.parametrize("backbone", list(BUILDERS))
def test_training_losses_equal_torchvision(backbone, real_images):
    ours, theirs = _pair(backbone, **EXACT)
    # Sampling sizes so large that every candidate is used: random sampling cannot differ.
    ours.rpn.batch_size_per_image = ours.roi_heads.batch_size_per_image = 10**6
    theirs.rpn.fg_bg_sampler.batch_size_per_image = 10**6
    theirs.roi_heads.fg_bg_sampler.batch_size_per_image = 10**6
    ours.train()
    theirs.train()
    torch.manual_seed(1)
    theirs_losses = theirs(real_images, TARGETS)
    torch.manual_seed(1)
    ours_losses = ours(real_images, TARGETS)
    assert set(ours_losses) == {
        "loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg",
    }
    for name, value in theirs_losses.items():
        torch.testing.assert_close(ours_losses[name], value, rtol=1e-5, atol=0)


def test_gradients_equal_torchvision(real_images):
    ours, theirs = _pair("resnet50", **EXACT)
    ours.rpn.batch_size_per_image = ours.roi_heads.batch_size_per_image = 10**6
    theirs.rpn.fg_bg_sampler.batch_size_per_image = 10**6
    theirs.roi_heads.fg_bg_sampler.batch_size_per_image = 10**6
    for model in (ours, theirs):
        model.train()
        torch.manual_seed(1)
        sum(model(real_images, TARGETS).values()).backward()
    for name in ("roi_heads.box_predictor.bbox_pred.weight", "rpn.head.conv.0.0.weight"):
        ours_grad = dict(ours.named_parameters())[name].grad
        theirs_grad = dict(theirs.named_parameters())[name].grad
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-4, atol=1e-6)


def _frozen_torchvision_resnet50():
    """torchvision's model as its builder makes it from pretrained backbone weights: frozen
    BatchNorm (with statistics measured on real photos, not the identity), 3 trainable layers."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    plain = torchvision.models.resnet50(
        norm_layer=lambda c: torch.nn.BatchNorm2d(c, momentum=None)
    )
    return plain, lambda state: _build_frozen(plain, state, FasterRCNN, _resnet_fpn_extractor,
                                              FrozenBatchNorm2d)


def _build_frozen(plain, state, faster_rcnn, extractor, frozen_bn):
    net = torchvision.models.resnet50(norm_layer=frozen_bn)
    net.load_state_dict(state)
    model = faster_rcnn(extractor(net, 3), 5, **SMALL)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    return model


def test_speed_options_keep_the_function(real_images):
    """Folded BatchNorm and channels-last compute the same features and losses up to float
    rounding; detections then agree on every label and within a fraction of a pixel."""
    plain, build_theirs = _frozen_torchvision_resnet50()
    plain.train()
    with torch.no_grad():
        for image in real_images:
            plain(torch.nn.functional.interpolate(image[None], size=(224, 224)))
    state = {k: v for k, v in plain.state_dict().items() if "num_batches" not in k}
    theirs = build_theirs(state)
    ours = build_model("resnet50", 5, frozen_batchnorm=True, trainable_backbone_layers=3, **SMALL)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        batch, _ = ours.transform(real_images)
        ours_features = ours.backbone(batch.tensors.contiguous(memory_format=torch.channels_last))
        theirs_features = theirs.backbone(batch.tensors)
        for name, feature in theirs_features.items():
            relative_error = (ours_features[name] - feature).norm() / feature.norm()
            assert relative_error < 1e-5, name
        ours_out, theirs_out = ours(real_images), theirs(real_images)
    _assert_same_detections(ours_out, theirs_out, box_tol=1.0, score_tol=0.1)


def test_pre_013_key_names_load():
    """Checkpoints from torchvision < 0.13 name the RPN conv and FPN convs without ``.0``."""
    ours = build_model("resnet50", num_classes=3, min_size=64, max_size=64)
    state = ours.state_dict()
    old = {}
    for key, value in state.items():
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for block in ("inner_blocks", "layer_blocks"):
            for i in range(4):
                key = key.replace(f"fpn.{block}.{i}.0.", f"fpn.{block}.{i}.")
        old[key] = value.clone() + 1
    assert "rpn.head.conv.weight" in old and "backbone.fpn.inner_blocks.0.weight" in old
    fresh = build_model("resnet50", num_classes=3, min_size=64, max_size=64)
    fresh.load_state_dict(old, strict=True)
    torch.testing.assert_close(
        fresh.rpn.head.conv[0][0].weight, state["rpn.head.conv.0.0.weight"] + 1
    )
