"""Exporting a trained detector for other runtimes: torchvision's Faster R-CNN (a state dict),
TorchScript and ONNX, each with a model card and checked against our model.

``export_model(checkpoint, format, out)`` is the one entry point (``frcnn export-model`` and
the GUI call it); one module per format, ``deploy.py`` for the single-image module TorchScript
and ONNX are made from, ``compare.py`` for the check, ``model_card.py`` for the card.
"""

from .api import FORMATS, ExportResult, export_formats, export_model
from .compare import Verification
from .errors import ExportCancelledError, ExportError

__all__ = ["FORMATS", "ExportCancelledError", "ExportError", "ExportResult", "Verification",
           "export_formats", "export_model"]
