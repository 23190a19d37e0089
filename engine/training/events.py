"""Training events as typed records, and the run's ``events.jsonl`` that holds them.

The trainer and the job around it make one small frozen dataclass per event; its
:meth:`TrainingEvent.to_dict` is the worker protocol's JSON object (see
:mod:`engine.training.worker`: ``"event"`` names the kind, ``"time"`` is Unix seconds) and one
line of ``RUN/events.jsonl``. :func:`engine.training.job.run_job` writes that file itself, so a
run from ``frcnn train``, from the GUI's worker process or from torchrun has the same files.
:func:`parse_event` turns a line back into its record (None for a kind it does not know).

Two records carry an open set of numbers, flattened into the JSON object: ``Evaluated.metrics``
(pycocotools' twelve numbers by name, ``per_class``, ``per_class_AP50``, ``images``,
``detections``) and ``WarningEvent.details`` (``split``, ``image_id``, ``path`` for an
unreadable image).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

EVENTS_FILE = "events.jsonl"
PROTOCOL_VERSION = 1  # of the worker's line protocol


def _now() -> float:
    return round(time.time(), 3)


@dataclass(frozen=True, kw_only=True)
class TrainingEvent:
    """Base of every record: ``time`` is Unix seconds when it was made."""

    EVENT: ClassVar[str] = ""
    FLAT: ClassVar[str | None] = None  # a dict field whose items sit in the JSON object itself
    time: float = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        flat = data.pop(self.FLAT) if self.FLAT else {}
        return {"event": self.EVENT, **data, **flat}


@dataclass(frozen=True, kw_only=True)
class Hello(TrainingEvent):
    """The process that trains is up (``pid``); a reader of the file checks it is alive."""

    EVENT: ClassVar[str] = "hello"
    protocol: int
    pid: int


@dataclass(frozen=True, kw_only=True)
class Started(TrainingEvent):
    """Training begins. ``total_steps``: the plan (with a time budget, the steps expected to
    fit it); ``precision``: "fp32", "bf16" or "fp16" (autocast); ``time_budget_s``: None
    without a budget; ``left_out``: per split, images of the split not trained or evaluated on,
    by reason (a status other than done, or "missing"/"unreadable" file)."""

    EVENT: ClassVar[str] = "started"
    device: str
    amp: bool
    precision: str
    train_images: int
    val_images: int
    classes: list[str]
    epochs: int
    steps_per_epoch: int
    total_steps: int
    batch_size: int
    world_size: int
    lr: float
    resumed_at_step: int
    time_budget_s: float | None = None
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Step(TrainingEvent):
    """One optimizer step done. ``epoch`` is 1-based, ``batch`` of ``batches`` in it;
    ``images_per_s`` and ``eta_s`` (seconds to the run's end) are None until measured."""

    EVENT: ClassVar[str] = "step"
    step: int
    total_steps: int
    epoch: int
    batch: int
    batches: int
    losses: dict[str, float]
    loss: float
    lr: float
    images_per_s: float | None
    eta_s: float | None


@dataclass(frozen=True, kw_only=True)
class Evaluating(TrainingEvent):
    """Evaluation on the validation images under way: ``done`` of ``total`` images run
    (0 when it begins)."""

    EVENT: ClassVar[str] = "evaluating"
    epoch: int
    step: int
    done: int
    total: int


@dataclass(frozen=True, kw_only=True)
class Evaluated(TrainingEvent):
    """An evaluation's results; ``metrics`` are flattened into the JSON object."""

    EVENT: ClassVar[str] = "eval"
    FLAT: ClassVar[str | None] = "metrics"
    epoch: int
    step: int
    metrics: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class CheckpointSaved(TrainingEvent):
    """``kind`` "last" (resumable: optimizer state) or "best" (weights, highest AP)."""

    EVENT: ClassVar[str] = "checkpoint"
    kind: str
    path: str
    step: int
    AP: float | None = None


@dataclass(frozen=True, kw_only=True)
class Paused(TrainingEvent):
    EVENT: ClassVar[str] = "paused"
    step: int


@dataclass(frozen=True, kw_only=True)
class Resumed(TrainingEvent):
    EVENT: ClassVar[str] = "resumed"
    step: int


@dataclass(frozen=True, kw_only=True)
class WarningEvent(TrainingEvent):
    """Training goes on; ``message`` says what and why. ``details`` are flattened."""

    EVENT: ClassVar[str] = "warning"
    FLAT: ClassVar[str | None] = "details"
    kind: str
    message: str
    step: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Stopped(TrainingEvent):
    """Ended before its plan on request: ``reason`` "requested" (Stop, Ctrl-C) or
    "max_steps"; ``last.pt`` was written first."""

    EVENT: ClassVar[str] = "stopped"
    reason: str
    step: int


@dataclass(frozen=True, kw_only=True)
class Finished(TrainingEvent):
    """Its plan is done (all epochs, or its time budget). ``best_AP``: None without val."""

    EVENT: ClassVar[str] = "finished"
    step: int
    best_AP: float | None  # noqa: N815 (the protocol's name)


@dataclass(frozen=True, kw_only=True)
class Failed(TrainingEvent):
    """Training cannot go on: ``kind`` "nan", "oom", "data", "config" or "crash"."""

    EVENT: ClassVar[str] = "error"
    kind: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Exited(TrainingEvent):
    """Written by the GUI for a worker that died without a word: its exit status and why."""

    EVENT: ClassVar[str] = "exited"
    returncode: int | None
    message: str


RECORDS: dict[str, type[TrainingEvent]] = {
    record.EVENT: record for record in (
        Hello, Started, Step, Evaluating, Evaluated, CheckpointSaved, Paused, Resumed,
        WarningEvent, Stopped, Finished, Failed, Exited)}


def parse_event(data: dict[str, Any]) -> TrainingEvent | None:
    """The record a protocol object or ``events.jsonl`` line holds; None for an unknown kind.
    Keys a record does not name go to its flattened field (or are dropped). Raises
    TypeError when a field the record needs is absent."""
    record = RECORDS.get(data.get("event"))
    if record is None:
        return None
    names = {f.name for f in fields(record)}
    values = {k: v for k, v in data.items() if k in names}
    if record.FLAT:
        values[record.FLAT] = {k: v for k, v in data.items()
                               if k not in names and k != "event"}
    return record(**values)


class EventLog:
    """Appends events (records or protocol dicts) to ``folder/events.jsonl``, one line each,
    flushed at once (a reader, or the files after a crash, see every event up to the last).
    Thread-safe."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / EVENTS_FILE
        self._lock = threading.Lock()
        self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def append(self, event: TrainingEvent | dict) -> None:
        data = event.to_dict() if isinstance(event, TrainingEvent) else event
        with self._lock:
            if self._stream.closed:
                return
            self._stream.write(json.dumps(data) + "\n")
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
