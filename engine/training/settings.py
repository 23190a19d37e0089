"""Training settings: one dataclass, the recipe torchvision's detection reference uses.

SGD with momentum 0.9 and weight decay 1e-4; learning rate 0.02 for a global batch of 16
images, scaled linearly to the batch size actually used; a linear warmup over the first
iterations from a thousandth of the rate; the rate divided by 10 at 16/26 and 22/26 of the
epochs (the reference's steps for its 26-epoch schedule, kept as fractions so that shorter
schedules decay at the same points); horizontal flips; batches grouped by aspect ratio; mixed
precision on CUDA (float16) and on CPUs that compute bfloat16 natively (see
:mod:`engine.detector.precision`).

With a time budget (``time_budget_s``) the same schedule is laid over time instead of steps:
the warmup takes the recipe's steps (``warmup_iters``, at most an epoch) or 30% of the training
time, whichever comes first, but never fewer than :data:`BUDGET_MIN_WARMUP_STEPS` steps (a short
budget or a tiny data set would otherwise reach the full rate within a dozen updates, and a
detector's RPN losses can then explode to NaN: seen with a one-minute budget on the demo),
the decays come at 16/26 and 22/26 of the training time (each step's rate taken at the time it
is expected to end), and the run ends when the budget is spent, with its evaluation inside it
(see :meth:`TrainSettings.budget_lr_factor`). Epochs then
do not limit the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

REFERENCE_LR = 0.02
REFERENCE_BATCH = 16
BUDGET_WARMUP_FRACTION = 0.3  # of the training time, at most, with a time budget
# Divergence depends on how many updates run at a high rate, not on how long they take, so the
# budget's time-based warmup has a floor in steps (Goyal et al. 2017, "Accurate, Large Minibatch
# SGD", warm up gradually over several hundred to thousands of updates; 50 is the least that kept
# the demo's one-minute and five-image runs finite at the linear-scaling rate).
BUDGET_MIN_WARMUP_STEPS = 50


@dataclass
class TrainSettings:
    epochs: int = 12
    batch_size: int = 2  # images per step per process
    lr: float | None = None  # None: REFERENCE_LR * global batch / REFERENCE_BATCH
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 1000  # capped at one epoch, as the reference does
    warmup_factor: float = 1e-3
    lr_steps: tuple[float, ...] = (16 / 26, 22 / 26)  # fractions of the epochs
    lr_gamma: float = 0.1
    flip_probability: float = 0.5
    group_by_aspect: bool = True
    amp: bool | None = None  # None: on for CUDA and for CPUs with bf16; False: float32
    seed: int = 0
    eval_every: int = 1  # epochs; 0 evaluates only at the end
    max_steps: int | None = None  # stop (with a checkpoint) after this many steps in all
    workers: int | None = None  # image-loading processes; None: 0 on the CPU, 2 on CUDA
    time_budget_s: float | None = None  # train this long (seconds, evaluation included)

    def base_lr(self, world_size: int = 1) -> float:
        if self.lr is not None:
            return self.lr
        return REFERENCE_LR * self.batch_size * world_size / REFERENCE_BATCH

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        """Multiplier of the base rate at ``step`` (0-based): warmup, then step decay."""
        warmup = min(self.warmup_iters, max(steps_per_epoch - 1, 1))
        factor = 1.0
        if step < warmup:
            alpha = step / warmup
            factor = self.warmup_factor * (1 - alpha) + alpha
        milestones = [round(f * self.epochs * steps_per_epoch) for f in self.lr_steps]
        return factor * self.lr_gamma ** sum(step >= m for m in milestones)

    def budget_lr_factor(self, step: int, fraction: float, steps_per_epoch: int) -> float:
        """Multiplier of the base rate at ``step`` (0-based) of a budgeted run that has spent
        ``fraction`` (0 to 1) of its training time: warmup over the recipe's steps
        (``warmup_iters``, at most an epoch) or :data:`BUDGET_WARMUP_FRACTION` of the time,
        whichever ends first but not before :data:`BUDGET_MIN_WARMUP_STEPS` steps (or
        ``warmup_iters``, if fewer), then a decay at each ``lr_steps`` fraction of the time."""
        least = max(min(self.warmup_iters, BUDGET_MIN_WARMUP_STEPS), 1)
        warmup = min(self.warmup_iters, max(steps_per_epoch - 1, least))
        alpha = min(1.0, max(step / warmup, fraction / BUDGET_WARMUP_FRACTION), step / least)
        factor = self.warmup_factor * (1 - alpha) + alpha
        return factor * self.lr_gamma ** sum(fraction >= f for f in self.lr_steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        values = dict(data)
        if "lr_steps" in values:
            values["lr_steps"] = tuple(values["lr_steps"])
        return cls(**values)
