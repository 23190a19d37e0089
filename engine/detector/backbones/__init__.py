"""Backbones with an FPN: a body giving stage outputs, then the pyramid on top.

Every backbone returns an ordered dict of 256-channel maps, finest first, ending with "pool"
(P6, max-pooled from the top level). ``BackboneSpec`` says what each one needs: the level
strides, which levels the box head pools from, the default anchors and image normalization.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..anchors import DEFAULT_ASPECT_RATIOS, DEFAULT_SIZES
from ..transform import IMAGENET_MEAN, IMAGENET_STD
from . import efficientnet_lite
from .fpn import FeaturePyramidNetwork
from .frozen_bn import FrozenBatchNorm2d, fold_frozen_batchnorm
from .mobilenet import MOBILENET_WEIGHTS, mobilenet_v3_body
from .resnet import RESNET_WEIGHTS, resnet_body


@dataclass(frozen=True)
class BackboneSpec:
    """What the detector needs to know about a backbone.

    ``level_names``: display names of the FPN outputs in order; ``strides``: their strides;
    ``pooled_levels``: how many of the first outputs the box head pools from;
    ``max_trainable_layers``: the range of ``trainable_backbone_layers``.
    """

    level_names: tuple[str, ...]
    strides: tuple[int, ...]
    pooled_levels: int
    anchor_sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    max_trainable_layers: int
    default_trainable_layers: int = 3
    rpn_score_thresh: float = 0.0


_RESNET = BackboneSpec(
    level_names=("P2", "P3", "P4", "P5", "P6"),
    strides=(4, 8, 16, 32, 64),
    pooled_levels=4,
    anchor_sizes=DEFAULT_SIZES,
    aspect_ratios=DEFAULT_ASPECT_RATIOS,
    image_mean=IMAGENET_MEAN,
    image_std=IMAGENET_STD,
    max_trainable_layers=5,
)

BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "resnet50": _RESNET,
    "resnet101": _RESNET,
    # As torchvision's fasterrcnn_mobilenet_v3_large_fpn: two stride-32 maps and their pooling;
    # all five sizes at every level; proposals below objectness 0.05 dropped.
    "mobilenet_v3_large": BackboneSpec(
        level_names=("C5a", "C5b", "pool"),
        strides=(32, 32, 64),
        pooled_levels=1,
        anchor_sizes=((32, 64, 128, 256, 512),) * 3,
        aspect_ratios=((0.5, 1.0, 2.0),) * 3,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        max_trainable_layers=6,
        rpn_score_thresh=0.05,
    ),
    "efficientnet_lite0": BackboneSpec(
        level_names=("P2", "P3", "P4", "P5", "P6"),
        strides=(4, 8, 16, 32, 64),
        pooled_levels=4,
        anchor_sizes=DEFAULT_SIZES,
        aspect_ratios=DEFAULT_ASPECT_RATIOS,
        image_mean=efficientnet_lite.IMAGE_MEAN,
        image_std=efficientnet_lite.IMAGE_STD,
        max_trainable_layers=5,
    ),
}


class BackboneWithFPN(nn.Module):
    """Body + FPN. Forward: (N, 3, H, W) -> ordered dict of (N, out_channels, H/s, W/s)."""

    def __init__(self, body: nn.Module, out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.out_channels_list, out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def build_backbone(
    name: str,
    *,
    imagenet_state: dict[str, torch.Tensor] | None,
    frozen_bn: bool,
    trainable_layers: int,
    fold_bn: bool = True,
) -> BackboneWithFPN:
    """The named backbone with an FPN.

    ``imagenet_state``: classifier weights to start from (None: random). ``frozen_bn``: use
    FrozenBatchNorm2d (fine-tuning from pretrained weights) instead of BatchNorm2d; with
    ``fold_bn`` the frozen statistics are folded into the convolutions (same function, faster).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if name.startswith("resnet"):
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        body = resnet_body(
            name, norm_layer=norm, trainable_layers=trainable_layers, imagenet_state=imagenet_state
        )
    elif name == "mobilenet_v3_large":
        # As torchvision's detection builder: default eps (1e-5) for both kinds of BatchNorm.
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        body = mobilenet_v3_body(
            norm_layer=norm, trainable_layers=trainable_layers, imagenet_state=imagenet_state
        )
    else:
        body = efficientnet_lite.efficientnet_lite0_features(
            imagenet_state=imagenet_state, frozen_bn=frozen_bn,
            trainable_layers=trainable_layers,
        )
    if frozen_bn and fold_bn:
        fold_frozen_batchnorm(body)
    return BackboneWithFPN(body)


def imagenet_weights_enum(name: str):
    """The torchvision weights entry of a backbone's ImageNet classifier, or None."""
    if name in RESNET_WEIGHTS:
        return RESNET_WEIGHTS[name]
    if name == "mobilenet_v3_large":
        return MOBILENET_WEIGHTS
    return None
