"""The torchvision format: a state dict that loads strictly into torchvision's own Faster R-CNN.

Our detector's keys are torchvision's (``engine/detector`` keeps them so), so the export is the
state dict itself, plus a ``num_batches_tracked`` counter for every BatchNorm that lacks one:
a model fine-tuned with frozen BatchNorm has none, while torchvision's builders without
pretrained weights make plain BatchNorm2d layers that require it (its FrozenBatchNorm2d drops
the counter on load, so the file loads into either). Folded BatchNorm keeps the unfolded
layout in the state dict (``backbones/frozen_bn.py``), so nothing needs unfolding.

Which torchvision model it loads into, with the keyword arguments that give our detections
(the resize sizes, the normalization, the proposal and detection settings), is
:func:`torchvision_recipe`; :func:`build_torchvision_model` builds it, and the model card
carries the same recipe as JSON and as a few lines of Python.

Backbones torchvision can build: resnet50 and mobilenet_v3_large (its
``fasterrcnn_resnet50_fpn`` and ``fasterrcnn_mobilenet_v3_large_fpn``), and resnet18, 34 and
101 (its ``FasterRCNN`` on ``resnet_fpn_backbone``, the same FPN on the same ResNet).
EfficientNet-Lite0 has no torchvision counterpart (torchvision's EfficientNets have
squeeze-excitation and SiLU; Lite0 has neither and pads as TensorFlow): export it as
TorchScript or ONNX.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from ..detector.backbones import BACKBONES
from ..detector.model import FasterRCNN
from .errors import ExportError

# backbone -> how torchvision builds it.
NAMED_BUILDERS = {
    "resnet50": "fasterrcnn_resnet50_fpn",
    "mobilenet_v3_large": "fasterrcnn_mobilenet_v3_large_fpn",
}
RESNET_FPN_BACKBONES = ("resnet18", "resnet34", "resnet101")
SUPPORTED_BACKBONES = (*NAMED_BUILDERS, *RESNET_FPN_BACKBONES)
TORCHVISION_REPRESENTATION_SIZE = 1024
TORCHVISION_BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def torchvision_state_dict(model: FasterRCNN) -> dict[str, torch.Tensor]:
    """The model's state dict (torchvision's key names), on the CPU, with a zero
    ``num_batches_tracked`` for every BatchNorm that has none."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    for key in [k for k in state if k.endswith(".running_mean")]:
        counter = key.removesuffix("running_mean") + "num_batches_tracked"
        state.setdefault(counter, torch.tensor(0, dtype=torch.long))
    # Keep torchvision's order: each counter right after its layer's statistics.
    ordered: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".num_batches_tracked"):
            continue
        ordered[key] = value
        if key.endswith(".running_var"):
            counter = key.removesuffix("running_var") + "num_batches_tracked"
            ordered[counter] = state[counter]
    return ordered


