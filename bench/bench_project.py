"""The project store's speed: importing a large COCO file and opening the project it makes.

Generates (once, untimed) ``--images`` small real PNG files (64x48) and a COCO file with
``--boxes-per-image`` boxes each over 10 categories, then measures, interleaved in a rotating
order, medians of ``--repeats``:

- pycocotools ``COCO(file)``: loading the same file (the peer);
- ``import``: ``import_annotations`` into a new project (read + measure + store), and its
  parts: ``read_annotations`` alone, measuring every image (header size + hash) alone, and the
  store's transaction alone (with the measurements already made);
- ``open``: ``Project.open`` then ``images()`` with box counts (what the GUI's list needs).

    python bench/bench_project.py [--images 5000] [--boxes-per-image 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine_info import cpu_model
from engine.data.formats import read_annotations
from engine.data.importing import import_annotation_set, import_annotations
from engine.data.project import Project, measure_image

WIDTH, HEIGHT = 64, 48


def write_dataset(folder: Path, images: int, boxes_per_image: int) -> Path:
    """PNGs in folder/images (each different) and folder/annotations.json; returns the latter."""
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    picker = random.Random(0)
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i, "name": f"class_{i}", "supercategory": "thing"}
                           for i in range(1, 11)]}
    for index in range(images):
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        name = f"{index:05d}.png"
        Image.fromarray(pixels).save(folder / "images" / name)
        coco["images"].append({"id": index + 1, "file_name": name, "width": WIDTH,
                               "height": HEIGHT})
        for _ in range(boxes_per_image):
            w, h = picker.randint(4, 30), picker.randint(4, 24)
            x, y = picker.randint(0, WIDTH - w), picker.randint(0, HEIGHT - h)
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": index + 1,
                "category_id": picker.randint(1, 10), "bbox": [x, y, w, h], "area": w * h,
                "iscrowd": 0})
    path = folder / "images" / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def machine() -> str:
    cpu = cpu_model() or platform.processor() or platform.machine()
    return (f"{cpu}, nproc {os.cpu_count()}; Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from pycocotools.coco import COCO

    work = Path(tempfile.mkdtemp(prefix="bench_project_"))
    try:
        start = time.perf_counter()
        coco_file = write_dataset(work / "data", args.images, args.boxes_per_image)
        print(f"wrote {args.images} PNGs and {coco_file.stat().st_size / 1e6:.1f} MB of COCO "
              f"in {time.perf_counter() - start:.1f} s (not timed)")
        annotations = read_annotations(coco_file, format="coco")
        paths = [Path(image.path) for image in annotations.images]
        measured = {path: measure_image(path) for path in paths}
        runs = {"coco": 0}

        def pycocotools_load() -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
                COCO(str(coco_file))

        def full_import() -> None:
            runs["coco"] += 1
            folder = work / f"import_{runs['coco']}"
            report = import_annotations(folder, coco_file, format="coco")
            assert report.images_added == args.images, report.summary()

        def read_only() -> None:
            read_annotations(coco_file, format="coco")

        def measure_only() -> None:
            for path in paths:
                measure_image(path)

        def store_only() -> None:
            runs["coco"] += 1
            with Project.create(work / f"store_{runs['coco']}") as project:
                import_annotation_set(project, annotations, measure=measured.__getitem__)

        full_import()  # the project the open benchmark opens
        opened = work / "import_1"

        def open_and_list() -> None:
            with Project.open(opened) as project:
                rows = project.images()
            assert len(rows) == args.images

        stages = {"pycocotools COCO(file)": pycocotools_load, "import (total)": full_import,
                  "  read_annotations": read_only, "  measure images (size + hash)": measure_only,
                  "  store (one transaction)": store_only, "open + list images": open_and_list}
        times: dict[str, list[float]] = {name: [] for name in stages}
        names = list(stages)
        for repeat in range(args.repeats):
            # Rotate the order each round so that drifts in machine load hit every stage alike.
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                begin = time.perf_counter()
                stages[name]()
                times[name].append(time.perf_counter() - begin)
        peer = statistics.median(times["pycocotools COCO(file)"])
        print(f"\n{args.images} images, {args.images * args.boxes_per_image} boxes; "
              f"medians of {args.repeats}; {machine()}\n")
        print("| stage | time (s) | / pycocotools COCO() |")
        print("|---|---|---|")
        for name in names:
            median = statistics.median(times[name])
            print(f"| {name} | {median:.3f} | {median / peer:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
