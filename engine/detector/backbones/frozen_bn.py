"""Frozen BatchNorm, and folding it into the convolution that precedes it.

Fine-tuning from pretrained weights keeps BatchNorm statistics fixed (torchvision's
``FrozenBatchNorm2d``): the layer is then a constant per-channel affine map
``y = x * scale + shift`` with ``scale = weight / sqrt(running_var + eps)`` and
``shift = bias - running_mean * scale``. Applied to a whole activation map that costs a full
read and write of memory per layer. Folding it into the preceding convolution's weights
(``conv(x, W * scale) + shift``) gives the same function for the price of scaling the weights,
which are far smaller than the activations, in training as in inference; gradients still reach
the convolution's own weight.

The folded modules keep every parameter and buffer under its original name, so state dicts are
unchanged: the BatchNorm module stays in place holding its statistics, and its forward becomes
the identity because the convolution already applied it.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = ["FrozenBatchNorm2d", "fold_frozen_batchnorm"]


class _FoldedAwayBatchNorm2d(FrozenBatchNorm2d):
    """Holds the statistics of a FrozenBatchNorm2d whose effect the previous conv applies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _ConvWithFrozenBatchNorm(nn.Conv2d):
    """A Conv2d that applies the FrozenBatchNorm2d following it through its weights."""

    frozen_bn: FrozenBatchNorm2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.frozen_bn
        scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
        shift = bn.bias - bn.running_mean * scale
        if self.bias is not None:
            shift = shift + self.bias * scale
        return self._conv_forward(x, self.weight * scale.reshape(-1, 1, 1, 1), shift)


def _fold_pair(conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> tuple[nn.Module, nn.Module]:
    folded_conv = _ConvWithFrozenBatchNorm.__new__(_ConvWithFrozenBatchNorm)
    folded_conv.__dict__.update(conv.__dict__)
    folded_bn = _FoldedAwayBatchNorm2d.__new__(_FoldedAwayBatchNorm2d)
    folded_bn.__dict__.update(bn.__dict__)
    # Not registered as a submodule: the BatchNorm already lives (and is saved) beside the conv.
    object.__setattr__(folded_conv, "frozen_bn", folded_bn)
    return folded_conv, folded_bn


def fold_frozen_batchnorm(module: nn.Module) -> int:
    """Fold every FrozenBatchNorm2d into the Conv2d registered right before it, in place.

    Relies on the layout of torchvision's ResNet, MobileNetV3 and our EfficientNet-Lite, where
    a conv and the BatchNorm applied to its output are registered one after the other (``conv1,
    bn1`` or ``Sequential(conv, bn, act)``). Returns the number of pairs folded.
    """
    folded = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if type(conv) is nn.Conv2d and type(bn) is FrozenBatchNorm2d:
                new_conv, new_bn = _fold_pair(conv, bn)
                setattr(parent, conv_name, new_conv)
                setattr(parent, bn_name, new_bn)
                folded += 1
    return folded
