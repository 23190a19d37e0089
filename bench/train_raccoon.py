"""The quality figure on real photos: train on the raccoon dataset's 160 training photos,
evaluate on its 40 test photos (the split its CSV files give), on this machine's CPU.

    python bench/train_raccoon.py [--out runs/raccoon] [--config resources/configs/raccoon-cpu.json]

Imports ``../shared/data/raccoon`` (LabelImg's Pascal VOC files, as a user would with
``frcnn import``) into a new project: 200 images, 217 boxes (the four photos the dataset holds
twice under two names, labelled slightly differently, stay two images each, as in its CSVs).
Sets train/val from ``data/train_labels.csv`` (160 photos) and ``data/test_labels.csv`` (40),
marks those 200 done (the CSVs are the dataset's own list of labelled photos; raccoon-37.xml
alone says ``verified="no"`` and imports as in progress), then runs ``frcnn train`` and prints
the wall time and the metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli import main as frcnn
from engine.data.importing import import_annotations
from engine.data.project import Project

ROOT = Path(__file__).resolve().parents[1]
RACCOON = ROOT.parent / "shared" / "data" / "raccoon"


def build_project(folder: Path) -> Path:
    with Project.create(folder) as project:
        report = import_annotations(project, RACCOON / "annotations")
        print(report.summary())
        for entry in report.entries:
            print(f"  {entry}")
        by_name = {row.file.name: row.id for row in project.images()}
        for csv_name, split in (("train_labels.csv", "train"), ("test_labels.csv", "val")):
            with open(RACCOON / "data" / csv_name, newline="") as rows:
                ids = [by_name[name] for name in sorted({row["filename"] for row in
                                                         csv.DictReader(rows)})]
            project.set_split(ids, split)
            project.set_status(ids, "done")
        counts = {split: len(project.dataset(split)) for split in ("train", "val")}
        print(f"splits from the CSVs: train {counts['train']}, val {counts['val']}")
        assert counts == {"train": 160, "val": 40}, counts
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "raccoon")
    parser.add_argument("--config", type=Path,
                        default=ROOT / "resources" / "configs" / "raccoon-cpu.json")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    project = build_project(args.out / "project")
    start = time.perf_counter()
    code = frcnn(["train", "--project", str(project), "--out", str(args.out / "run"),
                  "--config", str(args.config), "--device", args.device])
    minutes = (time.perf_counter() - start) / 60
    lines = (args.out / "run" / "metrics.jsonl").read_text().splitlines()
    for line in lines:
        record = json.loads(line)
        print(f"epoch {record['epoch']}: AP {record['AP']:.3f} AP50 {record['AP50']:.3f} "
              f"AP75 {record['AP75']:.3f}")
    print(f"exit {code}, {minutes:.1f} minutes")


if __name__ == "__main__":
    main()
