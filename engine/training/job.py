"""A training job: everything one run needs, as plain data (a JSON file for the worker).

``frcnn train``, the training worker process and ``python -m engine.training`` (torchrun)
all turn their inputs into a :class:`TrainingJob` and call :func:`run_job`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.project import Project
from ..detector.checkpoint import read_checkpoint
from ..detector.config import DetectorConfig
from .data import classes_for, left_out_counts
from .events import PROTOCOL_VERSION, EventLog, Failed, Hello
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


def resume_conflicts(saved_config: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """The detector settings in ``asked`` that differ from a checkpoint's ``saved_config``,
    as "name VALUE (asked: VALUE)" (empty: none). A checkpoint fixes its detector: its weights
    only fit the network they were trained in."""
    saved = DetectorConfig.from_dict(saved_config).to_dict()
    wanted = DetectorConfig.from_dict({**saved_config, **asked}).to_dict()
    return [f"{name} {saved[name]} (asked: {wanted[name]})" for name in sorted(asked)
            if name in saved and saved[name] != wanted[name]]


def make_trainer(job: TrainingJob, report: Report | None = None,
                 control: Control | None = None) -> Trainer:
    """The :class:`Trainer` for ``job``. Raises TrainingError ("config") for settings that
    cannot be used, among them detector settings that differ from those of the checkpoint a
    resumed run continues."""
    training = dict(job.training)
    if job.resume:
        # A resumed run keeps its recipe; what the job names (more epochs, say) wins. The step
        # limit is not part of the recipe but of the job that stopped there: carried over, it
        # would end the resumed run after one more step. Only a limit this job names applies.
        checkpoint = read_checkpoint(job.resume)
        try:
            conflicts = resume_conflicts(checkpoint.get("config") or {}, job.detector)
        except (TypeError, ValueError) as error:
            raise TrainingError("config", str(error)) from error
        if conflicts:
            raise TrainingError(
                "config",
                f"{job.resume} fixes the detector it continues: {'; '.join(conflicts)}. Leave "
                "these options out to resume, or start a new run (without --resume) to train "
                "with them")
        saved = checkpoint.get("extra", {}).get("training") or {}
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
        left_out = {split: left_out_counts(project, split)
                    for split in (job.train_split, job.val_split)}
    finally:
        project.close()
    return Trainer(train_records=train, val_records=val, classes=classes, out_dir=job.out,
                   detector=detector, settings=settings, init_weights=job.weights,
                   device=job.device, resume=job.resume, report=report, control=control,
                   left_out={split: counts for split, counts in left_out.items() if counts})


def run_job(job: TrainingJob, report: Report | None = None,
            control: Control | None = None) -> str:
    """Train as ``job`` says; "finished" or "stopped". Raises TrainingError.

    Every event goes to ``report`` and, first, to ``JOB.out/events.jsonl`` (one layout for the
    command line's runs and the GUI's), with a ``hello`` naming this process and, when
    training fails, the ``error`` (process 0 alone writes under torchrun)."""
    report = report or (lambda event: None)
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) != 0:
        return make_trainer(job, report, control).run()
    with EventLog(out) as log:
        log.append(Hello(protocol=PROTOCOL_VERSION, pid=os.getpid()))

        def tee(event: dict) -> None:
            log.append(event)
            report(event)

        try:
            return make_trainer(job, tee, control).run()
        except TrainingError as error:
            log.append(Failed(kind=error.kind, message=str(error)))
            raise
        except Exception as error:
            log.append(Failed(kind="crash", message=f"{type(error).__name__}: {error}"))
            raise
