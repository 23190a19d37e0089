"""Start to a trained model on the CPU, as a user would: the bare ``frcnn`` of this environment,
the settings it chooses for the device and the data, and the ETA's error along the way.

    python bench/train_cpu_preset.py demo [--out runs/bench-demo] [-- TRAIN OPTIONS]
    python bench/train_cpu_preset.py raccoon --time-budget 15m
    python bench/train_cpu_preset.py dense

``demo`` writes the demo project (``frcnn demo``); ``raccoon`` imports ``../shared/data/raccoon``
with its own train/test split (as ``bench/train_raccoon.py`` does); ``dense`` writes a
synthetic dense set (120 images of 480x360, 10 to 16 small shapes of 10-28 px each, 3 classes:
about 13 boxes per image, as dense real sets have) as a COCO file and imports it with ``frcnn
import``, marks it done and splits it 80/20. Then it runs ``frcnn train``
(no ``--config``: the preset chosen for the CPU and the project) and prints, as JSON: the wall
time from the command's start to its exit, the load average before and after (the machine may be
shared), the run's evaluations, its steps and precision, and the ETA's error: at each step
after the first tenth of the run, ``|time + eta - end| / (end - time)``, where ``end`` is when
the run said it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine_info import cpu_model  # noqa: E402


def frcnn_command() -> str:
    """The ``frcnn`` script beside this Python (the environment's own)."""
    return str(Path(sys.executable).with_name("frcnn"))


def eta_errors(events: list[dict]) -> list[float]:
    """Relative ETA errors of the step events in the run's last attempt (see the module
    docstring)."""
    started = max(i for i, e in enumerate(events) if e["event"] == "started")
    run = events[started:]
    end = next(e["time"] for e in run if e["event"] in ("finished", "stopped"))
    begin = run[0]["time"]
    errors = []
    for event in run:
        if event["event"] != "step" or event.get("eta_s") is None:
            continue
        if event["time"] - begin < 0.1 * (end - begin):
            continue
        left = end - event["time"]
        if left > 0:
            errors.append(abs(event["time"] + event["eta_s"] - end) / left)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=("demo", "raccoon", "dense"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("train_options", nargs="*", help="after --: more frcnn train options")
    args, extra = parser.parse_known_args()
    extra = [option for option in extra if option != "--"]
    out = args.out or ROOT / "runs" / f"bench-{args.data}"
    project = out / "project"
    if args.data == "demo":
        subprocess.run([frcnn_command(), "demo", "--out", str(project)], check=True)
    elif args.data == "dense":
        source = write_dense_set(out / "dense")
        for command in (["import", str(source / "instances.json"), "--project", str(project)],
                        ["set-status", "--project", str(project), "--status", "done", "--all"],
                        ["split", "--project", str(project), "--train", "0.8", "--val", "0.2"]):
            subprocess.run([frcnn_command(), *command], check=True)
    else:
        from bench.train_raccoon import build_project

        build_project(project)
    run = out / "run"
    command = [frcnn_command(), "train", "--project", str(project), "--out", str(run),
               *args.train_options, *extra]
    load_before = os.getloadavg()
    start = time.monotonic()
    code = subprocess.run(command).returncode
    wall = time.monotonic() - start
    load_after = os.getloadavg()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["event"] == "started")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    errors = eta_errors(events)
    steps = [e for e in events if e["event"] == "step"]
    result = {
        "command": " ".join(command[1:]), "exit": code, "wall_s": round(wall, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "cpu": _cpu_name(), "precision": started.get("precision"),
        "time_budget_s": started.get("time_budget_s"), "steps": len(steps),
        "images_per_s_last": steps[-1]["images_per_s"] if steps else None,
        "evaluations": [{k: m[k] for k in ("epoch", "step", "AP", "AP50", "AP75")}
                        for m in metrics],
        "eta_error_max": round(max(errors), 3) if errors else None,
        "eta_error_median": round(sorted(errors)[len(errors) // 2], 3) if errors else None,
    }
    print(json.dumps(result, indent=1))
    (out / "result.json").write_text(json.dumps(result, indent=1))


def write_dense_set(folder: Path, count: int = 120, seed: int = 0) -> Path:
    """Images with many small objects and their COCO file ``folder/instances.json``."""
    import random

    import numpy as np
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    classes = ("dot", "block", "wedge")
    images, annotations = [], []
    for index in range(count):
        noise = np.random.default_rng(seed * 1000 + index).integers(90, 170, (360, 480, 3))
        image = Image.fromarray(noise.astype("uint8"))
        draw = ImageDraw.Draw(image)
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(rng.randint(10, 16)):
            size = rng.randint(10, 28)
            for _attempt in range(20):
                x0, y0 = rng.randint(0, 480 - size), rng.randint(0, 360 - size)
                box = (x0, y0, x0 + size, y0 + size)
                if all(box[2] <= o[0] or o[2] <= box[0] or box[3] <= o[1] or o[3] <= box[1]
                       for o in boxes):
                    break
            else:
                continue
            kind = rng.randrange(3)
            colour = tuple(rng.randint(0, 255) for _ in range(3))
            if kind == 0:
                draw.ellipse(box, fill=colour)
            elif kind == 1:
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
            else:
                draw.polygon([(x0 + size / 2, y0), (x0 + size - 1, y0 + size - 1),
                              (x0, y0 + size - 1)], fill=colour)
            boxes.append(box)
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                "category_id": kind + 1, "bbox": [x0, y0, size, size],
                                "area": size * size, "iscrowd": 0})
        name = f"dense_{index:03d}.png"
        image.save(folder / name)
        images.append({"id": index + 1, "file_name": name, "width": 480, "height": 360})
    (folder / "instances.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}))
    return folder


def _cpu_name() -> str:
    model = cpu_model()
    return f"{model} ({os.cpu_count()} cores)" if model else f"{os.cpu_count()} cores"


if __name__ == "__main__":
    main()
