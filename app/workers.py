"""Work off the GUI thread: a serial task runner with progress, cancel and results as signals.

    runner = TaskRunner(parent=window)
    task = runner.submit(load_trace, path, on_done=show, on_error=report)
    task.cancel()

Tasks run one after another on the runner's own thread, in submission order, so work that
shares state that is not thread-safe (one model, one cached inspection) is never run twice at
once. A task function may take a keyword argument ``task`` (a :class:`Task`) to report
progress (``task.progress(fraction, text)``) and to look at ``task.cancelled``; a cancelled
task's result is dropped. Callbacks run on the thread that owns the runner (the GUI thread).
Call :meth:`TaskRunner.shutdown` (done on the parent's destruction too) before the app quits.
"""

from __future__ import annotations

import inspect
import itertools
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

_counter = itertools.count(1)


@dataclass(eq=False)
class Task:
    """One submitted call. ``cancel()`` may be called from any thread."""

    function: Callable[..., Any]
    args: tuple
    kwargs: dict
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException, str], None] | None = None
    on_progress: Callable[[float, str], None] | None = None
    id: int = field(default_factory=lambda: next(_counter))
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _runner: TaskRunner | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def progress(self, fraction: float, text: str = "") -> None:
        """From inside the task: report ``fraction`` in [0, 1] done; delivered on the GUI thread."""
        if self._runner is not None and not self.cancelled:
            self._runner._report_progress(self, float(fraction), text)


class TaskRunner(QObject):
    """One worker thread running submitted tasks in order; see the module docstring."""

    # Cross-thread signals carry only task ids: the Python objects (results, errors) wait in
    # ``_outbox`` under a lock. Passing Python objects through queued signals from a
    # non-Qt thread has corrupted reference counts in PySide6 (None deallocated), so never.
    _finished = Signal(int)
    _progressed = Signal(int)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, name: str = "worker") -> None:
        super().__init__(parent)
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._tasks: dict[int, Task] = {}
        self._outbox: dict[int, tuple[str, Any, str]] = {}
        self._progress_box: dict[int, tuple[float, str]] = {}
        self._finished.connect(self._deliver)
        self._progressed.connect(self._deliver_progress)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self.destroyed.connect(lambda *_: self._stop_thread())

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def submit(self, function: Callable[..., Any], *args: Any,
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException, str], None] | None = None,
               on_progress: Callable[[float, str], None] | None = None,
               **kwargs: Any) -> Task:
        task = Task(function, args, kwargs, on_done, on_error, on_progress, _runner=self)
        self._tasks[task.id] = task
        self._pending += 1
        if self._pending == 1:
            self.busy_changed.emit(True)
        self._queue.put(task)
        return task

    def cancel_all(self) -> None:
        """Cancel every task not yet finished (queued ones are then skipped)."""
        for task in list(self._tasks.values()):
            task.cancel()

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Cancel what is queued, wait for the running task to end, stop the thread."""
        self.cancel_all()
        self._stop_thread(timeout)

    def _stop_thread(self, timeout: float | None = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _report_progress(self, task: Task, fraction: float, text: str) -> None:
        with self._lock:
            self._progress_box[task.id] = (fraction, text)
        self._progressed.emit(task.id)

    def _loop(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            outcome: tuple[str, Any, str]
            if task.cancelled:
                outcome = ("cancelled", None, "")
            else:
                kwargs = dict(task.kwargs)
                if _takes_task(task.function):
                    kwargs["task"] = task
                try:
                    outcome = ("done", task.function(*task.args, **kwargs), "")
                except BaseException as error:  # reported to the GUI, never lost
                    outcome = ("error", error, traceback.format_exc())
            with self._lock:
                self._outbox[task.id] = outcome
            self._finished.emit(task.id)

    def _deliver(self, task_id: int) -> None:
        with self._lock:
            kind, value, details = self._outbox.pop(task_id)
            self._progress_box.pop(task_id, None)
        task = self._tasks.pop(task_id)
        self._pending -= 1
        if self._pending == 0:
            self.busy_changed.emit(False)
        if task.cancelled or kind == "cancelled":
            return
        if kind == "done":
            if task.on_done is not None:
                task.on_done(value)
        elif task.on_error is not None:
            task.on_error(value, details)
        else:
            raise value

    def _deliver_progress(self, task_id: int) -> None:
        with self._lock:
            progress = self._progress_box.pop(task_id, None)
        task = self._tasks.get(task_id)
        if progress is not None and task is not None and not task.cancelled \
                and task.on_progress is not None:
            task.on_progress(*progress)


def _takes_task(function: Callable[..., Any]) -> bool:
    try:
        return "task" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
