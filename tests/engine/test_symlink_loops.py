"""A path that leads nowhere is reported as what it is: missing, a broken symbolic link or a
symbolic link loop (``Path.exists()`` calls all three "not there")."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from engine.cli import main
from engine.data.images import ImageLoadError, image_size, load_image
from engine.data.paths import unreachable_reason
from engine.data.project import Project

pytestmark = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges there")


def _loop(folder):
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(folder / "b.jpg", folder / "a.jpg")
    os.symlink(folder / "a.jpg", folder / "b.jpg")
    return folder / "a.jpg"


def test_the_reason_tells_loops_broken_links_and_missing_paths_apart(tmp_path):
    loop = _loop(tmp_path / "loop")
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    assert "symbolic link loop" in unreachable_reason(loop)
    assert unreachable_reason(tmp_path / "broken.png") == (
        f"a broken symbolic link to {tmp_path / 'gone.png'}, which does not exist")
    assert unreachable_reason(tmp_path / "nothing") == "no such file or folder"
    assert unreachable_reason(tmp_path) is None


def test_add_images_names_a_loop_given_and_one_found_in_a_folder(tmp_path, capsys):
    loop = _loop(tmp_path / "photos")
    Image.new("RGB", (20, 10)).save(tmp_path / "photos" / "real.png")
    assert main(["add-images", str(loop), "--project", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert f"{loop}: a symbolic link loop" in err and "no such file" not in err
    assert not (tmp_path / "p").exists()
    assert main(["add-images", str(tmp_path / "photos"), "--project", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "added 1 image " in out and "2 left out" in out
    assert f"{loop}: image: skipped: a symbolic link loop" in out
    with Project.open(tmp_path / "p") as project:
        assert [image.file.name for image in project.images()] == ["real.png"]


def test_loading_a_loop_says_loop(tmp_path):
    loop = _loop(tmp_path / "l")
    for read in (load_image, image_size):
        with pytest.raises(ImageLoadError, match="symbolic link loop"):
            read(loop)
