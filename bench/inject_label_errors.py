"""Injected label errors: how many land at the top of the review queue.

    python bench/inject_label_errors.py [--sets demo raccoon] [--quick] [--budget 4m]
                                        [--folds K] [--rate 0.05] [--seed 0] [--out DIR]

On a copy of the demo set (generated, 4 classes) and of the raccoon photos
(``../shared/data/raccoon``, 1 class), 5% of the boxes of each split are made wrong, each one
way: dropped, shifted by half its size (width or height, in a direction that stays in the
image), or given another class (not on raccoon: it has one class). Then a model that did not
train on the reviewed images predicts them, and :func:`engine.active.review.score_labels`
(cleanlab) makes the review queue:

- by default, a model trained with ``frcnn train`` (the CPU preset, ``--budget`` seconds) on
  the train split (its labels just as wrong) reviews the val split;
- with ``--folds K``, k-fold over all done images (K models of ``--budget`` each).

Reported per set, from the same predictions scored twice (the model's own confidence level,
``--confident auto``, the default; and cleanlab's fixed 0.95): the share of the injected errors
among the reviewed images found in the top 5% of the queue (top K entries, K = 5% of the
reviewed boxes, rounded up: as many entries as errors were injected), per error kind too, and
what reviewing K boxes in random order would find (K / boxes). An error is found by an entry on
its image that points at it: for a dropped box, an entry whose proposal has IoU >= 0.5 with the
dropped box; for a shifted or re-classed box, an entry on that label box. ``--quick`` makes
the demo set smaller (120 images) and the default budget 2 minutes, to check the whole path end
to end.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine_info import cpu_model
from engine.active.held_out import review_kfold, review_split
from engine.active.review import KINDS, ReviewQueue
from engine.cli import main as frcnn
from engine.cli import parse_duration
from engine.data.annotations import BoxRecord
from engine.data.demo import write_demo_project
from engine.data.importing import import_annotations
from engine.data.project import Project

ROOT = Path(__file__).resolve().parents[1]
RACCOON = ROOT.parent / "shared" / "data" / "raccoon"
DROPPED, SHIFTED, RECLASSED = "dropped", "shifted", "other class"


@dataclass
class Injected:
    """One injected error: ``box`` the box as it was, ``now`` as it is (None: dropped),
    ``kind`` one of DROPPED, SHIFTED, RECLASSED."""

    image_id: int
    split: str
    kind: str
    box: BoxRecord
    now: BoxRecord | None


def build_demo(folder: Path, count: int) -> Path:
    return write_demo_project(folder, count=count, val_fraction=0.5, seed=0)


def build_raccoon(folder: Path) -> Path:
    """The 200 labelled raccoon photos, half train, half val (seeded): the val half is what the
    split review looks at, so it needs its share of errors (the CSVs' 40 would hold 2)."""
    with Project.create(folder) as project:
        import_annotations(project, RACCOON / "annotations")
        by_name = {row.file.name: row.id for row in project.images()}
        names = set()
        for csv_name in ("train_labels.csv", "test_labels.csv"):
            with open(RACCOON / "data" / csv_name, newline="") as rows:
                names |= {row["filename"] for row in csv.DictReader(rows)}
        ids = sorted(by_name[name] for name in names)
        project.set_status(ids, "done")
        random.Random(0).shuffle(ids)
        project.set_split(ids[: len(ids) // 2], "train")
        project.set_split(ids[len(ids) // 2:], "val")
    return folder


def shifted(box: BoxRecord, width: int, height: int, rng: random.Random) -> BoxRecord:
    """``box`` moved by half its width or height, in a direction that keeps it in the image
    (or as far as it goes)."""
    w, h = box.x1 - box.x0, box.y1 - box.y0
    moves = [(w / 2, 0), (-w / 2, 0), (0, h / 2), (0, -h / 2)]
    inside = [(dx, dy) for dx, dy in moves if box.x0 + dx >= 0 and box.x1 + dx <= width
              and box.y0 + dy >= 0 and box.y1 + dy <= height]
    dx, dy = rng.choice(inside or moves)
    dx = min(max(dx, -box.x0), width - box.x1)
    dy = min(max(dy, -box.y0), height - box.y1)
    return BoxRecord(box.x0 + dx, box.y0 + dy, box.x1 + dx, box.y1 + dy, box.category_id,
                     box.difficult, box.truncated, box.source, box.score)


def inject(project_folder: Path, rate: float, seed: int) -> list[Injected]:
    """Make ``rate`` of each split's boxes wrong (rounded up), the kinds in turn."""
    rng = random.Random(seed)
    injected: list[Injected] = []
    with Project.open(project_folder) as project:
        categories = [c.id for c in project.categories()]
        kinds = [DROPPED, SHIFTED] + ([RECLASSED] if len(categories) > 1 else [])
        for split in ("train", "val"):
            rows = {r.id: r for r in project.images(split=split) if r.status == "done"}
            boxes = [(image_id, index) for image_id in sorted(rows)
                     for index in range(len(project.boxes(image_id)))]
            chosen = rng.sample(boxes, math.ceil(rate * len(boxes)))
            by_image: dict[int, list[tuple[int, str]]] = {}
            for position, (image_id, index) in enumerate(chosen):
                by_image.setdefault(image_id, []).append((index, kinds[position % len(kinds)]))
            for image_id, changes in by_image.items():
                row = rows[image_id]
                base = [b.to_record() for b in project.boxes(image_id)]
                new: list[BoxRecord | None] = list(base)
                for index, kind in changes:
                    old = base[index]
                    if kind == DROPPED:
                        now = None
                    elif kind == SHIFTED:
                        now = shifted(old, row.width, row.height, rng)
                    else:
                        now = BoxRecord(old.x0, old.y0, old.x1, old.y1,
                                        rng.choice([c for c in categories
                                                    if c != old.category_id]),
                                        old.difficult, old.truncated, old.source, old.score)
                    new[index] = now
                    injected.append(Injected(image_id, split, kind, old, now))
                project.set_boxes(image_id, [b for b in new if b is not None], base=base)
    return injected


def iou(a: tuple, b: tuple) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def found(error: Injected, entries) -> bool:
    old = (error.box.x0, error.box.y0, error.box.x1, error.box.y1)
    for entry in entries:
        if entry.image_id != error.image_id:
            continue
        if error.now is None:
            if entry.proposal is not None and iou(entry.proposal, old) >= 0.5:
                return True
        elif entry.box == (error.now.x0, error.now.y0, error.now.x1, error.now.y1) and \
                entry.category_id == error.now.category_id:
            return True
    return False


def measure(queue: ReviewQueue, errors: list[Injected], boxes: int) -> dict:
    top = math.ceil(0.05 * boxes)
    head = queue.entries[:top]
    result = {"reviewed_images": len(queue.image_scores), "reviewed_boxes": boxes,
              "queue": len(queue.entries), "top": top, "errors": len(errors),
              "found": sum(found(e, head) for e in errors),
              "found_anywhere": sum(found(e, queue.entries) for e in errors),
              "random_order": round(top / max(boxes, 1), 3), "per_kind": {},
              "top_kinds": {k: sum(e.kind == k for e in head) for k in KINDS},
              "skipped": len(queue.skipped)}
    result["share"] = round(result["found"] / max(len(errors), 1), 3)
    for kind in (DROPPED, SHIFTED, RECLASSED):
        of_kind = [e for e in errors if e.kind == kind]
        if of_kind:
            result["per_kind"][kind] = f"{sum(found(e, head) for e in of_kind)}/{len(of_kind)}"
    return result


def run_set(name: str, folder: Path, args: argparse.Namespace) -> dict:
    project = build_demo(folder / "project", args.demo_images) if name == "demo" \
        else build_raccoon(folder / "project")
    errors = inject(project, args.rate, args.seed)
    start = time.perf_counter()
    say = lambda f, t: print(f"  {name}: {100 * f:3.0f}% {t}", file=sys.stderr, flush=True)  # noqa: E731
    ap = None
    if args.folds:
        queue = review_kfold(project, folds=args.folds, budget_s=args.budget, device="cpu",
                             seed=args.seed, work=folder / "folds", progress=say)
        reviewed = errors
    else:
        run = folder / "run"
        code = frcnn(["train", "--project", str(project), "--out", str(run), "--device", "cpu",
                      "--time-budget", f"{args.budget:g}s", "--seed", str(args.seed),
                      *(["--lr", str(args.lr)] if args.lr else [])])
        if code != 0:
            raise SystemExit(f"training failed ({code})")
        metrics = [json.loads(line) for line in
                   (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        ap = metrics[-1] if metrics else None
        checkpoint = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
        queue = review_split(checkpoint, project, "val", progress=say)
        reviewed = [e for e in errors if e.split == "val"]
    seconds = round(time.perf_counter() - start, 1)
    with Project.open(project, read_only=True) as store:
        boxes = sum(len(store.boxes(i)) for i in queue.image_scores)
    boxes += sum(e.now is None for e in reviewed)  # as labelled before the errors
    results = []
    # The same predictions at the model's own confidence level ("auto", the default) and at
    # cleanlab's fixed 0.95.
    for level in ("auto", None):
        scored = queue.rescored(level)
        result = measure(scored, reviewed, boxes)
        result.update({"set": name, "seconds": seconds, "source": queue.source,
                       "confident": f"{'auto' if level else 'cleanlab'} "
                                    f"{scored.confident:.3f}",
                       "AP50": None if ap is None else round(ap.get("AP50", -1), 3),
                       "AP": None if ap is None else round(ap.get("AP", -1), 3)})
        results.append(result)
    return results


def machine() -> str:
    cpu = cpu_model() or platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["demo", "raccoon"],
                        choices=["demo", "raccoon"])
    parser.add_argument("--quick", action="store_true",
                        help="120 demo images, a 2-minute default budget")
    parser.add_argument("--budget", type=parse_duration, default=None,
                        help="training time per model (default 4m, 2m with --quick)")
    parser.add_argument("--folds", type=int, default=0,
                        help="k-fold over all done images instead of train -> val")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate for frcnn train (default: the preset's)")
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "inject-label-errors")
    args = parser.parse_args()
    args.budget = args.budget or (120.0 if args.quick else 240.0)
    args.demo_images = 120 if args.quick else 300
    if "raccoon" in args.sets and not RACCOON.is_dir():
        print(f"{RACCOON} is not there: raccoon left out", file=sys.stderr)
        args.sets = [s for s in args.sets if s != "raccoon"]
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"machine: {machine()}; load average before: {os.getloadavg()}")
    print(f"settings: rate {args.rate}, budget {args.budget:g} s, lr {args.lr or 'preset'}, "
          f"{f'{args.folds}-fold' if args.folds else 'train -> val'}, seed {args.seed}, "
          f"demo images {args.demo_images}")
    results = []
    for name in args.sets:
        for result in run_set(name, args.out / name, args):
            results.append(result)
            print(json.dumps(result))
    print(f"load average after: {os.getloadavg()}")
    print("| set | model | AP50 | confident from | reviewed images / boxes | injected | "
          "top 5% (entries) | found in top 5% | dropped / shifted / other class | "
          "random order | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        kinds = " / ".join(r["per_kind"].get(k, "-") for k in (DROPPED, SHIFTED, RECLASSED))
        print(f"| {r['set']} | {r['source']} | {r['AP50']} | {r['confident']} | "
              f"{r['reviewed_images']} / "
              f"{r['reviewed_boxes']} | {r['errors']} | {r['top']} | "
              f"**{r['found']}/{r['errors']} ({100 * r['share']:.0f}%)** | {kinds} | "
              f"{100 * r['random_order']:.0f}% | {r['seconds']} |")


if __name__ == "__main__":
    main()
