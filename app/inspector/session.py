"""The inspector's run state: which checkpoint and image, the runs on them and the reruns.

:class:`InspectorSession` is to the inspector view what ``ProjectEditor`` is to the labeling
window: the state and its rules, without Qt, tested on its own. The view keeps the layout and
the drawing; it forwards the user's choices (:meth:`~InspectorSession.load_checkpoint`,
:meth:`~InspectorSession.set_image`, :meth:`~InspectorSession.change_settings`) and shows what
the session reports to its :class:`SessionListener`.

Threads: every model call (loading a checkpoint, the first run, reruns, the background
precompute of the box head) goes to one serial :class:`Runner` (the app's
:class:`~app.workers.TaskRunner`), in order, so the model and the
:class:`~engine.detector.Inspection` are never used by two threads at once; the runner calls
back on the session's thread. Results carry the *generation* they were started in; a result
from before the latest image or checkpoint change is dropped. While a rerun is running, further
setting changes wait, and only the latest is run after it. A view that is not visible starts
no run: the first run waits until it is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from engine.data.images import image_to_tensor, load_image
from engine.detector import Inspection
from engine.detector.checkpoint import LoadedDetector, load_detector
from engine.detector.class_map import Category
from engine.detector.inspection import ROI_OVERRIDES, RPN_OVERRIDES
from engine.detector.trace import Trace
from engine.text import count

from .ground_truth import GroundTruth, ground_truth
from .stage_base import Classes

# Box head outputs computed per step of the background precompute: small, so that a rerun the
# user asks for waits at most one step (about 30 ms for resnet50 on a CPU).
PRECOMPUTE_CHUNK = 64

Box = tuple[float, float, float, float]


class TaskHandle(Protocol):
    """A submitted call (:class:`app.workers.Task`)."""

    def cancel(self) -> None: ...


class Runner(Protocol):
    """Runs submitted calls one after another off the caller's thread and calls ``on_done``,
    ``on_error(error, details)`` and ``on_progress(fraction, text)`` back on it; a function
    with a ``task`` parameter gets its :class:`TaskHandle` (``task.progress``,
    ``task.cancelled``). A cancelled call's result is dropped. :class:`app.workers.TaskRunner`
    is one."""

    def submit(self, function: Callable[..., Any], *args: Any,
               on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException, str], None] | None = None,
               on_progress: Callable[[float, str], None] | None = None) -> TaskHandle: ...


class SessionListener(Protocol):
    """What the session tells its view, always on the session's thread."""

    def on_checkpoint(self, path: Path) -> None:
        """``path`` is now the checkpoint (it starts loading)."""

    def on_image(self, display: Any) -> None:
        """The image to show: None while it loads, then what ``display`` made of it."""

    def on_detector(self, detector: LoadedDetector) -> None:
        """A checkpoint loaded; :attr:`InspectorSession.settings` are its own settings."""

    def on_busy(self, busy: bool, text: str) -> None:
        """A load or a first run started (``busy``) or ended; ``text`` says what."""

    def on_status(self, text: str) -> None:
        """Progress of a run, or how long a rerun took."""

    def on_failure(self, message: str) -> None:
        """A load or a run failed; ``message`` names the file and the reason."""

    def on_trace(self, trace: Trace | None) -> None:
        """The Trace to show (None: none, e.g. after the image changed)."""


def default_settings(detector: LoadedDetector) -> dict[str, float]:
    """The checkpoint's own evaluation settings, as overrides."""
    model = detector.model
    values = {key: getattr(model.rpn.test_settings, field) for key, field in RPN_OVERRIDES.items()}
    values.update({key: getattr(model.roi_heads.detection_settings, field)
                   for key, field in ROI_OVERRIDES.items()})
    return values


def is_rpn_change(before: dict[str, float], after: dict[str, float]) -> bool:
    """Whether going from ``before`` to ``after`` changes an RPN setting (a slower rerun)."""
    return any(before.get(key) != after.get(key) for key in RPN_OVERRIDES)


# ------------------------------------------------------------ work run on the worker thread


def _load_checkpoint_job(path: Path) -> LoadedDetector:
    return load_detector(path)


