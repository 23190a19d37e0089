"""The first hour of a new user, replayed and photographed: ``docs/screenshots/first-hour/``.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/take_first_hour.py \
        [--epochs 1] [--out docs/screenshots/first-hour]

A fresh user (empty settings and data folders in a temporary place): the first start writes the
demo project; label a box on an unlabeled image and mark it done; look at the Inspect tab before
any model exists; train on the Train tab with the CPU preset's settings
(``resources/configs/demo-cpu.json``: EfficientNet-Lite0, 240 px, batch 4, 128 RPN and box-head
samples) for ``--epochs``; inspect the trained model; let it suggest boxes on an unlabeled image;
export it (File > Export trained model, the format it offers); quit and start again without an
argument (the app reopens the project at the image left). Each step is driven through the
widgets a user would use, timed, and photographed (the whole screen); ``times.json`` records
the seconds each step took.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

FRESH = Path(tempfile.mkdtemp(prefix="frcnn-first-hour-"))
# A new user: nothing remembered, no demo written yet. Set before Qt is imported.
os.environ["XDG_CONFIG_HOME"] = str(FRESH / "config")
os.environ["XDG_DATA_HOME"] = str(FRESH / "data")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from app.main import ensure_demo_project, last_project  # noqa: E402
from app.main_window import MainWindow, main_window_application  # noqa: E402
from engine.data.demo import CLASSES, draw_demo_image  # noqa: E402

DEMO_LABELED = 300  # the app's demo: 300 labeled images, then the unlabeled ones


def settle(seconds: float = 0.5) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        QCoreApplication.processEvents()
        time.sleep(0.05)


class Walk:
    """Shots and step times."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.times: list[dict] = []
        self._started = time.perf_counter()

    def shot(self, name: str) -> None:
        settle(0.6)
        QGuiApplication.primaryScreen().grabWindow(0).save(str(self.out / f"{name}.png"))
        print(f"wrote {name}.png", flush=True)

    def step(self, what: str) -> None:
        now = time.perf_counter()
        self.times.append({"step": what, "seconds": round(now - self._started, 1)})
        print(f"{what}: {now - self._started:.1f} s", flush=True)
        self._started = now


def wait_for_image(window: MainWindow) -> None:
    canvas = window.labeling.canvas

    def loaded() -> bool:
        image, row = canvas.image_loaded, window.labeling.current_image()
        return image is not None and image.full and row is not None and image.path == row.file

    wait_until(loaded, 30, "the image")


