"""A side channel for the stages' outputs, as Detectron2's ``EventStorage`` is for theirs.

The detector's forward takes an optional :class:`StageRecorder`. When it is absent (plain
inference and training) nothing is kept; when present, it receives the forward's
:class:`~engine.detector.model.DetectorOutputs`: every stage's typed outputs, the tensors the
stages made anyway. :mod:`engine.detector.inspection` builds a Trace from them. Stages never
compute anything only for the recorder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import DetectorOutputs


class StageRecorder:
    """Keeps the stage outputs of the last forward it was passed to: ``recorder.outputs``."""

    def __init__(self) -> None:
        self.outputs: DetectorOutputs | None = None

    def record(self, outputs: DetectorOutputs) -> None:
        self.outputs = outputs
