"""The labeling window's image list on a large project, and thumbnails of a large photo.

Generates (once, untimed) a project of ``--images`` small real PNGs (64x48, each different)
with 0-6 boxes each over 10 categories, stored through the Project API (one transaction), with
mixed statuses and splits. Then, offscreen, medians of ``--repeats`` in a rotating order:

- ``panel``: ``Project.open`` -> ``ImageListPanel.set_project`` -> shown and painted, and then
  until every row in view has its thumbnail painted (loaded on the worker thread);
- the peer, ``QListWidget``: ``Project.open`` -> ``images()`` -> one text item per image
  (``addItems``), shown and painted: a plain file list as labelme's, without thumbnails;
- filtering the panel: a search that keeps 1/10 of the rows, then clearing it.

Then a ``--photo`` (default: a generated 4000x3000 JPEG, quality 90) as the canvas's quick
preview would load it: ``load_thumbnail(path, 1024)`` against ``load_image`` + a resize to the
same size (the plain way), and ``load_thumbnail(path, 64)`` (a list thumbnail).

    QT_QPA_PLATFORM=offscreen python bench/bench_image_list.py [--images 5000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_project import machine
from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication, QListWidget

from app.labeling.image_list import ImageListPanel
from engine.data.annotations import BoxRecord
from engine.data.images import load_image, load_thumbnail
from engine.data.project import Project

WIDTH, HEIGHT = 64, 48
PANEL_SIZE = (360, 1000)


def write_project(folder: Path, images: int) -> Path:
    """``images`` PNGs in folder/images, a project in folder with boxes, statuses, splits."""
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    picker = random.Random(0)
    for index in range(images):
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{index:05d}.png", compress_level=1)
    with Project.create(folder) as project, project.transaction():
        categories = [project.add_category(f"class_{i}").id for i in range(10)]
        added = project.add_images([folder / "images"]).added
        assert len(added) == images
        for image_id in added:
            boxes = []
            for _ in range(picker.randint(0, 6)):
                w, h = picker.randint(4, 30), picker.randint(4, 24)
                x, y = picker.randint(0, WIDTH - w), picker.randint(0, HEIGHT - h)
                boxes.append(BoxRecord(x, y, x + w, y + h, picker.choice(categories),
                                       source="manual"))
            status = picker.choice(("unlabeled", "in_progress", "done", "done", "skipped"))
            project.set_boxes(image_id, boxes, status=status, base=())
        project.assign_splits({"train": 0.7, "val": 0.2, "test": 0.1})
    return folder


def wait_for(app: QApplication, done) -> None:
    while not done():
        app.processEvents()
        time.sleep(0.0002)


def rows_in_view(panel: ImageListPanel) -> list[int]:
    view = panel.view
    top = view.indexAt(QPoint(1, 1)).row()
    bottom = view.indexAt(QPoint(1, view.viewport().height() - 2))
    last = bottom.row() if bottom.isValid() else panel.model.rowCount() - 1
    return [panel.model.image_id(row) for row in range(top, last + 1)]


def time_panel(app: QApplication, folder: Path) -> dict[str, float]:
    """Seconds from the start to: rows read, panel painted, thumbnails in view painted."""
    start = time.perf_counter()
    project = Project.open(folder)
    panel = ImageListPanel()
    panel.set_project(project)
    read = time.perf_counter()
    panel.resize(*PANEL_SIZE)
    panel.show()
    panel.repaint()  # the first paint: placeholders, which ask for the thumbnails in view
    shown = time.perf_counter()
    in_view = rows_in_view(panel)
    wait_for(app, lambda: all(panel.loader.get(i) is not None for i in in_view))
    panel.view.viewport().repaint()
    thumbnails = time.perf_counter()
    # Filtering all rows: a search keeping a tenth of them, then back to all.
    panel.search.setText("1.png")
    filtered = time.perf_counter()
    assert panel.model.rowCount() == panel.model.total // 10, panel.count_label.text()
    panel.search.clear()
    unfiltered = time.perf_counter()
    panel.shutdown()
    panel.close()
    panel.deleteLater()
    app.processEvents()
    project.close()
    return {"read": read - start, "shown": shown - start, "thumbnails": thumbnails - start,
            "rows in view": len(in_view), "filter": filtered - thumbnails,
            "unfilter": unfiltered - filtered}


def time_peer(app: QApplication, folder: Path) -> float:
    start = time.perf_counter()
    with Project.open(folder) as project:
        rows = project.images()
    widget = QListWidget()
    widget.addItems([Path(row.path).name for row in rows])
    widget.resize(*PANEL_SIZE)
    widget.show()
    widget.repaint()
    elapsed = time.perf_counter() - start
    widget.close()
    widget.deleteLater()
    app.processEvents()
    return elapsed


def write_photo(path: Path, width: int = 4000, height: int = 3000) -> Path:
    """A photo-like JPEG: smooth colour, detail at several scales, sensor-like noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    channels = []
    for channel in range(3):
        value = (110 + 60 * np.sin(xs / (300 + 70 * channel)) * np.cos(ys / 410)
                 + 30 * np.sin((xs + ys) / (23 + 5 * channel))
                 + rng.normal(0, 6, (height, width)).astype(np.float32))
        channels.append(np.clip(value, 0, 255).astype(np.uint8))
    Image.fromarray(np.stack(channels, axis=-1)).save(path, quality=90)
    return path


