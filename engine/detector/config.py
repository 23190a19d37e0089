"""The detector's configuration: one dataclass, saved with every checkpoint.

Field names and defaults are those of torchvision's ``FasterRCNN`` constructor, so a user who
knows torchvision knows these; fields left as None take the backbone's own default (see
:data:`engine.detector.backbones.BACKBONES`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class DetectorConfig:
    backbone: str = "resnet50"
    num_classes: int = 91
    # Transform
    min_size: int | tuple[int, ...] = 800
    max_size: int = 1333
    image_mean: tuple[float, float, float] | None = None
    image_std: tuple[float, float, float] | None = None
    # Backbone
    trainable_backbone_layers: int | None = None
    frozen_batchnorm: bool | None = None
    # The frozen BatchNorms' epsilon when it is not torchvision's 1e-5: torchvision's v1 COCO
    # weights for resnet50 were trained with 0, and a model fine-tuned from them must keep 0
    # when its checkpoint is loaded again.
    frozen_batchnorm_eps: float | None = None
    fold_frozen_batchnorm: bool = True
    # NHWC convolutions: faster on CPUs (oneDNN) and on GPUs with AMP; the same function up to
    # float rounding (turn off, with fold_frozen_batchnorm, for bit-exact torchvision parity).
    channels_last: bool = True
    # Anchors
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None
    aspect_ratios: tuple[tuple[float, ...], ...] | None = None
    # RPN
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_score_thresh: float | None = None
    # ROI heads
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    bbox_reg_weights: tuple[float, float, float, float] | None = None
    representation_size: int = 1024

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for a checkpoint or a JSON file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown detector settings: {', '.join(unknown)}")
        tuples = {"image_mean", "image_std", "bbox_reg_weights"}
        nested = {"anchor_sizes", "aspect_ratios"}
        values = dict(data)
        for key, value in data.items():
            if value is None:
                continue
            if key in tuples or (key == "min_size" and isinstance(value, list)):
                values[key] = tuple(value)
            elif key in nested:
                values[key] = tuple(tuple(level) for level in value)
        return cls(**values)
