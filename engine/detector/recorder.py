"""A side channel for the stages' intermediate results.

The detector's forward takes an optional :class:`StageRecorder`. When it is absent (plain
inference and training) nothing is kept and nothing extra is computed; when present, each stage
hands it the tensors it already has, by name, and :mod:`engine.detector.inspection` builds a
Trace from them. Stages never compute anything only for the recorder.
"""

from __future__ import annotations

from typing import Any


class StageRecorder:
    """Collects named stage outputs: ``recorder.record(name=value, ...)``, read back as
    ``recorder["name"]``. A name recorded twice keeps the last value."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def record(self, **values: Any) -> None:
        self.values.update(values)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values
