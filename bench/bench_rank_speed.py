"""How long ranking unlabeled images takes on this machine: ``frcnn rank``'s work on N images.

    python bench/bench_rank_speed.py                 # 1,000 unlabeled images at 320 px
    python bench/bench_rank_speed.py --count 100     # a shorter check

Builds a temporary project: 40 labeled demo images (the diversity's reference) and ``--count``
unlabeled ones made from demo images (flipped, rotated by 90 degrees, recoloured, so no two
are the same file), scaled so that the short side is 320 px, and a checkpoint of the CPU
preset's detector (EfficientNet-Lite0 with its ImageNet weights + FPN, 320 px short side, 533
long; the heads untrained: the time depends on the weights only through the number of
detections, and a random head keeps the most, 100 per image, the slowest case). Then times
:func:`engine.active.ranking.rank_project` (model loading included), with the mirror image
(the default) and, as its peers in the same run, without it (``--no-flip``: half the
forwards) and plain prediction of the same unlabeled images (what "Predict unlabeled images"
and ``frcnn predict`` do: :class:`engine.assist.Predictor`, one image at a time, the model's
own settings), and prints seconds, images per second, the progress calls seen (and, as
``frcnn rank`` prints it, a line at every tenth of the way with the seconds so far) and the
load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from PIL import ImageOps

from bench.machine_info import cpu_model
from engine import build_model
from engine.active.ranking import RankingSettings, rank_project
from engine.data.demo import CLASSES, draw_demo_image, write_demo_project
from engine.data.project import Project, measure_image
from engine.detector.checkpoint import ClassInfo, save_detector

SIDE = 320


def make_project(folder: Path, count: int) -> Path:
    project_folder = write_demo_project(folder / "project", count=40)
    images = folder / "project" / "unlabeled"
    images.mkdir()
    with Project.open(project_folder) as project:
        for index in range(count):
            picture = draw_demo_image(10_000 + index // 4).image
            variant = index % 4
            if variant == 1:
                picture = ImageOps.mirror(picture)
            elif variant == 2:
                picture = picture.rotate(90, expand=True)
            elif variant == 3:
                picture = ImageOps.autocontrast(ImageOps.posterize(picture, 4))
            scale = SIDE / min(picture.size)
            picture = picture.resize((round(picture.width * scale),
                                      round(picture.height * scale)))
            path = images / f"u{index:05d}.jpg"
            picture.save(path, quality=90)
            measured = measure_image(path)
            project.insert_image(path, width=measured.width, height=measured.height,
                                 hash=measured.hash)
    return project_folder


def make_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=len(CLASSES) + 1, min_size=SIDE,
                        max_size=533, weights="imagenet")
    classes = [ClassInfo(i + 1, name, i + 1) for i, name in enumerate(CLASSES)]
    return save_detector(path, model, classes)


def timed(checkpoint: Path, project: Path, settings: RankingSettings) -> dict:
    calls = []
    timeline = []  # (images analysed, seconds) at every tenth of the way, as printed
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done * 10 // total != (calls[-2][0] * 10 // total if len(calls) > 1 else 0) \
                or done == total:
            seconds = round(time.perf_counter() - start, 1)
            timeline.append((done, seconds))
            print(f"ranking: analysed {done} of {total} images, {seconds:.0f} s",
                  file=sys.stderr, flush=True)

    ranking = rank_project(checkpoint, project, settings=settings, progress=progress)
    seconds = time.perf_counter() - start
    ranked = len(ranking.images)
    return {"flip": settings.flip, "images": ranked, "references": ranking.references,
            "seconds": round(seconds, 1), "images_per_s": round(ranked / seconds, 2),
            "progress_calls": len(calls), "progress_timeline": timeline,
            "mean_detections": round(sum(i.detections for i in ranking.images)
                                     / max(ranked, 1), 1)}


def timed_prediction(checkpoint: Path, project_folder: Path) -> dict:
    from engine.assist import Predictor

    with Project.open(project_folder) as project:
        files = [row.file for row in project.images(status="unlabeled")]
        categories = project.categories()
    start = time.perf_counter()
    predictor = Predictor(checkpoint, categories)
    for path in files:
        predictor.predict(path)
    seconds = time.perf_counter() - start
    return {"peer": "predict", "images": len(files), "seconds": round(seconds, 1),
            "images_per_s": round(len(files) / seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the peers (the --no-flip ranking, plain prediction)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="rank-speed-") as temporary:
        folder = Path(temporary)
        start = time.perf_counter()
        project = make_project(folder, args.count)
        checkpoint = make_checkpoint(folder / "model.pt")
        print(f"made {args.count} images in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        results = [timed(checkpoint, project, RankingSettings(batch_size=args.batch_size))]
        if not args.no_peer:
            results.append(timed(checkpoint, project,
                                 RankingSettings(batch_size=args.batch_size, flip=False)))
            results.append(timed_prediction(checkpoint, project))
        for result in results[1:]:
            result["ranking_time_ratio"] = round(results[0]["seconds"] / result["seconds"], 2)
    report = {"machine": {"platform": platform.platform(),
                          "processor": cpu_model() or platform.processor(),
                          "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "load_average_after": [round(x, 2) for x in os.getloadavg()]},
              "side": SIDE, "batch_size": args.batch_size, "results": results}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
