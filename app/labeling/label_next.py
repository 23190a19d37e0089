""""Most useful to label next": ranks the project's unlabeled images with a trained model, off
the GUI thread, with progress and cancel (the suggestion runner's :class:`~app.workers.TaskRunner`).

The engine does the work (:func:`engine.active.ranking.rank_images`); this object gathers
the candidates on the GUI thread (the project's connection belongs to it), runs the ranking on
its worker thread and reports back through signals: ``progressed(fraction, text)``,
``finished(ranking)`` (a :class:`~engine.active.ranking.Ranking`), ``failed(text)``.
A cancelled run reports nothing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.active.ranking import Ranking, project_candidates, rank_images
from engine.data.project import Project
from engine.detector.checkpoint import load_detector

from ..workers import Task, TaskRunner


def _rank(checkpoint: str, candidates, labeled, task: Task) -> Ranking | None:
    """On the worker thread: load the model once, rank."""
    detector = load_detector(checkpoint)

    def progress(done: int, total: int) -> None:
        task.progress(done / max(total, 1), f"{done} / {total} images")

    return rank_images(detector, candidates, labeled, checkpoint=checkpoint,
                       progress=progress, cancelled=lambda: task.cancelled)


class LabelNextRanker(QObject):
    """See the module docstring. One run at a time: :meth:`start` cancels the one running."""

    progressed = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = TaskRunner(self, name="label-next")
        self._task: Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, project: Project, checkpoint: str | Path) -> int:
        """Rank ``project``'s unlabeled images with ``checkpoint``; returns how many are
        candidates (0: nothing is started)."""
        self.cancel()
        candidates, labeled, skipped = project_candidates(project)
        if not candidates:
            return 0

        def done(ranking: Ranking | None, task_holder: list) -> None:
            if self._task is not task_holder[0]:
                return
            self._task = None
            if ranking is not None:
                ranking.skipped = skipped + ranking.skipped
                self.finished.emit(ranking)

        def error(exception: BaseException, _details: str, task_holder: list) -> None:
            if self._task is task_holder[0]:
                self._task = None
                self.failed.emit(str(exception))

        holder: list = [None]
        holder[0] = self._task = self._runner.submit(
            _rank, str(checkpoint), candidates, labeled,
            on_done=lambda ranking: done(ranking, holder),
            on_error=lambda exception, details: error(exception, details, holder),
            on_progress=lambda fraction, text: self.progressed.emit(fraction, text))
        return len(candidates)

    def cancel(self) -> bool:
        """Stop the run (its result is dropped); False when none was running."""
        task, self._task = self._task, None
        if task is None:
            return False
        task.cancel()
        return True

    @property
    def busy(self) -> bool:
        """The worker is still busy (a cancelled run stops at its next batch)."""
        return self._runner.busy

    def shutdown(self) -> None:
        self.cancel()
        self._runner.shutdown()
