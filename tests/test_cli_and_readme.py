"""The console scripts exist and the README's test command is the one CI runs."""

from __future__ import annotations

import subprocess
import sys

from engine.cli import main

from .conftest import REPO


def test_readme_test_command_is_what_ci_runs():
    ci_command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command.endswith(".venv/bin/python -m pytest")
    assert ci_command in (REPO / "README.md").read_text()


def test_frcnn_lists_backbones(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_large",
                 "efficientnet_lite0"):
        assert name in out


def test_frcnn_detect_offline_without_weights_explains(capsys, tmp_path):
    image = REPO / "tests" / "data" / "raccoon-1.jpg"
    assert main(["detect", str(image), "--weights", "coco"]) == 2
    assert "fasterrcnn_resnet50_fpn_coco" in capsys.readouterr().err


def test_frcnn_module_runs_as_a_program():
    result = subprocess.run([sys.executable, "-m", "engine.cli", "--help"],
                            capture_output=True, text=True, check=True, cwd=REPO)
    assert "detect" in result.stdout


def test_frcnn_help_speaks_to_its_user():
    result = subprocess.run([sys.executable, "-m", "engine.cli", "--help"],
                            capture_output=True, text=True, check=True, cwd=REPO)
    assert "Qt" not in result.stdout and "Never imports" not in result.stdout
    assert "train" in result.stdout and "COMMAND --help" in result.stdout


def test_the_readme_says_where_the_demo_project_lives():
    readme = (REPO / "README.md").read_text()
    assert "~/.local/share/frcnn-workbench/demo" in readme
