"""Screenshots of the Train tab: ``docs/screenshots/training-*.png``.

    .venv/bin/python docs/screenshots/take_training.py [--out docs/screenshots] [--keep DIR]

Trains a small model on a fresh demo project on the CPU (a few minutes), driving the
TrainingView the way a user does, and saves:

- ``training-mid.png``: mid-training (curves, progress, ETA);
- ``training-finished.png``: the finished run in the runs list with its curves;
- ``training-evaluation.png``: its evaluation on the val images, images with errors;
- ``training-killed.png``: a second run whose worker was killed, with the cause and the
  offer to resume from its last checkpoint.

Runs without a display (Qt's offscreen platform) unless QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtWidgets import QApplication

from app.training.view import TrainingView
from engine.data.demo import write_demo_project

SIZE = (1400, 900)


def wait_until(app: QApplication, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def settle(app: QApplication, seconds: float = 0.5) -> None:
    """Let the plots' throttled redraw and the layout catch up."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def evaluation_shot(app: QApplication, view: TrainingView, out: Path) -> None:
    """The selected run's evaluation, images with errors, one with a missed box if any."""
    view.tabs.setCurrentWidget(view.evaluation)
    evaluation = view.evaluation
    evaluation.evaluate()
    wait_until(app, lambda: evaluation.analysis is not None, 600, "the evaluation")
    evaluation.set_filter("errors")
    rows = [evaluation.images.item(i).text() for i in range(evaluation.images.count())]

    def false_positives(text: str) -> int:
        words = text.split()
        return int(words[words.index("FP,") - 1]) if "FP," in words else 0

    # An image with a missed box and as few false positives as there are: readable.
    with_missed = sorted((false_positives(text), i) for i, text in enumerate(rows)
                         if "missed" in text)
    evaluation.images.setCurrentRow(with_missed[0][1] if with_missed else 0)
    wait_until(app, lambda: evaluation._image is not None, 60, "an image")
    settle(app)
    view.grab().save(str(out / "training-evaluation.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--keep", type=Path, help="write the demo project here (else a temp dir)")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=192, help="image size (min_size)")
    parser.add_argument("--evaluation-only", type=Path, metavar="PROJECT",
                        help="only the evaluation shot, of PROJECT's newest finished run")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    args.out.mkdir(parents=True, exist_ok=True)
    if args.evaluation_only:
        view = TrainingView(args.evaluation_only)
        view.resize(*SIZE)
        view.show()
        finished = [run for run in view.runs_list.runs if run.state == "finished"]
        if finished:
            view.runs_list.select(finished[0].folder)
        try:
            evaluation_shot(app, view, args.out)
        finally:
            view.shutdown()
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="frcnn-shots-"))
    project = write_demo_project(work / "demo", count=args.images)
    view = TrainingView(project)
    view.resize(*SIZE)
    view.show()
    form = view.form
    form.set_device("cpu")
    form.epochs.setValue(args.epochs)
    form.batch_size.setValue(2)
    form.min_size.setValue(args.size)
    # As resources/configs/demo-cpu.json: smaller RPN and box-head samples, fast on a CPU.
    form.overrides = {"detector": {"rpn_batch_size_per_image": 128,
                                   "box_batch_size_per_image": 128}, "training": {}}
    try:
        view.start()
        wait_until(app, lambda: len(view.plots.data.epochs) >= 3, 3600, "three evaluations")
        view.runs_list.tree.setColumnWidth(0, 150)
        per_epoch = view.progress.maximum() // args.epochs
        wait_until(app, lambda: len(view.plots.data.steps) >= 3.5 * per_epoch, 600,
                   "the middle of epoch 4")
        settle(app)
        view.grab().save(str(args.out / "training-mid.png"))
        wait_until(app, lambda: not view.is_running(), 3600, "the end of the run")
        settle(app)
        view.grab().save(str(args.out / "training-finished.png"))

        evaluation_shot(app, view, args.out)

        view.tabs.setCurrentWidget(view.plots)
        form.epochs.setValue(50)
        view.start()
        wait_until(app, lambda: (view.run_folder / "last.pt").is_file() and view.is_running(),
                   600, "a checkpoint of the second run")
        settle(app, 1.0)
        os.kill(view.worker_pid, signal.SIGKILL)
        wait_until(app, lambda: not view.is_running(), 60, "the killed worker's report")
        settle(app)
        view.grab().save(str(args.out / "training-killed.png"))
    finally:
        view.shutdown()
    print(f"screenshots in {args.out}; project in {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
