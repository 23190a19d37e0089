"""The terminal's view of a training run: a progress bar and the evaluation results."""

from __future__ import annotations

import sys
from typing import TextIO

from ..text import count


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss`` or ``mm:ss`` (rounded to the second); "--:--" when unknown."""
    if seconds is None:
        return "--:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes = f"{rest // 60:02d}:{rest % 60:02d}"
    return f"{hours}:{minutes}" if hours else minutes


class TerminalProgress:
    """A report callback for :class:`~engine.training.trainer.Trainer`. On a terminal the step
    line redraws in place; in a log (not a terminal) a line every ``log_every`` steps."""

    def __init__(self, stream: TextIO | None = None, width: int = 28,
                 log_every: int = 20) -> None:
        # sys.stderr as it is now, not as it was at import (a redirect may have replaced it).
        stream = stream if stream is not None else sys.stderr
        self.stream = stream
        self.width = width
        self.log_every = log_every
        self.interactive = stream.isatty()
        self._open_line = False

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "step":
            self._step(event)
            return
        self._end_line()
        if kind == "started":
            self._print(
                f"training on {event['device']}{' with AMP' if event['amp'] else ''}: "
                f"{event['train_images']} train / {count(event['val_images'], 'val image')}, "
                f"{count(len(event['classes']), 'class')}, {count(event['epochs'], 'epoch')} "
                f"of {count(event['steps_per_epoch'], 'step')}, lr {event['lr']:.4g}"
                + (f", resumed at step {event['resumed_at_step']}"
                   if event["resumed_at_step"] else ""))
        elif kind == "eval":
            worst = sorted(event["per_class"].items(), key=lambda item: item[1])[:3]
            self._print(
                f"epoch {event['epoch']}: AP {event['AP']:.3f}  AP50 {event['AP50']:.3f}  "
                f"AP75 {event['AP75']:.3f}  (weakest: "
                + ", ".join(f"{name} {ap:.3f}" for name, ap in worst) + ")")
        elif kind == "checkpoint":
            self._print(f"saved {event['kind']} checkpoint {event['path']}")
        elif kind == "warning":
            self._print(f"warning: {event['message']}")
        elif kind in ("stopped", "finished", "paused", "resumed"):
            self._print(f"{kind} at step {event['step']}")

    def _step(self, event: dict) -> None:
        done = event["step"] / max(event["total_steps"], 1)
        filled = round(done * self.width)
        rate = event["images_per_s"]
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {event['step']}/"
                f"{event['total_steps']} epoch {event['epoch']} loss {event['loss']:.3f} "
                f"lr {event['lr']:.3g} {rate or 0:.2f} img/s ETA {format_duration(event['eta_s'])}")
        if self.interactive:
            self.stream.write("\r" + line)
            self.stream.flush()
            self._open_line = True
        elif event["step"] % self.log_every == 0 or event["step"] == event["total_steps"]:
            self._print(line)

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
