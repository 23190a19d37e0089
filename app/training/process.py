"""The GUI's side of a training worker: the engine's TrainingProcess, read on its own thread.

A reader thread takes the worker's events as they come and hands each to the GUI thread
through a queued signal (the worker writes them to the run's ``events.jsonl`` itself, before it
sends them, so the runs list and a later look at the run see them); commands (pause, resume,
stop) are single short writes to the worker's stdin. Nothing here waits on the worker on the
GUI thread, except :meth:`WorkerDriver.shutdown` when the window closes (bounded).

When the worker's output ends, :func:`describe_exit` turns its last word and exit status into
an :class:`WorkerExit`: a worker killed or crashed without saying why is reported with the
signal or status and the last lines of its ``worker.log``.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.training.events import EventLog, Exited
from engine.training.job import TrainingJob
from engine.training.worker import TrainingProcess

_ENDINGS = ("finished", "stopped", "error")


@dataclass(frozen=True)
class WorkerExit:
    """How a worker ended. ``state``: "finished", "stopped" or "failed"; ``message``: why, in
    words (empty when it finished); ``returncode``: its exit status (negative: killed by that
    signal)."""

    state: str
    message: str
    returncode: int | None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(last_word: dict | None, returncode: int | None, log_tail: str = "") -> WorkerExit:
    """``last_word``: the worker's final finished/stopped/error event, or None when it said
    none; ``log_tail``: the end of its stderr log."""
    if last_word is not None and last_word["event"] == "finished":
        return WorkerExit("finished", "", returncode)
    if last_word is not None and last_word["event"] == "stopped":
        return WorkerExit("stopped", f"stopped at step {last_word.get('step')}", returncode)
    if last_word is not None:  # an error the worker reported itself
        kinds = {"nan": "the loss became NaN", "oom": "out of memory",
                 "data": "a problem with the data", "config": "a problem with the settings",
                 "crash": "an unexpected error"}
        kind = kinds.get(last_word.get("kind"), "an error")
        return WorkerExit("failed", f"Training failed ({kind}): {last_word.get('message', '')}",
                          returncode)
    if returncode is not None and returncode < 0:
        name = _signal_name(-returncode)
        why = " (by a user, or by the system when memory ran out)" if name == "SIGKILL" else ""
        message = f"The training process was killed with {name}{why}."
    else:
        message = f"The training process ended unexpectedly (exit status {returncode})."
    if log_tail.strip():
        message += f" Its last words: {log_tail.strip()}"
    return WorkerExit("failed", message, returncode)


def _log_tail(path: Path, lines: int = 3, limit: int = 600) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    tail = " / ".join(line.strip() for line in text.strip().splitlines()[-lines:])
    return tail[-limit:]


class WorkerDriver(QObject):
    """One training worker for ``job``; ``event`` delivers each protocol event (a dict) and
    ``exited`` a :class:`WorkerExit` once, both on the thread that made the driver."""

    event = Signal(object)
    exited = Signal(object)

    def __init__(self, job: TrainingJob, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.folder = Path(job.out)
        self.pid: int | None = None
        self.result: WorkerExit | None = None
        self._process = TrainingProcess(job)
        self.pid = self._process.process.pid
        self._reader = threading.Thread(target=self._read, name="training-events", daemon=True)
        self._reader.start()

    @property
    def running(self) -> bool:
        return self.result is None and self._reader.is_alive()

    def _read(self) -> None:
        last_word = None
        try:
            for event in self._process.events():
                if event.get("event") in _ENDINGS:
                    last_word = event
                self.event.emit(event)
        except Exception as error:  # a broken pipe or file: report it as the worker's end
            last_word = {"event": "error", "kind": "crash",
                         "message": f"reading the worker's output failed: {error}"}
            self._process.kill()
            self._process.process.wait()
        returncode = self._process.process.poll()
        result = describe_exit(last_word, returncode, _log_tail(self._process.stderr_path)
                               if last_word is None else "")
        if last_word is None:
            # Nobody else will write down why this run ended: the files must tell.
            with EventLog(self.folder) as log:
                log.append(Exited(returncode=returncode, message=result.message))
        self.result = result
        self.exited.emit(result)

    # Commands: a line each on the worker's stdin; ignored once it has gone.
    def pause(self) -> None:
        self._process.pause()

    def resume(self) -> None:
        self._process.resume()

    def stop(self) -> None:
        self._process.stop()

    def kill(self) -> None:
        if self._process.returncode is None:
            self._process.kill()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has exited and its events are read; True when it has."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Ask the worker to stop (it writes last.pt), wait up to ``timeout`` seconds, then
        kill it; returns when the reader thread is done."""
        if self._reader.is_alive():
            self.stop()
            if not self.wait(timeout):
                self.kill()
                self.wait(10)