def torchvision_recipe(model: FasterRCNN) -> dict[str, Any]:
    """How torchvision builds the equivalent model: ``{"backbone", "builder", "kwargs"}``, all
    plain data. ``kwargs`` are the inference settings of our model, named as torchvision's
    ``FasterRCNN`` arguments. Raises :class:`ExportError`."""
    config = getattr(model, "config", None)
    backbone = config.backbone if config is not None else None
    if backbone not in SUPPORTED_BACKBONES:
        raise ExportError(
            f"the torchvision format exists for the backbones {', '.join(SUPPORTED_BACKBONES)}; "
            f"this model's backbone is {backbone}, which torchvision cannot build (export it "
            "as torchscript or onnx instead)"
        )
    spec = BACKBONES[backbone]
    anchors = model.anchor_spec
    if _floats(anchors.sizes) != _floats(spec.anchor_sizes) or _floats(
        anchors.aspect_ratios
    ) != _floats(spec.aspect_ratios):
        raise ExportError(
            f"this model uses its own anchors (sizes {anchors.sizes}, aspect ratios "
            f"{anchors.aspect_ratios}); the torchvision format supports {backbone}'s default "
            "anchors only (export it as torchscript or onnx instead)"
        )
    representation = model.roi_heads.box_head.fc7.out_features
    if representation != TORCHVISION_REPRESENTATION_SIZE:
        raise ExportError(
            f"this model's box head has representation size {representation}; torchvision's "
            f"builders make {TORCHVISION_REPRESENTATION_SIZE} (export it as torchscript or onnx "
            "instead)"
        )
    transform, rpn, heads = model.transform, model.rpn.test_settings, model.roi_heads
    kwargs: dict[str, Any] = {
        "num_classes": int(model.num_classes),
        "min_size": int(transform.min_size[-1]),
        "max_size": int(transform.max_size),
        "image_mean": [float(v) for v in transform.image_mean],
        "image_std": [float(v) for v in transform.image_std],
        "rpn_pre_nms_top_n_test": int(rpn.pre_nms_top_n),
        "rpn_post_nms_top_n_test": int(rpn.post_nms_top_n),
        "rpn_nms_thresh": float(rpn.nms_thresh),
        "rpn_score_thresh": float(rpn.score_thresh),
        "box_score_thresh": float(heads.detection_settings.score_thresh),
        "box_nms_thresh": float(heads.detection_settings.nms_thresh),
        "box_detections_per_img": int(heads.detection_settings.detections_per_img),
    }
    weights = [float(w) for w in heads.box_coder.weights]
    if weights != list(TORCHVISION_BOX_CODER_WEIGHTS):
        kwargs["bbox_reg_weights"] = weights
    if backbone in NAMED_BUILDERS:
        builder = f"torchvision.models.detection.{NAMED_BUILDERS[backbone]}"
    else:
        builder = "torchvision.models.detection.FasterRCNN on resnet_fpn_backbone"
    return {"backbone": backbone, "builder": builder, "kwargs": kwargs}


def build_torchvision_model(recipe: dict[str, Any]) -> nn.Module:
    """torchvision's Faster R-CNN as ``recipe`` describes it, with random weights."""
    from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
    from torchvision.models.detection import (
        fasterrcnn_mobilenet_v3_large_fpn,
        fasterrcnn_resnet50_fpn,
    )
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    kwargs = dict(recipe["kwargs"])
    backbone = recipe["backbone"]
    if backbone == "resnet50":
        return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kwargs)
    if backbone == "mobilenet_v3_large":
        return fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, **kwargs)
    body = resnet_fpn_backbone(backbone_name=backbone, weights=None)
    return TorchvisionFasterRCNN(body, **kwargs)


def loading_code(recipe: dict[str, Any], file_name: str) -> str:
    """Python that loads the exported file with torchvision alone (for the model card)."""
    kwargs = ", ".join(f"{k}={json.dumps(v)}" for k, v in recipe["kwargs"].items())
    backbone = recipe["backbone"]
    if backbone in NAMED_BUILDERS:
        builder = NAMED_BUILDERS[backbone]
        lines = [
            "import torch",
            f"from torchvision.models.detection import {builder}",
            f"model = {builder}(weights=None, weights_backbone=None, {kwargs})",
        ]
    else:
        lines = [
            "import torch",
            "from torchvision.models.detection import FasterRCNN",
            "from torchvision.models.detection.backbone_utils import resnet_fpn_backbone",
            f"model = FasterRCNN(resnet_fpn_backbone(backbone_name={backbone!r}, weights=None), "
            f"{kwargs})",
        ]
    lines += [
        f"model.load_state_dict(torch.load({file_name!r}, weights_only=True))",
        "model.eval()",
    ]
    return "\n".join(lines)


def save_torchvision(model: FasterRCNN, path) -> dict[str, Any]:
    """Write the state dict to ``path``; returns the recipe (raises
    :class:`ExportError` before writing anything)."""
    recipe = torchvision_recipe(model)
    torch.save(torchvision_state_dict(model), path)
    return recipe


def _floats(levels) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in level) for level in levels)
