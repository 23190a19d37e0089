"""Responsiveness of the labeling window, offscreen: the labeling issue's three figures.

    python bench/bench_labeling.py [--repeats 5] [--images 5000]

1. Switching to the next 12-megapixel JPEG (4000x3000): time from the key press (``show_image``)
   until the canvas has painted the new image, a preview first, then the full image; cold (not
   prefetched) and warm (prefetched while the user looked at the previous one). The peer is the
   naive way: decode the whole JPEG on the GUI thread (``load_image``), convert, paint.
2. A canvas with 1,000 boxes: frames per second while panning and while zooming (each frame a
   full repaint of a 1400x860 canvas), on a 4000x3000 image shown whole and zoomed in.
3. A 5,000-image project (10 boxes each) opening to a usable window: from ``MainWindow(folder)``
   to the first image painted with its boxes and the list's first rows shown.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import PIL
from PIL import Image
from PySide6.QtCore import QCoreApplication, QElapsedTimer, QPointF, QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from app.labeling.image_loader import LoadedImage, build_levels
from app.main_window import MainWindow, main_window_application
from app.qt_images import pil_to_qimage
from engine.data.annotations import BoxRecord
from engine.data.images import load_image
from engine.data.project import Project, measure_image


def _photo(path: Path, seed: int, size=(4000, 3000)) -> Path:
    """A JPEG with photo-like content (smooth gradients plus noise) of ``size``."""
    rng = np.random.default_rng(seed)
    height, width = size[1], size[0]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / width * 200, ys / height * 200, (xs + ys) / (width + height) * 255], 2)
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def _wait(condition, timeout_s: float = 30.0) -> None:
    end = time.perf_counter() + timeout_s
    while not condition():
        QCoreApplication.processEvents()
        if time.perf_counter() > end:
            raise TimeoutError("waited too long")


def _window(folder: Path) -> MainWindow:
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(folder, settings=settings)
    window.resize(1400, 860)
    window.show()
    return window


def bench_switching(work: Path, repeats: int) -> dict[str, list[float]]:
    folder = work / "photos"
    (folder / "images").mkdir(parents=True)
    paths = [_photo(folder / "images" / f"photo_{i:02d}.jpg", i) for i in range(repeats + 2)]
    with Project.create(folder) as project:
        project.add_images(paths)
    window = _window(folder)
    view, canvas = window.labeling, window.labeling.canvas
    ids = [row.id for row in window.project.images()]
    painted: list[tuple[float, bool]] = []
    original_paint = canvas.paintEvent

    def timed_paint(event):
        original_paint(event)
        image = canvas.image_loaded
        if image is not None:
            painted.append((time.perf_counter(), image.full, image.path))

    canvas.paintEvent = timed_paint
    times: dict[str, list[float]] = {"cold preview": [], "cold full": [], "warm": [],
                                     "naive": []}
    for index in range(1, repeats + 1):
        # Cold: nothing cached (forget the prefetch).
        view.loader.forget()
        row = window.project.image(ids[index])
        painted.clear()
        start = time.perf_counter()
        view.show_image(ids[index])
        _wait(lambda row=row: any(full and path == row.file for _, full, path in painted))
        firsts = [t for t, _full, path in painted if path == row.file]
        fulls = [t for t, full, path in painted if full and path == row.file]
        times["cold preview"].append(firsts[0] - start)
        times["cold full"].append(fulls[0] - start)
        # Warm: the next image was prefetched while this one was shown.
        nxt = window.project.image(ids[index + 1])
        _wait(lambda nxt=nxt: nxt.file in view.loader._cache)
        painted.clear()
        start = time.perf_counter()
        view.show_image(ids[index + 1])
        _wait(lambda nxt=nxt: any(path == nxt.file for _, _full, path in painted))
        times["warm"].append(painted[0][0] - start)
        # The naive peer: decode on the GUI thread, then paint.
        start = time.perf_counter()
        qimage = pil_to_qimage(load_image(row.file))
        canvas.set_image(LoadedImage(row.file, (qimage.width(), qimage.height()), (qimage,),
                                     True))
        canvas.repaint()
        times["naive"].append(time.perf_counter() - start)
    window.close()
    return times


def bench_canvas(repeats: int) -> dict[str, float]:
    from app.labeling.canvas import LabelCanvas
    from engine.data.project import CategoryRow

    canvas = LabelCanvas()
    canvas.resize(1400, 860)
    canvas.show()
    qimage = pil_to_qimage(Image.new("RGB", (4000, 3000), (90, 120, 150)))
    canvas.set_image(LoadedImage(Path("big.jpg"), (4000, 3000), build_levels(qimage), True))
    rng = random.Random(0)
    categories = [CategoryRow(i, f"class {i}", f"#{rng.randrange(2**24):06x}")
                  for i in range(1, 6)]
    canvas.set_categories(categories)
    boxes = []
    for _ in range(1000):
        x, y = rng.uniform(0, 3900), rng.uniform(0, 2900)
        w, h = rng.uniform(20, 300), rng.uniform(20, 300)
        boxes.append(BoxRecord(x, y, min(x + w, 4000), min(y + h, 3000),
                               rng.randrange(1, 6), source="manual"))
    canvas.set_boxes(tuple(boxes))
    results = {}
    frames = 30 * repeats
    # Offscreen, repaint() of an unexposed widget may paint nothing; render() always paints
    # the whole widget, as a screen update of the full canvas would.
    frame_buffer = QImage(canvas.size(), QImage.Format.Format_RGB32)
    for name, zoomed in (("whole image", False), ("zoomed in 4x", True)):
        canvas.fit()
        if zoomed:
            canvas.set_zoom(canvas.zoom * 4)
        timer = QElapsedTimer()
        timer.start()
        for frame in range(frames):
            canvas.pan_by(3 if frame % 40 < 20 else -3, 2)
            canvas.render(frame_buffer)
        results[f"pan, {name}"] = frames / (timer.nsecsElapsed() / 1e9)
        timer.restart()
        for frame in range(frames):
            canvas.zoom_by(1.02 if frame % 40 < 20 else 1 / 1.02, QPointF(700, 430))
            canvas.render(frame_buffer)
        results[f"zoom, {name}"] = frames / (timer.nsecsElapsed() / 1e9)
    canvas.close()
    return results


def bench_opening(work: Path, images: int, repeats: int) -> list[float]:
    folder = work / "big"
    (folder / "images").mkdir(parents=True)
    rng = random.Random(0)
    tile = Image.new("RGB", (64, 48), (120, 130, 140))
    with Project.create(folder) as project, project.transaction():
        ids = [project.add_category(f"class {i}").id for i in range(10)]
        for index in range(images):
            path = folder / "images" / f"img_{index:05d}.png"
            tile.save(path)
            measured = measure_image(path)
            image_id = project.insert_image(path, width=64, height=48, hash=measured.hash)
            boxes = []
            for _ in range(10):
                x, y = rng.uniform(0, 50), rng.uniform(0, 35)
                boxes.append(BoxRecord(x, y, x + 10, y + 10, rng.choice(ids), source="manual"))
            project.add_boxes(image_id, boxes)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        window = _window(folder)
        canvas = window.labeling.canvas
        _wait(lambda canvas=canvas: canvas.image_loaded is not None)
        canvas.repaint()
        window.labeling.image_list.view.repaint()
        times.append(time.perf_counter() - start)
        window.close()
        QCoreApplication.processEvents()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    app = main_window_application()
    assert isinstance(app, QApplication)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"Python {platform.python_version()}, Pillow {PIL.__version__}, "
          f"Qt platform {QApplication.platformName()}")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        switching = bench_switching(work, args.repeats)
        naive = statistics.median(switching["naive"])
        print("\n12-megapixel JPEG, next image shown (median of "
              f"{args.repeats}; goal 150 ms):")
        for name, values in switching.items():
            median = statistics.median(values)
            print(f"  {name:14s} {median * 1000:7.1f} ms   / naive {median / naive:5.2f}")
        print("\ncanvas with 1,000 boxes, 1400x860 (goal 30 frames/s):")
        for name, fps in bench_canvas(args.repeats).items():
            print(f"  {name:24s} {fps:6.1f} frames/s")
        opening = bench_opening(work, args.images, args.repeats)
        print(f"\n{args.images}-image project to a usable window (median of {args.repeats}; "
              f"goal 2 s): {statistics.median(opening):.3f} s")


if __name__ == "__main__":
    main()
