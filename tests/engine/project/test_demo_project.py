"""``write_demo_project`` and ``frcnn demo`` / ``frcnn info``: a deterministic labeled project."""

from __future__ import annotations

import pytest

from engine.cli import main
from engine.data.demo import CLASSES, draw_demo_image, write_demo_project
from engine.data.project import Project, ProjectError

from .conftest import table_dump


def test_the_demo_project_is_the_same_for_the_same_seed(tmp_path):
    first = write_demo_project(tmp_path / "a", count=8, seed=2)
    second = write_demo_project(tmp_path / "b", count=8, seed=2)
    other = write_demo_project(tmp_path / "c", count=8, seed=3)
    with Project.open(first) as a, Project.open(second) as b, Project.open(other) as c:
        assert table_dump(a) == table_dump(b)
        assert table_dump(a) != table_dump(c)
        images = a.images()
        assert [(c.id, c.name) for c in a.categories()] == list(enumerate(CLASSES, start=1))
        assert [i.path for i in images] == [f"images/demo_{2000 + k}.png" for k in range(8)]
        assert {(i.width, i.height, i.status, i.problem) for i in images} == {
            (320, 240, "done", None)}
        assert sorted(i.split for i in images) == ["train"] * 6 + ["val"] * 2  # 80/20 of 8
        assert all(i.box_count >= 1 for i in images)
        assert {box.source for i in images for box in a.boxes(i.id)} == {"manual"}
    for name in ("demo_2000.png", "demo_2007.png"):
        assert (first / "images" / name).read_bytes() == (second / "images" / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no partial folders


def test_demo_shapes_cover_every_class_and_do_not_hide_each_other():
    labels, covered = set(), []
    for seed in range(40):
        item = draw_demo_image(seed)
        labels.update(item.labels)
        for i, a in enumerate(item.boxes):
            for b in item.boxes[i + 1:]:
                w = min(a[2], b[2]) - max(a[0], b[0])
                h = min(a[3], b[3]) - max(a[1], b[1])
                if w > 0 and h > 0:
                    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                    covered.append(w * h / smaller)
    assert labels == set(CLASSES)
    assert covered and max(covered) <= 1 / 3  # some overlap, never more than a third


def test_the_demo_refuses_a_folder_with_something_in_it(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not an empty folder"):
        write_demo_project(tmp_path / "full", count=2)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert Project.exists(write_demo_project(tmp_path / "empty", count=2))


def test_frcnn_demo_then_info(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--count", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 images" in out and "train 8, val 2" in out
    assert len(list((tmp_path / "demo" / "images").glob("*.png"))) == 10
    assert main(["info", "--project", str(tmp_path / "demo")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("images: 10, boxes: ")
    assert "categories: 4" in lines[1]
    assert lines[2] == "images per split: train 8, val 2, test 0, none 0"
    assert lines[3] == "images per status: unlabeled 0, in_progress 0, done 10, skipped 0"
    assert any(line.split()[:2] == ["4", "cross"] for line in lines[5:9])
    assert "image sizes: smallest 320x240, largest 320x240, most common 320x240 (10 images)" \
        in lines
    assert "missing images: 0" in lines


def test_frcnn_info_reports_files_that_went_missing(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path / "demo"), "--count", "3"])
    (tmp_path / "demo" / "images" / "demo_001.png").unlink()
    capsys.readouterr()
    assert main(["info", "--project", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "missing images: 1\n  missing: images/demo_001.png" in out


def test_frcnn_info_on_a_folder_without_a_project_fails_clearly(tmp_path, capsys):
    assert main(["info", "--project", str(tmp_path)]) == 2
    assert "not a project folder" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "x"), "--count", "0"]) == 2


def test_a_demo_with_images_left_to_label(tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=6, unlabeled=3)
    with Project.open(folder) as project:
        images = project.images()
        assert [image.status for image in images] == ["done"] * 6 + ["unlabeled"] * 3
        assert [image.box_count > 0 for image in images[6:]] == [False] * 3
        assert [image.split for image in images[6:]] == [None] * 3
        assert {image.split for image in images[:6]} == {"train", "val"}
    # The labeled part is the same project as without the extra images.
    plain = write_demo_project(tmp_path / "plain", count=6)
    with Project.open(plain) as a, Project.open(folder) as b:
        assert [(i.split, i.hash) for i in a.images()] == \
            [(i.split, i.hash) for i in b.images()[:6]]
