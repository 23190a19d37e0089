"""Our Faster R-CNN with FPN, stage by stage; see ``model.py`` for the whole pipeline."""

from .build import build_model, model_from_config
from .config import DetectorConfig
from .model import FasterRCNN

__all__ = ["DetectorConfig", "FasterRCNN", "build_model", "model_from_config"]
