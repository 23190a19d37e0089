"""``frcnn split``: imported images without splits get them, at random but repeatably."""

from __future__ import annotations

from engine.cli import main
from engine.data.demo import write_demo_project
from engine.data.project import Project


def _splits(folder):
    with Project.open(folder) as project:
        return {row.id: row.split for row in project.images()}


def test_split_assigns_every_image_repeatably(tmp_path, capsys):
    folder = write_demo_project(tmp_path / "p", count=10)
    assert main(["split", "--project", str(folder), "--train", "0.6", "--val", "0.4",
                 "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == "train 6, val 4"
    first = _splits(folder)
    main(["split", "--project", str(folder), "--train", "0.6", "--val", "0.4", "--seed", "3"])
    assert _splits(folder) == first
    assert sorted(set(first.values())) == ["train", "val"]
