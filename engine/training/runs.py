"""A project's training runs: where they live and what the files say they were.

Runs live in ``<project folder>/runs/<run name>/``; the GUI names a run by its start time
(``2026-11-25_10-41-07``). A run folder holds what the trainer writes (``last.pt``,
``best.pt``, ``metrics.jsonl``: one evaluation per line, ``worker.log``: the worker's
stderr) and:

- ``job.json`` (runs started from the GUI): the :class:`~engine.training.job.TrainingJob` it
  was started with;
- ``events.jsonl``: every training event (:mod:`engine.training.events`), one JSON object per
  line, in the order they came, appended again when the run is resumed. The training process
  writes it itself (``frcnn train`` too, so command-line runs have it as well). When the worker
  dies without saying why (killed, crashed hard), the GUI appends an ``exited`` event with
  ``returncode`` and ``message``.

:func:`list_runs` reads these back. A run's state, as far as the files tell:

- ``running``: the latest worker announced itself (``hello``) and its process is alive;
- ``paused``: so, and its last word since is ``paused`` (no ``resumed`` after it);
- ``finished``: it trained all its epochs, or for its whole time budget;
- ``stopped``: stopped on request or at ``max_steps``; ``last.pt`` holds the position;
- ``failed``: the worker reported an error, or died (``message`` says why);
- ``interrupted``: it started and then nothing more was written (the machine or the GUI went
  down with it);
- ``unknown``: nothing tells (no events and no ``last.pt``).

Runs without ``job.json`` (``frcnn train --out``) take their configuration from ``last.pt``,
and so does their state when they have no ``events.jsonl`` (written before it existed): finished
when all epochs are done, else stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..text import count
from .events import EVENTS_FILE, EventLog
from .job import TrainingJob
from .settings import TrainSettings

__all__ = ["EVENTS_FILE", "EventLog", "RunInfo", "list_runs", "new_run_folder", "read_events",
           "read_run", "write_job"]

RUNS_FOLDER = "runs"
JOB_FILE = "job.json"
METRICS_FILE = "metrics.jsonl"
RUN_NAME_FORMAT = "%Y-%m-%d_%H-%M-%S"
STATES = ("running", "paused", "finished", "stopped", "failed", "interrupted", "unknown")
# Events after which a worker says no more: how an attempt ended.
_ENDINGS = ("finished", "stopped", "error", "exited")
_TAIL_BYTES = 64 * 1024


def runs_folder(project_folder: str | os.PathLike) -> Path:
    return Path(project_folder) / RUNS_FOLDER


def new_run_folder(project_folder: str | os.PathLike, now: datetime | None = None) -> Path:
    """Create and return ``runs/<start time>`` (``-2``, ``-3``, ... when that name is taken)."""
    base = (now or datetime.now()).strftime(RUN_NAME_FORMAT)
    parent = runs_folder(project_folder)
    parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1000):
        folder = parent / (base if number == 1 else f"{base}-{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{parent}: too many runs named {base}")


def write_job(folder: str | os.PathLike, job: TrainingJob) -> Path:
    """Save ``job`` as ``folder/job.json`` (what the runs list shows as the configuration)."""
    path = Path(folder) / JOB_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(job.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def _json_lines(text: str) -> list[dict]:
    """The JSON objects of ``text``, one per line; a torn or foreign line is skipped (the last
    line of a file being written may be incomplete)."""
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_events(folder: str | os.PathLike) -> list[dict]:
    """Every event of ``folder/events.jsonl`` (empty when there is none)."""
    path = Path(folder) / EVENTS_FILE
    try:
        return _json_lines(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []


def _tail_events(path: Path) -> tuple[list[dict], bool]:
    """The events in the last 64 KiB of ``path`` and whether that was the whole file."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - _TAIL_BYTES))
            data = stream.read()
    except FileNotFoundError:
        return [], True
    return _json_lines(data.decode("utf-8", errors="replace")), size <= _TAIL_BYTES