def drag(canvas, start, end) -> None:
    a, b = canvas.image_to_widget(*start).toPoint(), canvas.image_to_widget(*end).toPoint()
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=a)
    for fraction in (0.3, 0.6, 1.0):
        QTest.mouseMove(canvas, a + (b - a) * fraction)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "first-hour")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    app = main_window_application()
    walk = Walk(args.out)

    # 1. First start: no project used yet, so the demo is written and opened.
    assert last_project(QSettings()) is None
    folder = ensure_demo_project()
    window = MainWindow(folder)
    window.setGeometry(0, 0, 1600, 1000)
    window.show()
    window.activateWindow()
    wait_for_image(window)
    walk.step("First start: the demo project written and opened")
    walk.shot("01-first-start")

    # 2. Label a box: the next unlabeled image, draw its first shape, mark the image done.
    view, canvas = window.labeling, window.labeling.canvas
    view.actions["next_unlabeled"].trigger()
    wait_for_image(window)
    row = view.current_image()
    index = int(re.findall(r"\d+", row.file.stem)[-1])
    truth = draw_demo_image(index)
    box, label = truth.boxes[0], truth.labels[0]
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_W)
    QTest.keyClick(canvas, getattr(Qt.Key, f"Key_{CLASSES.index(label) + 1}"))
    drag(canvas, box[:2], box[2:])
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    canvas.select(len(view.editor.boxes) - 1)
    walk.step("Label a box on an unlabeled image")
    walk.shot("02-label-a-box")
    view.actions["done"].trigger()
    view.flush()

    # 3. The Inspect tab before any model: it says what to do.
    window.tabs.setCurrentWidget(window.inspector)
    walk.step("Look at the Inspect tab (no model yet)")
    walk.shot("03-inspect-without-a-model")

    # 4. Train with the CPU preset's settings.
    window.tabs.setCurrentIndex(1)
    training = window.training
    form = training.form
    form.set_device("cpu")
    form.epochs.setValue(args.epochs)
    form.batch_size.setValue(4)
    form.min_size.setValue(240)
    form.overrides = {"detector": {"rpn_batch_size_per_image": 128,
                                   "box_batch_size_per_image": 128}, "training": {}}
    settle()
    training.start()
    wait_until(lambda: training.progress.value() >= max(3, training.progress.maximum() // 2),
               3600, "half of the training")
    walk.shot("04-training")
    wait_until(lambda: not training.is_running(), 7200, "the end of the training")
    settle(1.0)
    walk.step(f"Train {args.epochs} epoch(s) on the CPU (EfficientNet-Lite0, 240 px, batch 4), "
              f"with the evaluation on val")
    walk.shot("05-trained")

    # 5. Inspect the trained model on the image just labeled.
    view.show_image(row.id)
    wait_for_image(window)
    inspector = window.inspector
    window.tabs.setCurrentWidget(inspector)
    wait_until(lambda: inspector.trace is not None and not inspector.busy, 600,
               "the inspection")
    inspector.set_stage("anchors")
    levels = [inspector.level_box.itemText(i).lower() for i in range(inspector.level_box.count())]
    inspector.set_option("level", next((i for i, name in enumerate(levels) if "5" in name),
                                       len(levels) - 1))  # P5: a coarse grid, cells visible
    walk.step("Inspect: run the model on the image")
    walk.shot("06-inspect-anchors")
    inspector.set_stage("proposals-nms")
    walk.shot("07-inspect-rpn-nms")
    inspector.set_stage("class-scores")
    walk.shot("08-inspect-box-head")
    inspector.set_stage("detections")
    walk.step("Inspect: step through the stages")
    walk.shot("09-inspect-detections")

    # 6. Suggestions on the next unlabeled image.
    window.tabs.setCurrentWidget(view)
    view.actions["next_unlabeled"].trigger()
    wait_for_image(window)
    view.assist.refresh_checkpoints()
    view.assist.predict_image.click()
    wait_until(lambda: not view.assist.running, 600, "the suggestions")
    view.assist.slider.setValue(30)
    walk.step("Suggest boxes on an unlabeled image")
    walk.shot("10-suggestions")
    if view.assist.accept_shown.isEnabled():
        view.assist.accept_shown.click()
    view.flush()

    # 7. Export the trained model in the format the dialog offers first.
    window.ask_export_model()
    dialog = window.export_model_dialog
    dialog.move(400, 200)
    wait_until(lambda: dialog.export_button.isEnabled(), 120, "the export dialog's check")
    dialog.export_button.click()
    wait_until(lambda: dialog.progress.value() >= 1, 600, "the export's second step")
    walk.shot("11-export-progress")
    wait_until(lambda: dialog.result_ is not None or "Not exported" in dialog.log.toPlainText(),
               1200, "the export")
    walk.step(f"Export the model ({dialog.format.currentData()}), checked against the "
              f"checkpoint")
    walk.shot("12-export-done")
    dialog.close()

    # 8. Quit and start again without an argument: the same project, the same image.
    left_on = view.current_image().id
    window.close()
    settle(0.5)
    again = MainWindow(last_project(QSettings()))
    again.setGeometry(0, 0, 1600, 1000)
    again.show()
    wait_for_image(again)
    assert again.labeling.current_image().id == left_on
    walk.step("Quit and start again: the project reopens at the image left")
    walk.shot("13-reopened")
    again.close()
    (args.out / "times.json").write_text(json.dumps(walk.times, indent=1) + "\n")
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
