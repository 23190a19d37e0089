"""The Faster R-CNN Workbench engine: detector, data, training and export. Never imports Qt."""

from .detector import DetectorConfig, FasterRCNN, Inspection, Trace, build_model, inspect

__all__ = ["DetectorConfig", "FasterRCNN", "Inspection", "Trace", "build_model", "inspect"]
