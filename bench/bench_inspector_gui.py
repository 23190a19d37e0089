"""How the inspector view feels on a CPU: the window during the first (slow) run, and the time
from a slider's value change to the repainted stage.

resnet50 FPN at the default 800 px with the detector bench's seeded weights (saved as a
checkpoint and opened by the view, as a user would), ``tests/data/raccoon-1.jpg`` with one
labelled box, an offscreen :class:`~app.inspector.view.InspectorView` of 1400x860 px.

- First run: a 10 ms QTimer on the GUI thread records the longest gap between its ticks while
  the checkpoint loads and the first inspection runs on the worker thread (a frozen window
  would show that run's whole duration).
- Slider changes: on each ROI-stage view, the score-threshold slider is moved (alternately to
  0.30 and 0.50) ``--repeats`` times, after the background box-head precompute has finished;
  each is timed from ``setValue`` to the end of the canvas's repaint, and split into the rerun
  on the worker (trace delivered), the stage's picture rebuilt, and the paint. An RPN setting
  (NMS IoU 0.70 <-> 0.65) is timed the same way for comparison. The peer is plain inference of
  the same model on the same image.

    python bench/bench_inspector_gui.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_detector import IMAGE, machine, torchvision_model
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from app.inspector.view import InspectorView
from engine import build_model
from engine.data.images import load_image_tensor
from engine.detector.checkpoint import ClassInfo, save_detector

BOX = (60.0, 10.0, 250.0, 200.0)
ROI_STAGES = ("detections", "score-threshold", "class-nms", "class-scores")


def _checkpoint(folder: Path, image: torch.Tensor) -> tuple[Path, torch.nn.Module]:
    reference = torchvision_model("resnet50", 91, image)
    with torch.no_grad():
        reference.roi_heads.box_predictor.cls_score.weight.mul_(30)
    model = build_model("resnet50", 91, frozen_batchnorm=True, trainable_backbone_layers=3)
    model.load_state_dict(reference.state_dict())
    model.eval()
    classes = [ClassInfo(i, f"class {i}", category_id=i) for i in range(1, 91)]
    return save_detector(folder / "best.pt", model, classes), model


class Clock:
    """Timestamps of the view's signals, and the longest gap between GUI-thread timer ticks."""

    def __init__(self, app: QApplication, view: InspectorView) -> None:
        self.app, self.view = app, view
        self.trace_at = self.scene_at = self.painted_at = None
        show_trace = view._show_trace

        def delivered(trace):  # the moment the worker's Trace reaches the GUI thread
            self.trace_at = time.perf_counter()
            show_trace(trace)

        view._show_trace = delivered
        view.scene_changed.connect(lambda: setattr(self, "scene_at", time.perf_counter()))
        view.canvas.painted.connect(self._painted)
        self.last_tick, self.longest_gap = time.perf_counter(), 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _painted(self) -> None:
        if self.scene_at is not None and self.painted_at is None:
            self.painted_at = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest_gap = max(self.longest_gap, now - self.last_tick)
        self.last_tick = now

    def reset(self) -> None:
        self.trace_at = self.scene_at = self.painted_at = None

    def spin(self, until, timeout: float = 300.0) -> None:
        start = time.perf_counter()
        while not until():
            if time.perf_counter() - start > timeout:
                raise TimeoutError("the view did not finish")
            self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)


def _change(clock: Clock, slider, low: int, high: int) -> tuple[float, float, float]:
    """Move ``slider`` to ``low``, or to ``high`` when it is at ``low``; (to the trace, to the
    rebuilt picture, to the end of the repaint) in seconds."""
    value = high if slider.value() == low else low
    clock.reset()
    start = time.perf_counter()
    slider.setValue(value)
    clock.spin(lambda: clock.painted_at is not None)
    return (clock.trace_at - start, clock.scene_at - start, clock.painted_at - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    image = load_image_tensor(IMAGE)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as folder:
        checkpoint, model = _checkpoint(Path(folder), image)
        plain = []
        with torch.inference_mode():
            model([image])  # warm-up
        for _ in range(3):
            start = time.perf_counter()
            with torch.inference_mode():
                model([image])
            plain.append(time.perf_counter() - start)
        plain_s = statistics.median(plain)
        del model

        view = InspectorView()
        view.resize(1400, 860)
        view.show()
        clock = Clock(app, view)
        clock.spin(lambda: True)
        clock.longest_gap = 0.0
        start = time.perf_counter()
        view.set_image(IMAGE, [BOX], [1])
        view.set_checkpoints([checkpoint])
        clock.spin(lambda: view.trace is not None and not view.busy)
        first_wall = time.perf_counter() - start
        stall = clock.longest_gap
        clock.spin(lambda: not view.session.precomputing)  # the background box-head precompute

        rows = []
        slider = view.controls.sliders["box_score_thresh"]
        for key in ROI_STAGES:
            view.set_stage(key)
            clock.spin(lambda: True)
            times = [_change(clock, slider, 30, 50) for _ in range(args.repeats)]
            rows.append((f"ROI: score threshold, stage {key}", times))
        view.set_stage("detections")
        rpn_slider = view.controls.sliders["rpn_nms_thresh"]
        times = []
        for _ in range(args.repeats):
            times.append(_change(clock, rpn_slider, 65, 70))
            clock.spin(lambda: not view.session.precomputing)
        rows.append(("RPN: NMS IoU, stage detections", times))
        trace = view.trace
        view.shutdown()

    print(f"Machine: {machine()}")
    print(f"image {IMAGE.name} {trace.image_size[1]}x{trace.image_size[0]} -> "
          f"{trace.resized_size[1]}x{trace.resized_size[0]}, {trace.rpn.final.numel()} proposals, "
          f"{trace.postprocess.scores.numel()} candidates; medians of {args.repeats}")
    print(f"plain inference: {plain_s * 1000:.0f} ms")
    print(f"first run (load + inspect) {first_wall:.2f} s wall; longest GUI-thread gap meanwhile "
          f"{stall * 1000:.0f} ms")
    print("| change | trace delivered (ms) | picture rebuilt (ms) | repainted (ms) | worst (ms) "
          "| / plain inference |")
    print("|---|---|---|---|---|---|")
    for name, times in rows:
        trace_ms, scene_ms, paint_ms = (statistics.median(t[i] for t in times) * 1000
                                        for i in range(3))
        worst = max(t[2] for t in times) * 1000
        print(f"| {name} | {trace_ms:.1f} | {scene_ms:.1f} | {paint_ms:.1f} | {worst:.1f} | "
              f"{paint_ms / 1000 / plain_s:.3f} |")


if __name__ == "__main__":
    main()
