"""The terminal's view of a training run: a progress bar, evaluation progress and results."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ..text import count
from .data import describe_left_out


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
    line redraws in place; in a log (not a terminal) a line every ``log_every`` steps and at
    the end of the first step ``every_s`` seconds after the last line. With
    :meth:`start_heartbeat` a thread adds a line when a step (or the start, or an evaluation)
    keeps the log silent for 1.5 ``every_s``: a log never goes silent for longer. Evaluation says
    when it begins and how far it got. :meth:`close` ends the heartbeat."""

    def __init__(self, stream: TextIO | None = None, width: int = 28,
                 log_every: int = 20, every_s: float = 20.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # sys.stderr as it is now, not as it was at import (a redirect may have replaced it).
        stream = stream if stream is not None else sys.stderr
        self.stream = stream
        self.width = width
        self.log_every = log_every
        self.every_s = every_s
        self.clock = clock
        self.interactive = stream.isatty()
        self._open_line = False
        self._last_line = clock()
        self._lock = threading.RLock()
        self._state = "starting: loading the model and the images"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_heartbeat(self, period_s: float = 1.0) -> None:
        """In a log, check every ``period_s`` whether a line is due (see :meth:`beat`)."""
        if self.interactive or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(period_s):
                self.beat()

        self._thread = threading.Thread(target=loop, name="progress-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """A line saying where the run is when 1.5 ``every_s`` have passed since the last one
        (the steps' own lines come first when steps keep ending)."""
        with self._lock:
            silent = self.clock() - self._last_line
            if not self.interactive and silent >= 1.5 * self.every_s:
                self._print(f"{self._state} ({format_duration(silent)} since the last line)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
    def __call__(self, event: dict) -> None:
        with self._lock:
            self._show(event)

    def _show(self, event: dict) -> None:
        kind = event["event"]
        if kind == "step":
            self._step(event)
            return
        if kind == "evaluating":
            self._evaluating(event)
            return
        self._end_line()
        if kind == "started":
            self._state = "at step 0: the first step is under way"
            budget = event.get("time_budget_s")
            plan = (f"a time budget of {format_duration(budget)}" if budget is not None else
                    f"{count(event['epochs'], 'epoch')} of "
                    f"{count(event['steps_per_epoch'], 'step')}")
            precision = event.get("precision", "fp32")
            self._print(
                f"training on {event['device']}"
                f"{f' ({precision} autocast)' if precision != 'fp32' else ''}: "
                f"{event['train_images']} train / {count(event['val_images'], 'val image')}, "
                f"{count(len(event['classes']), 'class')}, {plan}, batch {event['batch_size']}, "
                f"lr {event['lr']:.4g}"
                + (f", resumed at step {event['resumed_at_step']}"
                   if event["resumed_at_step"] else ""))
            left_out = describe_left_out(event.get("left_out") or {})
            if left_out:
                self._print(f"left out of training and evaluation: {left_out}. Only images "
                            "marked done (with a readable file) are used: frcnn set-status "
                            "--status done marks them")
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
        elif kind == "stopped":
            why = {"max_steps": " (--max-steps)"}.get(event.get("reason"), "")
            self._print(f"stopped at step {event['step']}{why}")
        elif kind in ("finished", "paused", "resumed"):
            self._print(f"{kind} at step {event['step']}")

    def _step(self, event: dict) -> None:
        total = max(event["total_steps"], event["step"], 1)
        done = event["step"] / total
        filled = round(done * self.width)
        rate = event["images_per_s"]
        self._state = f"at step {event['step']}/{total}: the next step is under way"
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {event['step']}/"
                f"{total} epoch {event['epoch']} loss {event['loss']:.3f} "
                f"lr {event['lr']:.3g} {rate or 0:.2f} img/s ETA {format_duration(event['eta_s'])}")
        if self.interactive:
            self.stream.write("\r" + line)
            self.stream.flush()
            self._open_line = True
        elif (event["step"] % self.log_every == 0 or event["step"] == event["total_steps"]
              or self.clock() - self._last_line >= self.every_s):
            self._print(line)

    def _evaluating(self, event: dict) -> None:
        done, total = event["done"], event["total"]
        self._state = f"evaluating: {done}/{total} images done"
        if done == 0:
            self._end_line()
            self._print(f"evaluating on {count(total, 'val image')}...")
        elif self.interactive:
            self.stream.write(f"\revaluating: {done}/{total} images")
            self.stream.flush()
            self._open_line = True
        elif done == total or self.clock() - self._last_line >= self.every_s:
            self._print(f"evaluating: {done}/{total} images")

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last_line = self.clock()
