"""Feature Pyramid Network (Lin et al., 2017) with torchvision's state-dict layout.

The FPN turns the backbone's stage outputs C_k (strides 4, 8, 16, 32 for a ResNet) into
256-channel maps P_k of the same strides, then adds one coarser level by max-pooling the top
one (P6, named "pool"). Keys: ``inner_blocks.i.0.{weight,bias}`` (1x1 lateral convs) and
``layer_blocks.i.0.{weight,bias}`` (3x3 output convs), exactly as torchvision >= 0.13 names
them; checkpoints with the older ``inner_blocks.i.weight`` names are renamed on load.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    # A Sequential of one conv, so that the parameters live at ``<block>.0.weight`` as in
    # torchvision's Conv2dNormActivation without a norm layer.
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.constant_(conv.bias, 0)
    return nn.Sequential(conv)


class FeaturePyramidNetwork(nn.Module):
    """Top-down pathway with lateral connections, plus P6 by max-pooling P5.

    Input: an ordered dict of L maps ``{name: (N, C_i, H_i, W_i)}``, finest first.
    Output: an ordered dict of L + 1 maps ``{name: (N, out_channels, H_i, W_i)}`` followed by
    ``"pool": (N, out_channels, ceil(H_L / 2), ceil(W_L / 2))``.
    """

    def __init__(self, in_channels_list: list[int], out_channels: int = 256) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(_conv_block(c, out_channels, 1) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(
            _conv_block(out_channels, out_channels, 3) for _ in in_channels_list
        )
        self.out_channels = out_channels

    def forward(self, features: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        names = list(features.keys())
        maps = list(features.values())
        last_inner = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[idx](maps[idx])
            top_down = F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            last_inner = lateral + top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        # P6: a 1x1 max-pool with stride 2 of the top output, as in torchvision's LastLevelMaxPool.
        results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))
        names.append("pool")
        return OrderedDict(zip(names, results))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before torchvision 0.13 store ``inner_blocks.0.weight``.
        for block in ("inner_blocks", "layer_blocks"):
            for i in range(len(self.inner_blocks)):
                for kind in ("weight", "bias"):
                    old_key = f"{prefix}{block}.{i}.{kind}"
                    new_key = f"{prefix}{block}.{i}.0.{kind}"
                    if old_key in state_dict and new_key not in state_dict:
                        state_dict[new_key] = state_dict.pop(old_key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
