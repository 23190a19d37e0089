"""The Train tab: settings, Start / Pause / Resume / Stop, live curves and progress, the
project's past runs, and the evaluation of a run.

The settings start from the preset chosen for the device and the project's training images
(:func:`engine.training.presets.choose_preset`; the note under the form says why), and "Measure"
times a few training steps of the settings on this machine (off the GUI thread) to show the
expected duration before Start.

Training runs in a child process (:class:`~app.training.process.WorkerDriver` over the engine's
worker protocol) into ``<project>/runs/<start time>/``; the GUI thread only handles its events.
A worker that crashes or is killed is reported with the cause, and when it left a ``last.pt``
"Resume from last checkpoint" continues the run where that checkpoint stands.

Hooks for the rest of the window: ``checkpoint_written`` (the path of each best.pt/last.pt
written), ``running_changed``, :attr:`TrainingView.runs_list` (``run_selected`` and
``add_run_action`` for actions such as export or pre-labeling), :meth:`TrainingView.shutdown`.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.data.project import Project, ProjectError
from engine.text import count
from engine.training.data import describe_left_out
from engine.training.job import TrainingJob
from engine.training.presets import choose_preset
from engine.training.progress import format_duration
from engine.training.runs import RunInfo, new_run_folder, read_events, write_job
from engine.training.timing import ExpectedDuration, measure_job

from ..workers import TaskRunner
from .evaluation_view import EvaluationView
from .plots import CurveData, TrainingPlots
from .process import WorkerDriver, WorkerExit
from .runs_list import RunsList
from .settings_form import TrainingSettingsForm

ERROR_STYLE = "color:#c92a2a"
WARNING_COLOR = "#b35c00"
SHOWN_WARNINGS = 4  # the latest ones; the run's events.jsonl keeps them all
SHUTDOWN_WAIT_S = 30.0
MEASURED_STEPS = 3


def presets_folder() -> Path:
    """Where the user's own presets are: ``presets/`` in the app's data folder."""
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location) / "presets"


def preset_for(project_folder: Path, device: str):
    """The preset for the project's training images on ``device``; None when the project
    cannot be read."""
    try:
        with Project.open(project_folder) as project:
            records = project.dataset("train")
    except ProjectError:
        return None
    return choose_preset("cuda" if device.startswith("cuda") else "cpu", records,
                         presets_folder())


def training_data_problem(project_folder: Path) -> tuple[str | None, str | None]:
    """(a reason training cannot start, a warning) for the project, in a user's words."""
    try:
        with Project.open(project_folder) as project:
            train = project.dataset("train")
            val = project.dataset("val")
            categories = project.categories()
            images = project.image_count()
    except ProjectError as error:
        return f"The project cannot be opened: {error}", None
    if not categories:
        return ("The project has no classes yet. Add the classes you want to detect and label "
                "some images first."), None
    if not train:
        how = ("Label some images and mark them done, then give the project a split (for "
               "example 80% train, 20% val)")
        if images:
            return (f"Nothing to train on: training uses the images marked done in the train "
                    f"split, and none of the project's {count(images, 'image')} is both. "
                    f"{how}."), None
        return f"Nothing to train on: the project has no images. Add images; {how[0].lower()}" \
               f"{how[1:]}.", None
    if not val:
        return None, ("No val images: this run trains without measuring AP (and writes no "
                      "best.pt). Give some done images the val split to see how the model does.")
    return None, None