def _load_image_job(path: Path, display: Callable[[Image.Image], Any]) -> tuple[Image.Image, Any]:
    image = load_image(path)
    return image, display(image)


def _first_run_job(detector: LoadedDetector, image: Image.Image, target, overrides: dict,
                   task) -> tuple[Inspection, Trace, float]:
    task.progress(0.1, "preparing the image")
    start = time.perf_counter()
    inspection = Inspection(detector.model, image_to_tensor(image), target)
    task.progress(0.2, "running the detector (backbone, RPN, box head)")
    trace = inspection.run(**overrides)
    return inspection, trace, time.perf_counter() - start


def _rerun_job(inspection: Inspection, overrides: dict) -> tuple[Trace, float]:
    start = time.perf_counter()
    trace = inspection.run(**overrides)
    return trace, time.perf_counter() - start


def _precompute_job(inspection: Inspection, task) -> int:
    return inspection.precompute_box_head(chunk=PRECOMPUTE_CHUNK, stop=lambda: task.cancelled)


# ------------------------------------------------------------------------ the session


class InspectorSession:
    """See the module docstring. ``display`` turns a loaded image into what the view draws (on
    the worker thread; the view passes its QImage conversion); ``visible`` says whether the
    view is shown (a hidden view runs nothing until :meth:`shown`)."""

    def __init__(self, runner: Runner, listener: SessionListener, *,
                 display: Callable[[Image.Image], Any] = lambda image: None,
                 visible: Callable[[], bool] = lambda: True) -> None:
        self._runner = runner
        self._listener = listener
        self._display = display
        self._visible = visible
        self.generation = 0
        self.checkpoint: Path | None = None
        self._checkpoint_stamp: tuple | None = None
        self.detector: LoadedDetector | None = None
        self.classes = Classes()
        self.image_path: Path | None = None
        self.image: Image.Image | None = None
        self.boxes: list[Box] = []
        self.category_ids: list[int] = []
        self.categories: list[Category] | None = None
        self.ground_truth: GroundTruth | None = None
        self.inspection: Inspection | None = None
        self.trace: Trace | None = None
        # The settings the next first run uses: the checkpoint's, then the latest asked for.
        self.settings: dict[str, float] = {}
        self.busy = False
        self.last_first_run_s: float | None = None
        self.last_rerun_s: float | None = None
        self._needs_run = False
        self._image_task: TaskHandle | None = None
        self._checkpoint_task: TaskHandle | None = None
        self._run_task: TaskHandle | None = None
        self._rerun_task: TaskHandle | None = None
        self._pending: dict | None = None
        self._precompute_task: TaskHandle | None = None

    # ------------------------------------------------------------------ state

    @property
    def rerun_in_flight(self) -> bool:
        """A rerun is running or waiting: a trace shown now is not the latest settings'."""
        return self._rerun_task is not None or self._pending is not None

    @property
    def precomputing(self) -> bool:
        """The background precompute of the box head is queued or running."""
        return self._precompute_task is not None

    # ------------------------------------------------------------------ choices

    def offer_checkpoints(self, paths: Sequence[Path]) -> None:
        """The checkpoints on offer (newest first): the first is loaded when none is chosen;
        the chosen one is loaded again when its file changed since (a training run rewrites
        ``best.pt`` and ``last.pt``)."""
        if self.checkpoint is not None:
            if _modified(self.checkpoint) != self._checkpoint_stamp:
                self.load_checkpoint(self.checkpoint)
        elif paths:
            self.load_checkpoint(Path(paths[0]))

    def load_checkpoint(self, path: Path) -> None:
        """Load ``path`` off this thread and inspect the current image with it."""
        path = Path(path)
        self._invalidate()
        self.checkpoint = path
        self._checkpoint_stamp = _modified(path)
        self.detector = None
        self._listener.on_checkpoint(path)
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
        self._set_busy(True, f"Loading {path.name}…")
        task = self._checkpoint_task = self._runner.submit(
            _load_checkpoint_job, path,
            on_done=lambda detector: self._detector_loaded(task, detector),
            on_error=lambda error, details: self._load_failed(task, error))

    def set_image(self, path: Path, boxes: Sequence[Box], category_ids: Sequence[int],
                  categories: Sequence[Category] | None = None) -> None:
        """Inspect the image at ``path`` with its labelled ``boxes`` (project
        ``category_ids``); ``categories`` are the project's (see :mod:`.ground_truth`). The same
        image, boxes and categories again (a window refreshing) change nothing."""
        if len(boxes) != len(category_ids):
            raise ValueError(f"{len(boxes)} boxes but {len(category_ids)} category ids")
        boxes = [tuple(float(v) for v in box) for box in boxes]
        category_ids = [int(c) for c in category_ids]
        categories = list(categories) if categories is not None else None
        unchanged = (Path(path), boxes, category_ids, _names(categories)) == (
            self.image_path, self.boxes, self.category_ids, _names(self.categories))
        if unchanged and (self.image is not None or self._image_task is not None):
            return
        self._invalidate()
        self.image_path = Path(path)
        self.boxes = boxes
        self.category_ids = category_ids
        self.categories = categories
        self.image = None
        self._listener.on_image(None)
        if self._image_task is not None:
            self._image_task.cancel()
        self._set_busy(True, f"Loading {self.image_path.name}…")
        task = self._image_task = self._runner.submit(
            _load_image_job, self.image_path, self._display,
            on_done=lambda result: self._image_loaded(task, result),
            on_error=lambda error, details: self._load_failed(task, error))

    def change_settings(self, overrides: dict[str, float]) -> None:
        """The user changed a setting: rerun with ``overrides`` (all of them), after the rerun
        in progress if any; only the latest of several waiting changes runs."""
        self.settings = dict(overrides)
        if self.inspection is None:
            return  # the first run uses them when it starts
        self._pending = dict(overrides)
        if self._precompute_task is not None:
            self._precompute_task.cancel()  # stops after its current chunk
            self._precompute_task = None
        if self._rerun_task is None:
            self._submit_rerun()

    def shown(self) -> None:
        """The view became visible: start the first run that waited for it."""
        if self._needs_run:
            self._start_first_run()

    def close(self) -> None:
        """Drop every result still to come (the view is closing)."""
        self.generation += 1

    # ------------------------------------------------------------------ results

    def _invalidate(self) -> None:
        """Forget the inspection (a new image or checkpoint): its queued work is cancelled and
        its late results are dropped. Loads of an image or checkpoint still needed go on."""
        self.generation += 1
        for task in (self._run_task, self._rerun_task, self._precompute_task):
            if task is not None:
                task.cancel()
        self.inspection = None
        self._run_task = self._rerun_task = self._precompute_task = None
        self._pending = None
        self._show(None)

    def _load_failed(self, task: TaskHandle, error: BaseException) -> None:
        if task is self._image_task:
            self._image_task = None
        elif task is self._checkpoint_task:
            self._checkpoint_task = None
        else:
            return
        self._failed(self.generation, error)

    def _detector_loaded(self, task: TaskHandle, detector: LoadedDetector) -> None:
        if task is not self._checkpoint_task:
            return
        self._checkpoint_task = None
        self.detector = detector
        self.classes = Classes({0: "background", **{c.class_id: c.name
                                                    for c in detector.classes}},
                               {c.class_id: c.color for c in detector.classes if c.color})
        self.settings = default_settings(detector)
        self._listener.on_detector(detector)
        self._set_busy(self._image_task is not None,
                       f"{self.checkpoint.name}: {detector.model.config.backbone}, "
                       f"{count(len(detector.classes), 'class')}")
        self._start_first_run()

    def _image_loaded(self, task: TaskHandle, result: tuple[Image.Image, Any]) -> None:
        if task is not self._image_task:
            return
        self._image_task = None
        self.image, display = result
        self._listener.on_image(display)
        self._set_busy(self._checkpoint_task is not None,
                       f"{self.image_path.name}: {self.image.width}×{self.image.height}, "
                       f"{count(len(self.boxes), 'box')}")
        self._start_first_run()

    def _start_first_run(self) -> None:
        if self.detector is None or self.image is None:
            return
        if not self._visible():
            self._needs_run = True  # a hidden view costs nothing; run when shown
            return
        self._needs_run = False
        problem = self.detector.model.transform.size_check().problem(self.image.height,
                                                                     self.image.width)
        if problem is not None:  # named here: the model's own error cannot know the file
            self._failed(self.generation, ValueError(f"{self.image_path}: {problem}"))
            return
        self.ground_truth = ground_truth(self.boxes, self.category_ids, self.detector.classes,
                                         self.image.size, self.categories)
        target = self.ground_truth.target()
        backbone = self.detector.model.config.backbone
        self._set_busy(True, f"Running {backbone} on {self.image_path.name}…")
        generation = self.generation
        self._run_task = self._runner.submit(
            _first_run_job, self.detector, self.image, target, dict(self.settings),
            on_done=lambda result: self._first_run_done(generation, result),
            on_error=lambda error, details: self._failed(generation, error),
            on_progress=lambda fraction, text: self._progressed(generation, text),
        )

    def _first_run_done(self, generation: int, result) -> None:
        if generation != self.generation:
            return
        self._run_task = None
        self.inspection, trace, seconds = result
        self.last_first_run_s = seconds
        self._set_busy(False, self.summary(trace) + f"; first run {seconds:.2f} s")
        self._show(trace)
        self._start_precompute()

    def _progressed(self, generation: int, text: str) -> None:
        if generation == self.generation and self.busy:
            self._listener.on_status(f"{self.image_path.name}: {text}…")

    def _failed(self, generation: int, error: BaseException) -> None:
        if generation != self.generation:
            return
        self._run_task = self._rerun_task = None
        self._set_busy(False, "")
        self._listener.on_failure(str(error) or type(error).__name__)

    def summary(self, trace: Trace) -> str:
        """The backbone, the image and its sizes, for the status line."""
        height, width = trace.image_size
        resized = trace.resized_size
        return (f"{trace.backbone} on {self.image_path.name} ({width}×{height} → "
                f"{resized[1]}×{resized[0]})")

    # ------------------------------------------------------------------ reruns

    def _submit_rerun(self) -> None:
        overrides, self._pending = self._pending, None
        generation = self.generation
        previous = dict(self.trace.settings) if self.trace is not None else {}
        self._rerun_task = self._runner.submit(
            _rerun_job, self.inspection, overrides,
            on_done=lambda result: self._rerun_done(generation, result, previous),
            on_error=lambda error, details: self._failed(generation, error),
        )

    def _rerun_done(self, generation: int, result, previous: dict) -> None:
        if generation != self.generation:
            return
        self._rerun_task = None
        trace, seconds = result
        self.last_rerun_s = seconds
        self._show(trace)
        self._listener.on_status(self.summary(trace) + f"; rerun {seconds * 1000:.0f} ms")
        if self._pending is not None:
            self._submit_rerun()
        elif is_rpn_change(previous, trace.settings):
            self._start_precompute()

    def _start_precompute(self) -> None:
        if self.inspection is None:
            return
        generation = self.generation
        self._precompute_task = self._runner.submit(
            _precompute_job, self.inspection,
            on_done=lambda _count: self._precompute_done(generation),
            on_error=lambda error, details: None,  # an optimisation; reruns compute what's missing
        )

    def _precompute_done(self, generation: int) -> None:
        if generation == self.generation:
            self._precompute_task = None

    # ------------------------------------------------------------------ reporting

    def _show(self, trace: Trace | None) -> None:
        self.trace = trace
        if trace is not None and not self.rerun_in_flight:
            self.settings = dict(trace.settings)
        self._listener.on_trace(trace)

    def _set_busy(self, busy: bool, text: str) -> None:
        self.busy = busy
        self._listener.on_busy(busy, text)


def _names(categories: Sequence[Category] | None) -> list[tuple[int, str]] | None:
    return None if categories is None else [(c.id, c.name) for c in categories]


def _modified(path: Path) -> tuple | None:
    """(modification time, size) of ``path``, None when it cannot be read."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
