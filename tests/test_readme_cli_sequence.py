"""The README's command-line sequence, run as written: the bare ``frcnn`` of this environment
on PATH, in an empty folder holding the files the commands name (labels/, photos/, photo.jpg,
...), and every file a command names exists afterwards.

Two departures, both stated here: ``--time-budget 10m`` runs as ``--time-budget 1m`` (a test
cannot take ten minutes; the budget's schedule is the same, shorter), and ``frcnn detect
photo.jpg --weights coco`` is checked to explain that torchvision's COCO weights are not in
the cache (the suite downloads nothing, and the README says "when cached").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .conftest import REPO, TEST_DATA

SHORTER = ("--time-budget 10m", "--time-budget 1m")
NEEDS_DOWNLOAD = "frcnn detect photo.jpg --weights coco"


def readme_commands() -> list[str]:
    """The ``frcnn`` lines of the README's command-line block, as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The command line"):]
    block = section[section.index("```bash") + len("```bash"):]
    block = block[:block.index("```")]
    return [line for line in block.splitlines() if line.startswith("frcnn ")]


def _inputs(folder: Path) -> None:
    """What the commands name: an annotation folder, a photo folder, photos."""
    labels = folder / "labels"
    labels.mkdir()
    images, annotations = [], []
    for number in range(1, 6):
        Image.new("RGB", (96, 64), (40 * number, 90, 160)).save(labels / f"l{number}.jpg")
        images.append({"id": number, "file_name": f"l{number}.jpg", "width": 96, "height": 64})
        annotations.append({"id": number, "image_id": number, "category_id": 1,
                            "bbox": [10, 10, 30, 20], "area": 600, "iscrowd": 0})
    (labels / "instances.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "box"}]}))
    (folder / "photos").mkdir()
    shutil.copyfile(TEST_DATA / "raccoon-1.jpg", folder / "photos" / "p1.jpg")
    for name, source in (("photo.jpg", "raccoon-1.jpg"), ("photo1.jpg", "raccoon-1.jpg"),
                         ("photo2.jpg", "raccoon-10.jpg")):
        shutil.copyfile(TEST_DATA / source, folder / name)


def test_the_readme_lists_the_commands_this_test_runs():
    commands = readme_commands()
    assert any(SHORTER[0] in line and line.startswith("frcnn train") for line in commands)
    assert any(line.startswith(NEEDS_DOWNLOAD) for line in commands)
    assert any(line.startswith("frcnn set-status") for line in commands)


@pytest.mark.slow
def test_the_readme_command_sequence_runs_as_written(tmp_path):
    frcnn = Path(sys.executable).with_name("frcnn")
    if not frcnn.is_file():
        pytest.skip(f"no frcnn script beside {sys.executable} (install with pip install -e .)")
    _inputs(tmp_path)
    env = dict(os.environ, PATH=f"{frcnn.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for line in readme_commands():
        command = line.replace(*SHORTER)
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, text=True,
                                capture_output=True, timeout=1800)
        if line.startswith(NEEDS_DOWNLOAD):
            assert result.returncode == 2 and "fasterrcnn_resnet50_fpn_coco" in result.stderr
            continue
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if line.startswith("frcnn train"):
            assert "settings: preset cpu" in result.stderr or "preset reference-gpu" in \
                result.stderr
            assert "evaluating on 60 val images" in result.stderr
    for name in ("mine/project.sqlite", "mine.json", "demo/project.sqlite", "runs/demo/last.pt",
                 "runs/demo/best.pt", "runs/demo/events.jsonl", "runs/demo/metrics.jsonl",
                 "preds.json", "trace/summary.json", "demo.onnx"):
        assert (tmp_path / name).is_file(), name