class TrainingView(QWidget):
    checkpoint_written = Signal(object)  # Path of a best.pt/last.pt just written
    running_changed = Signal(bool)

    def __init__(self, project_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project_folder = Path(project_folder)
        self._driver: WorkerDriver | None = None
        self._run_folder: Path | None = None  # the run being trained (or the last one)
        self._shown_run: Path | None = None  # the run the curves show
        self._paused = False
        self._stop_requested = False
        self._message = ""

        self.form = TrainingSettingsForm(presets_folder=presets_folder())
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.duration = QLabel("Expected duration: not measured yet (Measure times "
                               f"{MEASURED_STEPS} training steps on this machine).")
        self.duration.setWordWrap(True)
        self.measure_button = QPushButton("Measure")
        self.measure_button.setToolTip("Time a few training steps of these settings here, to "
                                       "see how long the run will take.")
        self.measured_steps = MEASURED_STEPS
        self._measuring = None  # the timing task under way
        self._measured_once = False
        self._runner: TaskRunner | None = None
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.resume_run_button = QPushButton("Resume from last checkpoint")
        self.resume_run_button.setToolTip("Continue the selected run from its last.pt, exactly "
                                          "where it stopped.")
        self.progress = QProgressBar()
        self.progress.setFormat("")
        self.progress.setTextVisible(True)
        self.speed = QLabel("")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The worker's warnings (an unreadable image left out, ...): kept while the run goes on.
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet(f"color:{WARNING_COLOR}")
        self.warnings.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._warnings: list[str] = []
        self.runs_list = RunsList(self.project_folder)
        self.run_details = QLabel("")
        self.run_details.setWordWrap(True)
        self.run_details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plots = TrainingPlots()
        self.evaluation = EvaluationView(self.project_folder)

        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.resume_button,
                       self.stop_button):
            buttons.addWidget(button)
        settings_box = QGroupBox("New run")
        settings_layout = QVBoxLayout(settings_box)
        settings_layout.addWidget(self.form)
        settings_layout.addWidget(self.preset_note)
        duration_row = QHBoxLayout()
        duration_row.addWidget(self.duration, 1)
        duration_row.addWidget(self.measure_button)
        settings_layout.addLayout(duration_row)
        settings_layout.addLayout(buttons)
        settings_layout.addWidget(self.progress)
        settings_layout.addWidget(self.speed)
        settings_layout.addWidget(self.message)
        settings_layout.addWidget(self.warnings)
        runs_box = QGroupBox("Runs")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.addWidget(self.runs_list, 1)
        runs_layout.addWidget(self.run_details)
        runs_layout.addWidget(self.resume_run_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(settings_box)
        left_layout.addWidget(runs_box, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.plots, "Curves")
        self.tabs.addTab(self.evaluation, "Evaluation")
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([420, 700])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        self.resume_run_button.clicked.connect(self.resume_selected_run)
        self.measure_button.clicked.connect(self.measure)
        self.form.changed.connect(self._settings_changed)
        self.apply_chosen_preset()
        self.runs_list.run_selected.connect(self._run_selected)
        self._update_buttons()
        if self.runs_list.runs:
            self.runs_list.select(self.runs_list.runs[0].folder)

    # ------------------------------------------------------------------ contract

    def is_running(self) -> bool:
        return self._driver is not None

    @property
    def worker_pid(self) -> int | None:
        """The training process's id while one runs."""
        return self._driver.pid if self._driver is not None else None

    @property
    def run_folder(self) -> Path | None:
        """The folder of the run being trained, or of the last one this view started."""
        return self._run_folder

    def shutdown(self) -> None:
        """Called when the window closes: stop a running training cleanly (the worker writes
        last.pt) and wait for it, with a bounded wait, then kill."""
        driver = self._driver
        if driver is not None:
            driver.event.disconnect(self.show_event)
            driver.exited.disconnect(self._on_exited)
            driver.shutdown(SHUTDOWN_WAIT_S)
            self._driver = None
            self.running_changed.emit(False)
        self.evaluation.shutdown()
        if self._runner is not None:
            self._runner.cancel_all()
            self._runner.shutdown()
            self._runner = None

    # ------------------------------------------------------------------ presets, duration

    def apply_chosen_preset(self) -> None:
        """Fill the form with the preset for this device and the project's data."""
        preset = preset_for(self.project_folder, self.form.device.currentData() or "cpu")
        if preset is None:
            return
        self.form.apply_preset(preset)
        self.preset_note.setText(f"Preset {preset.name}: {'; '.join(preset.reasons)}.")

    def _form_job(self):
        """The form's settings as a job (its out folder still to set), or None after saying
        in the tab what is wrong with them."""
        try:
            return self.form.job(self.project_folder, Path())
        except ValueError as error:
            self._say(f"Check the settings: {error}.", error=True)
            return None

    def measure(self) -> None:
        """Time a few training steps of the form's settings, off the GUI thread."""
        if self._measuring is not None or self.is_running():
            return
        job = self._form_job()
        if job is None:
            return
        if self._runner is None:
            self._runner = TaskRunner(self, name="training-timing")
        steps = self.measured_steps
        self.duration.setText(f"Expected duration: timing {steps} steps here…")
        self.measure_button.setEnabled(False)

        def run(task):
            return measure_job(job, steps, cancelled=lambda: task.cancelled)

        self._measuring = self._runner.submit(run, on_done=self._measured,
                                              on_error=self._measure_failed)

    def _measured(self, expected: ExpectedDuration | None) -> None:
        self._measuring = None
        self.measure_button.setEnabled(not self.is_running())
        if expected is not None:
            self._measured_once = True
            self.duration.setText(f"Expected duration: {expected.describe()}.")

    def _measure_failed(self, error: BaseException, _trace: str) -> None:
        self._measuring = None
        self.measure_button.setEnabled(not self.is_running())
        self.duration.setText(f"Expected duration: could not measure ({error}).")

    def _settings_changed(self) -> None:
        if self._measuring is None and self._measured_once:
            self.duration.setText("Expected duration: the settings changed; Measure again.")

    # ------------------------------------------------------------------ commands

    def start(self) -> None:
        """Start a new run with the form's settings (or say why it cannot start)."""
        if self.is_running():
            return
        problem, warning = training_data_problem(self.project_folder)
        if problem is not None:
            self._say(problem, error=True)
            return
        job = self._form_job()
        if job is None:
            return
        folder = new_run_folder(self.project_folder)
        job.out = str(folder)
        write_job(folder, job)
        self.plots.clear()
        self._launch(job, warning)

    def resume_selected_run(self) -> None:
        """Continue the selected run from its last.pt, in its own folder."""
        run = self.runs_list.selected_run()
        if self.is_running() or run is None or not run.can_resume():
            return
        if run.job is not None:
            job = TrainingJob.from_dict(run.job.to_dict())
        else:  # a run from the command line: its checkpoint holds its settings
            job = TrainingJob(project=str(self.project_folder), out=str(run.folder))
        job.project, job.out = str(self.project_folder), str(run.folder)
        job.resume = str(run.last)
        job.device = self.form.device.currentData()  # perhaps not the device that failed
        self.plots.show_data(CurveData.from_events(read_events(run.folder), run.epochs))
        self._launch(job, None)

    def pause(self) -> None:
        if self._driver is not None and not self._paused:
            self._driver.pause()
            self.pause_button.setEnabled(False)
            self._say("Pausing after this step…")

    def resume(self) -> None:
        if self._driver is not None and self._paused:
            self._driver.resume()
            self.resume_button.setEnabled(False)

    def stop(self) -> None:
        """Ask the worker to stop (it saves last.pt); pressed again, kill it."""
        if self._driver is None:
            return
        if self._stop_requested:
            self._driver.kill()
            return
        self._stop_requested = True
        self._driver.stop()
        self._say("Stopping: saving last.pt…")
        self._update_buttons()

    # ------------------------------------------------------------------ worker

    def _launch(self, job: TrainingJob, warning: str | None) -> None:
        folder = Path(job.out)
        self._run_folder = self._shown_run = folder
        self._paused = self._stop_requested = False
        self._warnings.clear()
        self.warnings.setText("")
        try:
            driver = WorkerDriver(job, self)
        except OSError as error:
            self._say(f"The training process could not start: {error}", error=True)
            return
        driver.event.connect(self.show_event)
        driver.exited.connect(self._on_exited)
        self._driver = driver
        self.progress.setRange(0, 0)  # busy until the worker says how many steps
        self.progress.setFormat("starting…")
        self.speed.setText("")
        resuming = f" from {Path(job.resume).name}" if job.resume else ""
        text = f"Starting {folder.name}{resuming}: loading the model…"
        self._say(f"{warning} {text}" if warning else text)
        self.runs_list.refresh(select=folder)
        self._update_buttons()
        self.running_changed.emit(True)

    def show_event(self, event: dict) -> None:
        """Show one worker protocol event: curves, progress, messages."""
        kind = event.get("event")
        if self._shown_run == self._run_folder:
            self.plots.add_event(event)
        if kind == "hello":
            self.runs_list.refresh()  # now the files say "running"
        elif kind == "started":
            self.progress.setRange(0, max(1, event["total_steps"], event["resumed_at_step"]))
            self.progress.setValue(event["resumed_at_step"])
            self.progress.setFormat("%v / %m steps")
            resumed = (f", resumed at step {event['resumed_at_step']}"
                       if event["resumed_at_step"] else "")
            budget = event.get("time_budget_s")
            plan = (f"a time budget of {format_duration(budget)} "
                    f"({count(event['steps_per_epoch'], 'step')} an epoch)"
                    if budget is not None else
                    f"{count(event['epochs'], 'epoch')} of "
                    f"{count(event['steps_per_epoch'], 'step')}")
            left_out = describe_left_out(event.get("left_out") or {})
            self._say(f"Training on {event['device']}: {event['train_images']} train / "
                      f"{count(event['val_images'], 'val image')}, "
                      f"{count(len(event['classes']), 'class')}, {plan}, lr "
                      f"{event['lr']:.4g}{resumed}."
                      + (f" Left out (not marked done, or no file): {left_out}." if left_out
                         else ""))
        elif kind == "evaluating":
            self.speed.setText(f"Evaluating: {event['done']} / {event['total']} val images")
        elif kind == "step":
            self.progress.setRange(0, max(1, event["total_steps"]))
            self.progress.setValue(event["step"])
            rate = event.get("images_per_s")
            speed = f"{rate:.2f} images/s" if rate else "measuring speed"
            self.speed.setText(
                f"Epoch {event['epoch']}, batch {event['batch']}/{event['batches']} · loss "
                f"{event['loss']:.3f} · {speed} · ETA {format_duration(event.get('eta_s'))}")
        elif kind == "eval":
            self._say(f"Epoch {event['epoch']}: AP {event['AP']:.3f}, AP50 {event['AP50']:.3f}.")
            self.runs_list.refresh()
        elif kind == "checkpoint":
            self.checkpoint_written.emit(Path(event["path"]))
            if event["kind"] == "best":
                self.runs_list.refresh()
        elif kind == "warning":
            self._warnings.append(str(event.get("message", "")))
            shown = self._warnings[-SHOWN_WARNINGS:]
            more = len(self._warnings) - len(shown)
            self.warnings.setText("\n".join(
                [f"Warning: {text}" for text in shown]
                + ([f"({more} earlier warnings in events.jsonl)"] if more else [])))
        elif kind == "paused":
            self._paused = True
            self._say(f"Paused at step {event['step']}.")
            self.runs_list.refresh()  # its state: paused
            self._update_buttons()
        elif kind == "resumed":
            self._paused = False
            self._say(f"Resumed at step {event['step']}.")
            self.runs_list.refresh()
            self._update_buttons()

    def _on_exited(self, result: WorkerExit) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.wait(5)  # its reader thread has delivered everything by now
        self._paused = self._stop_requested = False
        folder = self._run_folder
        self.runs_list.refresh(select=folder)
        run = self.runs_list.selected_run()
        checkpoint = run.last if run is not None else None
        if result.state == "finished":
            best = f" best AP {run.best_ap:.3f}," if run and run.best_ap is not None else ""
            self.progress.setValue(self.progress.maximum())
            self._say(f"Finished:{best} checkpoints in {folder}.")
        elif result.state == "stopped":
            self._say(f"Stopped: {result.message}; last.pt saved. “Resume from last "
                      "checkpoint” continues exactly there.")
        else:
            offer = (f" “Resume from last checkpoint” continues from {checkpoint.name} (step "
                     f"{self._checkpoint_step(run)})." if checkpoint is not None else
                     " No checkpoint was written before it ended: start the run again.")
            self._say(result.message + offer, error=True)
        self.speed.setText("")
        self._update_buttons()
        self.running_changed.emit(False)

    @staticmethod
    def _checkpoint_step(run: RunInfo | None) -> str:
        """The step last.pt was saved at, from the run's checkpoint events."""
        if run is None:
            return "?"
        for event in reversed(read_events(run.folder)):
            if event.get("event") == "checkpoint" and event.get("kind") == "last":
                return str(event.get("step"))
        return "?"

    # ------------------------------------------------------------------ showing

    def _say(self, text: str, error: bool = False) -> None:
        self._message = text
        escaped = html.escape(text)
        self.message.setText(f"<span style='{ERROR_STYLE}'>{escaped}</span>" if error
                             else escaped)

    def message_text(self) -> str:
        """The status message as plain text."""
        return self._message

    def _run_selected(self, run: RunInfo | None) -> None:
        if run is None:
            self.run_details.setText("")
            self._update_buttons()
            return
        if run.folder != self._shown_run:
            self._shown_run = run.folder
            self.plots.show_data(CurveData.from_events(read_events(run.folder), run.epochs))
        details = [f"{run.name}: {run.state}" + (f": {run.message}" if run.message else ""),
                   run.describe()]
        if run.checkpoints:
            details.append("Checkpoints: " + ", ".join(p.name for p in run.checkpoints.values()))
        self.run_details.setText(html.escape("\n".join(details)).replace("\n", "<br>"))
        checkpoint = run.best or run.last
        self.evaluation.set_checkpoint(checkpoint,
                                       f"{run.name}/{checkpoint.name}" if checkpoint else None)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.is_running()
        self.form.setEnabled(not running)
        self.measure_button.setEnabled(not running and self._measuring is None)
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running and not self._paused and not self._stop_requested)
        self.resume_button.setEnabled(running and self._paused and not self._stop_requested)
        self.stop_button.setEnabled(running)
        self.stop_button.setText("Force stop" if self._stop_requested else "Stop")
        self.stop_button.setToolTip("Kill the training process now (the last checkpoint stays)"
                                    if self._stop_requested else
                                    "Stop after this step and save last.pt")
        run = self.runs_list.selected_run()
        self.resume_run_button.setEnabled(not running and run is not None and run.can_resume())
