"""Our Faster R-CNN with FPN, stage by stage; see ``model.py`` for the whole pipeline and
``inspection.py`` for recording every stage of it."""

from .build import build_model, model_from_config
from .config import DetectorConfig
from .inspection import Inspection, inspect
from .model import FasterRCNN
from .trace import Trace, load_trace, save_trace

__all__ = [
    "DetectorConfig",
    "FasterRCNN",
    "Inspection",
    "Trace",
    "build_model",
    "inspect",
    "load_trace",
    "model_from_config",
    "save_trace",
]