def read_metrics(folder: str | os.PathLike) -> list[dict]:
    """The evaluations of ``folder/metrics.jsonl``, one per epoch in epoch order (an epoch
    evaluated twice, e.g. around a crash and a resume, keeps its latest line)."""
    path = Path(folder) / METRICS_FILE
    try:
        rows = _json_lines(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []
    by_epoch = {row["epoch"]: row for row in rows if "epoch" in row and "AP" in row}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl-C there: ask Windows instead
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return False
    return True


def _windows_process_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return False
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


@dataclass
class RunInfo:
    """What one run folder holds. ``job``: the job it started with (None for a run from the
    command line); ``detector``/``training``: its detector configuration and training settings
    as given (missing keys took their defaults); ``epochs``: its evaluations per epoch
    (metrics.jsonl rows: ``epoch``, ``AP``, ``AP50``, ``per_class``, ...); ``best_ap`` and
    ``best_ap50``: of the epoch with the highest AP (None before the first evaluation);
    ``step``/``total_steps``: progress at the last step event seen (None when unknown);
    ``message``: why it failed or stopped, in words."""

    name: str
    folder: Path
    state: str
    started: datetime
    job: TrainingJob | None = None
    detector: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    best: Path | None = None
    last: Path | None = None
    epochs: list[dict] = field(default_factory=list)
    best_ap: float | None = None
    best_ap50: float | None = None
    step: int | None = None
    total_steps: int | None = None
    message: str = ""

    @property
    def checkpoints(self) -> dict[str, Path]:
        """``{"best": path, "last": path}``, only those present."""
        return {kind: path for kind, path in (("best", self.best), ("last", self.last))
                if path is not None}

    def settings(self) -> TrainSettings:
        """The full training settings (the given ones over the recipe defaults)."""
        known = set(TrainSettings.__dataclass_fields__)
        return TrainSettings.from_dict({k: v for k, v in self.training.items() if k in known})

    @property
    def backbone(self) -> str | None:
        return self.detector.get("backbone")

    def can_resume(self) -> bool:
        """A last.pt to continue from, and no worker running on it now."""
        return self.last is not None and self.state in ("stopped", "failed", "interrupted")

    def describe(self) -> str:
        """The configuration in one line: backbone, weights, epochs (or time budget), batch,
        size, lr."""
        settings = self.settings()
        lr = f"lr {settings.lr:g}" if settings.lr is not None else \
            f"lr {settings.base_lr():g} (recipe)"
        parts = [self.backbone or "?"]
        if self.weights:
            parts.append(f"{Path(self.weights).name} weights")
        if settings.time_budget_s is not None:
            parts.append(f"time budget {settings.time_budget_s / 60:g} min")
        else:
            parts.append(count(settings.epochs, "epoch"))
        parts.append(f"batch {settings.batch_size}")
        if self.detector.get("min_size") is not None:
            parts.append(f"{self.detector['min_size']} px")
        parts.append(lr)
        if settings.max_steps is not None:
            parts.append(f"max {count(settings.max_steps, 'step')}")
        if settings.amp is False:
            parts.append("float32")
        return ", ".join(parts)


def _started(folder: Path, events: list[dict]) -> datetime:
    try:
        return datetime.strptime(folder.name[:19], RUN_NAME_FORMAT)
    except ValueError:
        pass
    for event in events:
        if isinstance(event.get("time"), (int, float)):
            return datetime.fromtimestamp(event["time"])
    return datetime.fromtimestamp(folder.stat().st_mtime)


def _state_from_events(events: list[dict]) -> tuple[str, str] | None:
    """(state, message) from the latest attempt's last word; None when it said nothing yet."""
    paused = None  # the latest of paused/resumed, read from the end
    for event in reversed(events):
        kind = event.get("event")
        if kind in ("paused", "resumed") and paused is None:
            paused = kind == "paused"
        if kind == "finished":
            return "finished", ""
        if kind == "stopped":
            reason = "at its step limit" if event.get("reason") == "max_steps" else "on request"
            return "stopped", f"stopped {reason} at step {event.get('step')}"
        if kind in ("error", "exited"):
            return "failed", str(event.get("message", "the training process failed"))
        if kind == "hello":
            pid = event.get("pid")
            if isinstance(pid, int) and process_alive(pid):
                return ("paused", "") if paused else ("running", "")
            return "interrupted", "the training process ended without a word (it was stopped " \
                                  "with the program or the computer)"
    return None


def _from_checkpoint(path: Path) -> dict | None:
    """The configuration and training state of a checkpoint, read without loading the weights
    (memory-mapped, ``weights_only=True``); None when it cannot be read."""
    from ..safe_load import load_torch_file

    try:
        data = load_torch_file(path, mmap=True)
    except (ValueError, OSError):  # a damaged or foreign file: the run is listed without it
        return None
    if not isinstance(data, dict):
        return None
    training = (data.get("extra") or {}).get("training") or {}
    return {"config": data.get("config") or {}, "settings": training.get("settings") or {},
            "position": training.get("position") or {}}


def read_run(folder: str | os.PathLike) -> RunInfo:
    """What the files of one run folder tell (see the module docstring)."""
    folder = Path(folder)
    job = None
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        job = TrainingJob.from_dict(json.loads((folder / JOB_FILE).read_text(encoding="utf-8")))
    events, whole = _tail_events(folder / EVENTS_FILE)
    if not whole and not any(e.get("event") in (*_ENDINGS, "hello") for e in events):
        events = read_events(folder)  # a long run still going: find its hello
    best = folder / "best.pt"
    last = folder / "last.pt"
    info = RunInfo(name=folder.name, folder=folder, state="unknown",
                   started=_started(folder, events),
                   best=best if best.is_file() else None, last=last if last.is_file() else None,
                   epochs=read_metrics(folder))
    if job is not None:
        info.job = job
        info.detector = {"backbone": "efficientnet_lite0", **job.detector}
        info.training = dict(job.training)
        info.weights = job.weights
    state = _state_from_events(events)
    saved = None
    if job is None and info.last is not None:
        saved = _from_checkpoint(info.last)
        if saved is not None:
            info.detector = dict(saved["config"])
            info.training = dict(saved["settings"])
    if state is not None:
        info.state, info.message = state
    elif saved is not None:
        done = saved["position"].get("epoch", 0) >= info.settings().epochs
        info.state = "finished" if done else "stopped"
        if not done:
            info.message = f"stopped at step {saved['position'].get('step')}"
    for event in reversed(events):
        if event.get("event") == "step":
            info.step, info.total_steps = event.get("step"), event.get("total_steps")
            break
    if info.epochs:
        top = max(info.epochs, key=lambda row: row["AP"])
        info.best_ap, info.best_ap50 = top["AP"], top.get("AP50")
    return info


def list_runs(project_folder: str | os.PathLike) -> list[RunInfo]:
    """The project's runs, newest first (folders in ``runs/`` with any run file in them)."""
    parent = runs_folder(project_folder)
    if not parent.is_dir():
        return []
    markers = (JOB_FILE, EVENTS_FILE, METRICS_FILE, "last.pt", "best.pt")
    runs = [read_run(folder) for folder in parent.iterdir()
            if folder.is_dir() and any((folder / name).exists() for name in markers)]
    return sorted(runs, key=lambda run: (run.started, run.name), reverse=True)
