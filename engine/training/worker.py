"""Training in a child process, spoken to over a line protocol.

The GUI never trains in its own process: a crash, an out-of-memory error or a kill of the
trainer must not take the window down. It starts ``python -m engine.training.worker --job
JOB.json`` (:class:`TrainingProcess` does this) and talks to it through pipes.

Protocol (version 1)
--------------------
stdout, one JSON object per line, each with ``"event"`` and ``"time"`` (Unix seconds); each is
a record of :mod:`engine.training.events`:

- ``hello``: ``protocol``, ``pid``: the worker is up and reading commands.
- ``started``: ``device``, ``amp``, ``train_images``, ``val_images``, ``classes``, ``epochs``,
  ``steps_per_epoch``, ``total_steps``, ``batch_size``, ``world_size``, ``lr``,
  ``resumed_at_step``, ``precision`` ("fp32", "bf16" or "fp16"), ``time_budget_s`` (null
  without a budget) and ``left_out`` (per split, the images not used by reason).
- ``step``: ``step``, ``total_steps``, ``epoch`` (1-based), ``batch``, ``batches``, ``losses``
  (the four losses by name), ``loss``, ``lr``, ``images_per_s`` and ``eta_s`` (null until
  measured).
- ``evaluating``: ``epoch``, ``step``, ``done``, ``total``: an evaluation began (``done`` 0)
  or got that far.
- ``eval``: ``epoch``, ``step``, ``AP``, ``AP50``, ``AP75``, ... (pycocotools' twelve numbers),
  ``per_class``, ``per_class_AP50``, ``images``, ``detections``.
- ``checkpoint``: ``kind`` ("last" or "best"), ``path``, ``step`` (``AP`` for "best").
- ``paused`` / ``resumed``: ``step``.
- ``warning``: ``kind``, ``message`` (a sentence naming what and why), ``step``; training
  goes on. ``kind`` "unreadable_image": an image whose file cannot be decoded was left out of
  training or evaluation (``split``, ``image_id``, ``path``); once per image and split per run.
- ``stopped``: ``reason`` ("requested" or "max_steps"), ``step``: a checkpoint was written.
- ``finished``: ``step``, ``best_AP``: all epochs, or the whole time budget, trained.
- ``error``: ``kind`` ("nan", "oom", "data", "config" or "crash"), ``message``.

stdin, one command per line: ``pause``, ``resume``, ``stop``. End of input counts as ``stop``
(the GUI went away). Exit status: 0 finished or stopped (``last.pt`` written; the last event
says which), 1 error, 2 bad job file. Anything on stderr is diagnostics for a log, never
protocol. The worker also writes every event but its first ``hello`` to the run's
``events.jsonl`` (see :func:`engine.training.job.run_job`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

from .events import PROTOCOL_VERSION

# A run that ends as the user asked (its plan done, a stop, a step limit) exits 0 after
# writing last.pt; its last event says which.
EXIT_FINISHED = EXIT_STOPPED = 0
EXIT_ERROR, EXIT_BAD_JOB = 1, 2
COMMANDS = ("pause", "resume", "stop")


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _read_commands(control) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "pause":
            control.pause()
        elif command == "resume":
            control.resume()
        elif command == "stop":
            control.stop()
            return
    control.stop()  # stdin closed: nobody is listening any more


def main(argv: list[str] | None = None) -> int:
    import time

    parser = argparse.ArgumentParser(description="the training worker (see the protocol)")
    parser.add_argument("--job", type=Path, required=True)
    args = parser.parse_args(argv)
    _emit({"event": "hello", "time": round(time.time(), 3), "protocol": PROTOCOL_VERSION,
           "pid": os.getpid()})
    from .job import TrainingJob, run_job
    from .trainer import Control, TrainingError

    try:
        job = TrainingJob.from_dict(json.loads(args.job.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        _emit({"event": "error", "time": round(time.time(), 3), "kind": "config",
               "message": f"{args.job}: {error}"})
        return EXIT_BAD_JOB
    control = Control()
    threading.Thread(target=_read_commands, args=(control,), daemon=True).start()
    try:
        outcome = run_job(job, report=_emit, control=control)
    except TrainingError as error:
        _emit({"event": "error", "time": round(time.time(), 3), "kind": error.kind,
               "message": str(error)})
        return EXIT_ERROR
    except Exception as error:  # a bug or an unforeseen failure: report it, then exit
        traceback.print_exc()
        _emit({"event": "error", "time": round(time.time(), 3), "kind": "crash",
               "message": f"{type(error).__name__}: {error}"})
        return EXIT_ERROR
    return EXIT_FINISHED if outcome == "finished" else EXIT_STOPPED


class TrainingProcess:
    """The parent's side: start a worker for a job, read its events, send it commands.

    ``events()`` yields each event dict as it arrives and ends when the worker exits; lines
    that are not JSON (a library printing to stdout) are yielded as ``{"event": "output",
    "text": ...}``. Then ``returncode`` holds the exit status.
    """

    def __init__(self, job, *, python: str = sys.executable) -> None:
        from .job import TrainingJob

        if isinstance(job, TrainingJob):
            job = job.to_dict()
        job = dict(job)
        for key in ("project", "out", "resume"):
            if job.get(key):
                job[key] = str(Path(job[key]).resolve())
        Path(job["out"]).mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="job-", suffix=".json", dir=job["out"])
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(job, stream)
        self.job_file = Path(name)
        self.stderr_path = Path(job["out"]) / "worker.log"
        self._stderr = open(self.stderr_path, "a", encoding="utf-8")  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [python, "-m", "engine.training.worker", "--job", str(self.job_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, encoding="utf-8", bufsize=1, env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def events(self, timeout: float | None = None) -> Iterator[dict]:
        """Events until the worker exits; raises ``queue.Empty`` when none comes within
        ``timeout`` seconds."""
        while True:
            line = self._lines.get(timeout=timeout)
            if line is None:
                self.process.wait()
                self._cleanup()
                return
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield {"event": "output", "text": line.rstrip("\n")}

    def send(self, command: str) -> None:
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; one of {', '.join(COMMANDS)}")
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker has already exited; its exit status tells the rest

    def pause(self) -> None:
        self.send("pause")

    def resume(self) -> None:
        self.send("resume")

    def stop(self) -> None:
        self.send("stop")

    def kill(self) -> None:
        self.process.kill()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def _cleanup(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            # A pipe the worker broke by exiting has nothing left to flush.
            with contextlib.suppress(OSError):
                stream.close()
        self.job_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
