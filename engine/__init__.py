"""The Faster R-CNN Workbench engine: detector, data, training and export. Never imports Qt."""

from .detector import DetectorConfig, FasterRCNN, build_model

__all__ = ["DetectorConfig", "FasterRCNN", "build_model"]