def time_photo(path: Path, repeats: int) -> dict[str, float]:
    size = load_thumbnail(path, 1024).size

    def plain() -> None:
        load_image(path).resize(size, Image.Resampling.BICUBIC)

    variants = {"load_thumbnail(path, 1024)": lambda: load_thumbnail(path, 1024),
                "load_image + resize (bicubic)": plain,
                "load_image alone": lambda: load_image(path),
                "load_thumbnail(path, 64)": lambda: load_thumbnail(path, 64)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            begin = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - begin)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--photo", type=Path, help="a large JPEG (default: a generated one)")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    work = Path(tempfile.mkdtemp(prefix="bench_image_list_"))
    try:
        begin = time.perf_counter()
        folder = write_project(work / "project", args.images)
        print(f"wrote {args.images} PNGs and their project in "
              f"{time.perf_counter() - begin:.1f} s (not timed)")
        time_panel(app, folder)  # warm-up: file cache, Qt's first-use costs
        time_peer(app, folder)
        panel_runs, peer_runs = [], []
        for repeat in range(args.repeats):
            if repeat % 2:
                peer_runs.append(time_peer(app, folder))
                panel_runs.append(time_panel(app, folder))
            else:
                panel_runs.append(time_panel(app, folder))
                peer_runs.append(time_peer(app, folder))
        peer = statistics.median(peer_runs)
        print(f"\n{args.images} images; medians of {args.repeats}; {machine()}; "
              f"PySide6 {pyside_version}; load average {os.getloadavg()[0]:.1f}\n")
        print("| from Project.open to | time (s) | / QListWidget of names |")
        print("|---|---|---|")
        print(f"| QListWidget of names shown (peer) | {peer:.3f} | 1.00 |")
        for key, text in (("read", "panel filled (rows, classes)"),
                          ("shown", "panel shown and painted"),
                          ("thumbnails", "thumbnails in view painted")):
            median = statistics.median(run[key] for run in panel_runs)
            print(f"| {text} | {median:.3f} | {median / peer:.2f} |")
        print(f"\nrows in view: {panel_runs[0]['rows in view']}; search filter over all rows: "
              f"{statistics.median(r['filter'] for r in panel_runs) * 1000:.1f} ms, "
              f"cleared: {statistics.median(r['unfilter'] for r in panel_runs) * 1000:.1f} ms")

        photo = args.photo or write_photo(work / "photo.jpg")
        with Image.open(photo) as opened:
            photo_size = opened.size
        results = time_photo(photo, args.repeats)
        plain = results["load_image + resize (bicubic)"]
        print(f"\n{photo_size[0]}x{photo_size[1]} JPEG ({photo.stat().st_size / 1e6:.1f} MB); "
              f"medians of {args.repeats}\n")
        print("| loading | time (ms) | / load_image + resize |")
        print("|---|---|---|")
        for name, median in results.items():
            print(f"| {name} | {median * 1000:.1f} | {median / plain:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
