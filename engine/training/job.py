"""A training job: everything one run needs, as plain data (a JSON file for the worker).

``frcnn train``, the training worker process and ``python -m engine.training`` (torchrun)
all turn their inputs into a :class:`TrainingJob` and call :func:`run_job`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.project import Project
from ..detector.checkpoint import read_checkpoint
from ..detector.config import DetectorConfig
from .data import classes_for
from .settings import TrainSettings
from .trainer import Control, Report, Trainer, TrainingError

# Its ImageNet weights ship inside an installed package: training works offline from the start.
DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclass
class TrainingJob:
    """``project``: the project folder; ``out``: the run folder; ``weights``: "imagenet",
    "coco", "none" or a weights file; ``resume``: a checkpoint to continue (its saved training
    settings, except its step limit, under those ``training`` names); ``detector`` and
    ``training``: :class:`DetectorConfig` and :class:`TrainSettings` fields (missing ones take
    their defaults; the backbone defaults to EfficientNet-Lite0)."""

    project: str
    out: str
    weights: str = "imagenet"
    device: str = "auto"
    resume: str | None = None
    detector: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingJob:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown job fields: {', '.join(unknown)}")
        if "project" not in data or "out" not in data:
            raise ValueError("a training job needs at least 'project' and 'out'")
        return cls(**data)


def make_trainer(job: TrainingJob, report: Report | None = None,
                 control: Control | None = None) -> Trainer:
    training = dict(job.training)
    if job.resume:
        # A resumed run keeps its recipe; what the job names (more epochs, say) wins. The step
        # limit is not part of the recipe but of the job that stopped there: carried over, it
        # would end the resumed run after one more step. Only a limit this job names applies.
        saved = read_checkpoint(job.resume).get("extra", {}).get("training") or {}
        recipe = {k: v for k, v in saved.get("settings", {}).items() if k != "max_steps"}
        training = {**recipe, **training}
    try:
        detector = DetectorConfig.from_dict({"backbone": DEFAULT_BACKBONE, **job.detector})
        settings = TrainSettings.from_dict(training)
    except (TypeError, ValueError) as error:
        raise TrainingError("config", str(error)) from error
    project = Project.open(job.project)
    try:
        classes = classes_for(project.categories())
        train = project.dataset(job.train_split)
        val = project.dataset(job.val_split)
    finally:
        project.close()
    return Trainer(train_records=train, val_records=val, classes=classes, out_dir=job.out,
                   detector=detector, settings=settings, init_weights=job.weights,
                   device=job.device, resume=job.resume, report=report, control=control)


def run_job(job: TrainingJob, report: Report | None = None,
            control: Control | None = None) -> str:
    """Train as ``job`` says; "finished" or "stopped". Raises TrainingError."""
    return make_trainer(job, report, control).run()
