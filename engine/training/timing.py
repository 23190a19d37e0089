"""How long a training job will take here: a few real training steps, timed.

:func:`measure_job` builds the job's trainer (its model, data and settings, in a throwaway
folder: the run's folder is not touched), runs one untimed step (first-call costs) and then
``steps`` timed ones on the job's own images, and returns an :class:`ExpectedDuration`: the
seconds per step measured and what they make of the job's plan (its steps and evaluations, or
its time budget). The model's weights change during the measurement; nothing is saved.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, replace

import torch

from .job import TrainingJob, make_trainer
from .progress import format_duration
from .trainer import EVAL_TIME_PER_TRAIN_TIME


@dataclass(frozen=True)
class ExpectedDuration:
    """``seconds_per_step`` measured over ``steps_timed`` steps of ``images_per_step``
    images; ``total_steps`` planned (with a time budget: the steps expected to fit it);
    ``eval_s`` the evaluations' expected time; ``total_s`` the whole run's; ``budget_s`` the
    time budget (None without one)."""

    seconds_per_step: float
    steps_timed: int
    images_per_step: int
    total_steps: int
    steps_per_epoch: int
    evaluations: int
    eval_s: float
    total_s: float
    budget_s: float | None = None

    def describe(self) -> str:
        """In words, e.g. "about 12:40: 180 steps at 3.9 s a step (3 steps timed here), 3
        evaluations"."""
        timed = (f"{self.seconds_per_step:.1f} s a step ({self.steps_timed} "
                 f"step{'s' if self.steps_timed != 1 else ''} timed here)")
        epochs = self.total_steps / max(self.steps_per_epoch, 1)
        if self.budget_s is not None:
            return (f"{format_duration(self.budget_s)} (the time budget): about "
                    f"{self.total_steps} steps, {epochs:.1f} epochs, at {timed}, then an "
                    f"evaluation")
        return (f"about {format_duration(self.total_s)}: {self.total_steps} steps at {timed}, "
                f"{self.evaluations} evaluation{'s' if self.evaluations != 1 else ''}")


@contextlib.contextmanager
def _flushing_denormals():
    """As training does (see :meth:`Trainer.run`): denormal floats as zero on the CPU."""
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(False)


def measure_job(job: TrainingJob, steps: int = 3, cancelled=lambda: False
                ) -> ExpectedDuration | None:
    """Time ``steps`` training steps of ``job`` after one untimed one (see the module
    docstring); None when ``cancelled()`` turned true. Raises TrainingError as training
    would."""
    with tempfile.TemporaryDirectory(prefix="frcnn-timing-") as folder, _flushing_denormals():
        trainer = make_trainer(replace(job, out=folder, resume=None))
        settings = trainer.settings
        per_epoch = trainer.steps_per_epoch()
        batches = trainer._batches(0)
        trainer.model.train()
        seconds = []
        for index in range(steps + 1):
            if cancelled():
                return None
            samples = [trainer.train_data[i] for i in batches[index % len(batches)]]
            start = time.perf_counter()
            trainer._step(samples, per_epoch)
            if index > 0:
                seconds.append(time.perf_counter() - start)
    per_step = sum(seconds) / len(seconds)
    images = settings.batch_size
    val = len(trainer.val_data)
    eval_once = val * per_step / images * EVAL_TIME_PER_TRAIN_TIME
    if settings.time_budget_s is not None:
        budget = settings.time_budget_s
        training = max(0.0, budget - eval_once - 2.0)
        total = round(training / per_step)
        return ExpectedDuration(per_step, steps, images, total, per_epoch, 1 if val else 0,
                                eval_once, budget, budget)
    total = per_epoch * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    evaluations = 0 if not val else (
        settings.epochs // settings.eval_every if settings.eval_every else 0)
    evaluations = max(evaluations, 1 if val else 0)
    eval_s = evaluations * eval_once
    return ExpectedDuration(per_step, steps, images, total, per_epoch, evaluations, eval_s,
                            total * per_step + eval_s)
