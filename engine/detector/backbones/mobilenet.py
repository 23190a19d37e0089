"""MobileNetV3-Large body as torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` uses it.

The FPN sits on the last two stages, both of stride 32: the output of the first block of the
last stage (160 channels) and of the final 1x1 conv (960 channels). Keys: ``0``..``16`` as in
``mobilenet_v3_large().features``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision import models

MOBILENET_WEIGHTS = models.MobileNet_V3_Large_Weights.IMAGENET1K_V1


class MobileNetV3Body(nn.Sequential):
    """Forward: (N, 3, H, W) -> ``{"0": (N, 160, H/32, W/32), "1": (N, 960, H/32, W/32)}``."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__(*features)
        # Blocks that halve the resolution start a stage; the first and last modules always count.
        self.stage_starts = (
            [0] + [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
            + [len(features) - 1]
        )
        self.return_indices = self.stage_starts[-2:]
        self.out_channels_list = [features[i].out_channels for i in self.return_indices]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        outputs = OrderedDict()
        for index, module in enumerate(self):
            x = module(x)
            if index in self.return_indices:
                outputs[str(self.return_indices.index(index))] = x
        return outputs


def mobilenet_v3_body(
    *, norm_layer: type[nn.Module], trainable_layers: int, imagenet_state=None
) -> MobileNetV3Body:
    """The body with the last ``trainable_layers`` of its 6 stages trainable (0..6)."""
    if not 0 <= trainable_layers <= 6:
        raise ValueError(
            "trainable_backbone_layers for mobilenet_v3_large must be in 0..6, "
            f"not {trainable_layers}"
        )
    network = models.mobilenet_v3_large(weights=None, norm_layer=norm_layer)
    if imagenet_state is not None:
        network.load_state_dict(imagenet_state)
    body = MobileNetV3Body(network.features)
    starts = body.stage_starts
    freeze_before = len(body) if trainable_layers == 0 else starts[len(starts) - trainable_layers]
    for block in list(body)[:freeze_before]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
    return body
