"""ResNet bodies (18, 34, 50, 101) returning C2..C5 for the FPN, keys as torchvision's."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision import models

RESNET_WEIGHTS = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": models.ResNet101_Weights.IMAGENET1K_V1,
}
# Trainable groups from the top, as torchvision's ``trainable_backbone_layers`` counts them.
_LAYERS_FROM_TOP = ("layer4", "layer3", "layer2", "layer1", "conv1")


class ResNetBody(nn.Module):
    """A torchvision ResNet without its classifier.

    Forward: (N, 3, H, W) -> ``{"0": C2, "1": C3, "2": C4, "3": C5}``, strides 4, 8, 16, 32;
    channels 64..512 (ResNet-18/34) or 256..2048 (ResNet-50/101).
    """

    def __init__(self, resnet: models.ResNet) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(resnet, name))
        expansion = 4 if isinstance(resnet.layer1[0], models.resnet.Bottleneck) else 1
        self.out_channels_list = [64 * expansion * 2**i for i in range(4)]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = OrderedDict()
        for index, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            outputs[str(index)] = x
        return outputs


def resnet_body(
    name: str, *, norm_layer: type[nn.Module], trainable_layers: int, imagenet_state=None
) -> ResNetBody:
    """A ResNet body with the last ``trainable_layers`` of (conv1, layer1..layer4) trainable
    (0..5; with 5 the stem's BatchNorm too)."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(
            f"trainable_backbone_layers for {name} must be in 0..5, not {trainable_layers}"
        )
    resnet = getattr(models, name)(weights=None, norm_layer=norm_layer)
    if imagenet_state is not None:
        resnet.load_state_dict(imagenet_state)
    layers_to_train = list(_LAYERS_FROM_TOP[:trainable_layers])
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for param_name, parameter in resnet.named_parameters():
        if not any(param_name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)
    return ResNetBody(resnet)
