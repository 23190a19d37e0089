"""``build_model``: the one place where a configuration becomes a detector."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import torch

from . import weights as pretrained
from .anchors import AnchorSpec
from .backbones import BACKBONES, build_backbone, efficientnet_lite, imagenet_weights_enum
from .backbones.frozen_bn import FrozenBatchNorm2d
from .box_coding import BoxCoder
from .config import DetectorConfig
from .model import FasterRCNN
from .roi_heads import BOX_HEAD_CODER, DetectionSettings, FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import ProposalSettings, RegionProposalNetwork, RPNHead
from .transform import Transform

WEIGHTS_CHOICES = ("none", "imagenet", "coco")


def build_model(
    backbone: str = "resnet50",
    num_classes: int = 91,
    weights: str | os.PathLike | None = None,
    *,
    report: Callable[[str], None] | None = None,
    **kwargs,
) -> FasterRCNN:
    """A Faster R-CNN with an FPN on ``backbone`` for ``num_classes`` classes (background
    included, so a project with K categories needs K + 1).

    ``weights``: None or "none" (random, trainable BatchNorm, as torchvision without weights);
    "imagenet" (the backbone's ImageNet classifier weights, BatchNorm frozen); "coco"
    (torchvision's COCO detector, resnet50 and mobilenet_v3_large only; with another
    ``num_classes`` all but the class predictor are loaded); or a path to a checkpoint (ours
    or a torchvision state dict; from a model with another number of classes all but the
    class predictor are loaded, see :func:`load_initial_weights`). ``report`` receives a line
    saying what was left out of those weights, when anything was.
    ``kwargs`` are the fields of :class:`DetectorConfig`, named as torchvision's ``FasterRCNN``
    arguments (``min_size``, ``rpn_pre_nms_top_n_test``, ``box_score_thresh``, ...).
    """
    kind = "none" if weights is None else str(weights)
    if kind not in WEIGHTS_CHOICES and not (Path(kind).suffix or Path(kind).exists()):
        raise ValueError(
            f"weights must be one of {', '.join(WEIGHTS_CHOICES)} or a checkpoint file, "
            f"not {kind!r}"
        )
    checkpoint_state = None
    if kind not in WEIGHTS_CHOICES:
        checkpoint_state = pretrained.load_checkpoint_state(kind)
    pretrained_init = kind != "none"
    config = DetectorConfig(backbone=backbone, num_classes=num_classes, **kwargs)
    if config.frozen_batchnorm is None:
        # Fine-tuning keeps pretrained statistics fixed; a checkpoint tells by its keys (only
        # trainable BatchNorm counts batches).
        config.frozen_batchnorm = pretrained_init and not (
            checkpoint_state is not None
            and any(k.endswith("num_batches_tracked") for k in checkpoint_state)
        )
    if config.trainable_backbone_layers is None:
        spec = BACKBONES.get(backbone)
        if spec is not None:
            config.trainable_backbone_layers = (
                spec.default_trainable_layers if pretrained_init else spec.max_trainable_layers
            )

    imagenet_state = None
    if kind == "imagenet":
        imagenet_state = _imagenet_state(backbone)
    model = model_from_config(config, imagenet_state=imagenet_state)

    if kind == "coco":
        load_coco_weights(model, backbone, num_classes, report=report)
    elif checkpoint_state is not None:
        note = load_initial_weights(model, checkpoint_state, f"the weights in {kind}")
        if note and report is not None:
            report(note)
    return model


CLASS_PREDICTOR = "roi_heads.box_predictor."


def load_initial_weights(model: FasterRCNN, state: dict[str, torch.Tensor],
                         source: str) -> str | None:
    """Load ``state`` (torchvision's key names) into ``model`` to start training from.

    Weights from a detector with another number of classes fit everywhere but the class
    predictor (``roi_heads.box_predictor``: its (K + 1)-row class scores and 4 (K + 1) box
    deltas); those two layers keep their fresh initialization and the returned note says so.
    None when everything was loaded. Weights that do not fit elsewhere (another backbone or
    architecture) raise a ValueError in one line: how many fit, and what to do."""
    own = model.state_dict()
    wrong_shape = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    elsewhere = [k for k in (*wrong_shape, *missing, *unexpected)
                 if not k.startswith(CLASS_PREDICTOR)]
    if elsewhere:
        fitting = sum(1 for k in own if k in state and state[k].shape == own[k].shape)
        raise ValueError(
            f"{source} do not fit this {model.config.backbone} Faster R-CNN: {fitting} of "
            f"{len(own)} tensors fit ({len(missing)} missing, {len(unexpected)} unknown, "
            f"{len(wrong_shape)} of another shape; first: {elsewhere[0]}). They come from "
            f"another backbone or architecture: choose the backbone they were trained with, or "
            f"start from imagenet or coco weights")
    if not wrong_shape and not missing:
        model.load_state_dict(state)
        return None
    model.load_state_dict({k: v for k, v in state.items() if k not in wrong_shape},
                          strict=False)
    theirs = state.get(CLASS_PREDICTOR + "cls_score.weight")
    counted = (f"{theirs.shape[0]} classes (background included), this model has "
               f"{model.num_classes}" if theirs is not None else "no class predictor")
    return (f"{source} are from a detector with {counted}: loaded all but the class predictor "
            f"({CLASS_PREDICTOR.rstrip('.')}), which starts from scratch")


def model_from_config(
    config: DetectorConfig, imagenet_state: dict[str, torch.Tensor] | None = None
) -> FasterRCNN:
    """The detector a complete configuration describes, with random heads."""
    if config.backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {config.backbone!r}; choose one of {', '.join(BACKBONES)}"
        )
    if config.num_classes < 2:
        raise ValueError("num_classes counts the background too, so it must be at least 2")
    spec = BACKBONES[config.backbone]
    frozen = bool(config.frozen_batchnorm)
    trainable = (
        config.trainable_backbone_layers
        if config.trainable_backbone_layers is not None
        else spec.max_trainable_layers
    )
    backbone = build_backbone(
        config.backbone,
        imagenet_state=imagenet_state,
        frozen_bn=frozen,
        trainable_layers=trainable,
        fold_bn=config.fold_frozen_batchnorm,
    )
    anchor_spec = AnchorSpec(
        sizes=config.anchor_sizes or spec.anchor_sizes,
        aspect_ratios=config.aspect_ratios or spec.aspect_ratios,
    )
    if len(anchor_spec.sizes) != len(spec.strides):
        raise ValueError(
            f"{config.backbone} has {len(spec.strides)} feature levels but the anchors are "
            f"configured for {len(anchor_spec.sizes)}"
        )
    if len(set(anchor_spec.num_anchors_per_location)) != 1:
        raise ValueError("every level needs the same number of anchors per location")

    rpn_score_thresh = (
        config.rpn_score_thresh if config.rpn_score_thresh is not None else spec.rpn_score_thresh
    )
    rpn = RegionProposalNetwork(
        RPNHead(backbone.out_channels, anchor_spec.num_anchors_per_location[0]),
        train_settings=ProposalSettings(
            config.rpn_pre_nms_top_n_train, config.rpn_post_nms_top_n_train,
            config.rpn_nms_thresh, rpn_score_thresh,
        ),
        test_settings=ProposalSettings(
            config.rpn_pre_nms_top_n_test, config.rpn_post_nms_top_n_test,
            config.rpn_nms_thresh, rpn_score_thresh,
        ),
        fg_iou_thresh=config.rpn_fg_iou_thresh,
        bg_iou_thresh=config.rpn_bg_iou_thresh,
        batch_size_per_image=config.rpn_batch_size_per_image,
        positive_fraction=config.rpn_positive_fraction,
    )
    output_size = 7
    roi_heads = RoIHeads(
        TwoMLPHead(backbone.out_channels * output_size**2, config.representation_size),
        FastRCNNPredictor(config.representation_size, config.num_classes),
        strides=list(spec.strides[: spec.pooled_levels]),
        fg_iou_thresh=config.box_fg_iou_thresh,
        bg_iou_thresh=config.box_bg_iou_thresh,
        batch_size_per_image=config.box_batch_size_per_image,
        positive_fraction=config.box_positive_fraction,
        detection_settings=DetectionSettings(
            score_thresh=config.box_score_thresh,
            nms_thresh=config.box_nms_thresh,
            detections_per_img=config.box_detections_per_img,
        ),
        box_coder=BoxCoder(config.bbox_reg_weights) if config.bbox_reg_weights else BOX_HEAD_CODER,
        output_size=output_size,
    )
    transform = Transform(
        min_size=config.min_size,
        max_size=config.max_size,
        image_mean=config.image_mean or spec.image_mean,
        image_std=config.image_std or spec.image_std,
    )
    model = FasterRCNN(
        transform=transform,
        backbone=backbone,
        anchor_spec=anchor_spec,
        rpn=rpn,
        roi_heads=roi_heads,
        num_classes=config.num_classes,
        pooled_levels=spec.pooled_levels,
        channels_last=config.channels_last,
    )
    model.config = config
    if config.frozen_batchnorm_eps is not None:
        _set_frozen_batchnorm_eps(model, config.frozen_batchnorm_eps)
    if config.channels_last:
        model.backbone.to(memory_format=torch.channels_last)
        model.rpn.head.to(memory_format=torch.channels_last)
    return model


def _imagenet_state(backbone: str) -> dict[str, torch.Tensor] | None:
    if backbone == "efficientnet_lite0":
        return efficientnet_lite.imagenet_state_dict()
    entry = imagenet_weights_enum(backbone)
    if entry is None:
        raise ValueError(f"no ImageNet weights are known for {backbone!r}")
    return pretrained.load_torchvision_weights(entry)


def load_coco_weights(model: FasterRCNN, backbone: str, num_classes: int, *,
                      report: Callable[[str], None] | None = None) -> None:
    """Load torchvision's COCO detector weights into ``model``, as torchvision does (with
    another ``num_classes``, all but the class predictor: ``report`` is told so)."""
    entry = pretrained.COCO_WEIGHTS.get(backbone)
    if entry is None:
        raise ValueError(
            f"COCO weights exist for {', '.join(pretrained.COCO_WEIGHTS)} only, not {backbone!r}"
        )
    state = pretrained.load_torchvision_weights(entry)
    coco_classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    if num_classes != coco_classes:
        # Fine-tuning to the user's classes: every weight but the class predictor.
        state = {k: v for k, v in state.items() if not k.startswith("roi_heads.box_predictor.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("roi_heads.box_predictor.") for k in missing):
            raise RuntimeError(
                f"COCO weights do not fit: missing {missing}, unexpected {unexpected}"
            )
        if report is not None:
            report(f"the COCO weights are from a detector with {coco_classes} classes "
                   f"(background included), this model has {num_classes}: loaded all but the "
                   f"class predictor ({CLASS_PREDICTOR.rstrip('.')}), which starts from scratch")
    else:
        model.load_state_dict(state)
    if backbone == "resnet50":
        # torchvision's v1 COCO weights were trained with FrozenBatchNorm eps 0; the config
        # says so too, so that a checkpoint of this model loads with the same epsilon.
        _set_frozen_batchnorm_eps(model, 0.0)
        model.config = dataclasses.replace(model.config, frozen_batchnorm_eps=0.0)


def _set_frozen_batchnorm_eps(model: FasterRCNN, eps: float) -> None:
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = eps



