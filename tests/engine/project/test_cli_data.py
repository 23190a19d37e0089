"""``frcnn import``, ``add-images`` and ``export-annotations`` as a user runs them: the real
raccoon dataset round trip, bare image folders, per-image reports and errors without
tracebacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from engine.cli import main
from engine.data.project import Project

from .conftest import write_image


def _voc_files(folder: Path) -> dict[str, tuple]:
    """File name -> (verified, (width, height, depth), objects as written: name, xmin, ymin,
    xmax, ymax, truncated, difficult) for every XML in ``folder``."""
    found = {}
    for xml_file in sorted(folder.glob("*.xml")):
        root = ET.parse(xml_file).getroot()
        found[root.findtext("filename")] = (
            root.get("verified"),
            tuple(root.findtext(f"size/{key}") for key in ("width", "height", "depth")),
            [(obj.findtext("name"),
              *(obj.findtext(f"bndbox/{key}") for key in ("xmin", "ymin", "xmax", "ymax")),
              obj.findtext("truncated"), obj.findtext("difficult"))
             for obj in root.iter("object")])
    return found


def test_the_raccoon_dataset_voc_to_project_to_voc_is_exact(shared_data, tmp_path, capsys):
    """200 files, 217 boxes. raccoon-116, 74, 83 and 98 are byte-identical to raccoon-11, 52,
    120 and 65 but carry other boxes: each stays an image of its own, with a note."""
    raccoon = shared_data / "raccoon"
    project = tmp_path / "raccoon"
    assert main(["import", str(raccoon), "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert "200 images added (4 with the same content as another image)" in out
    assert "217 boxes added" in out
    with Project.open(project) as opened:
        info = opened.info()
        assert (info.images, info.boxes) == (200, 217)
        boxes = {image.file.name: [(b.x0, b.y0, b.x1, b.y1) for b in opened.boxes(image.id)]
                 for image in opened.images()}
    # raccoon-11.xml: xmin 3 ymin 1 xmax 461 ymax 431; raccoon-116.xml: 3 1 436 430.
    assert boxes["raccoon-11.jpg"] == [(2, 0, 461, 431)]
    assert boxes["raccoon-116.jpg"] == [(2, 0, 436, 430)]
    assert ("raccoon-116.jpg: note: same content as "
            f"{raccoon / 'images' / 'raccoon-11.jpg'} (earlier in this import)") in out

    assert main(["export-annotations", "--project", str(project), "--format", "voc",
                 "--out", str(tmp_path / "back"), "--images", "none"]) == 0
    source = _voc_files(raccoon / "annotations")
    back = _voc_files(tmp_path / "back" / "Annotations")
    assert len(source) == len(back) == 200
    assert back == source  # names, sizes, depths (3 grayscale: 1), verified, corners, flags
    assert back["raccoon-150.jpg"][1] == ("275", "183", "1")  # a grayscale JPEG
    assert back["raccoon-37.jpg"][0] == "no"


def _voc_folder(root: Path) -> Path:
    """LabelImg's loose layout: a.xml with one good and two bad objects, b.xml with one."""
    write_image(root / "a.jpg", shade=1)
    write_image(root / "b.jpg", shade=2)
    good = "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>" \
           "<ymax>9</ymax></bndbox></object>"
    negative = good.replace("<xmin>1</xmin>", "<xmin>20</xmin>")  # xmin 20 > xmax 9: skipped
    no_box = "<object><name>cat</name></object>"  # no <bndbox>: skipped
    for stem, objects in (("a", good + negative + no_box), ("b", good)):
        (root / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>64</width>"
            f"<height>48</height><depth>3</depth></size>{objects}</annotation>")
    return root


def test_import_counts_the_readers_skipped_boxes_and_verbose_lists_every_image(tmp_path,
                                                                            capsys):
    source = _voc_folder(tmp_path / "voc")
    assert main(["import", str(source), "--project", str(tmp_path / "p"), "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 boxes added" in lines[0] and "2 invalid boxes skipped" in lines[0]
    assert lines[1:3] == [f"  added {source / 'a.jpg'}: 1 box",
                          f"  added {source / 'b.jpg'}: 1 box"]
    assert [line.split(": ")[2] for line in lines[3:]] == ["skipped", "skipped"]
    # Again: both images are already there (same paths), nothing new.
    assert main(["import", str(source), "--project", str(tmp_path / "p"), "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "0 images added, 2 merged" in lines[0]
    assert lines[1:3] == [f"  merged {source / 'a.jpg'}: 0 boxes",
                          f"  merged {source / 'b.jpg'}: 0 boxes"]


def test_a_folder_of_bare_images_is_added_with_add_images(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_image(photos / "a.jpg", shade=1)
    write_image(photos / "more" / "b.png", 30, 20, shade=2)
    write_image(photos / "copy of a.jpg", shade=1)  # same bytes as a.jpg
    project = tmp_path / "p"
    # import names the command to use, and creates nothing.
    assert main(["import", str(photos), "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "no recognizable annotations" in err
    assert f"frcnn add-images {photos} --project {project}" in err
    assert not project.exists()

    assert main(["add-images", str(photos), "--project", str(project), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"added 3 images to {project} (unlabeled); 0 left out"
    assert "copy of a.jpg: image: note: same content as" in out
    with Project.open(project) as opened:
        assert [(i.file.name, i.width, i.height, i.status, i.split) for i in opened.images()] \
            == [("a.jpg", 64, 48, "unlabeled", "train"),
                ("copy of a.jpg", 64, 48, "unlabeled", "train"),
                ("b.png", 30, 20, "unlabeled", "train")]
    # Again: every file is already there.
    assert main(["add-images", str(photos), "--project", str(project)]) == 0
    assert "added 0 images" in capsys.readouterr().out
    # A path that does not exist, or holds no image, is an error and creates nothing.
    assert main(["add-images", str(tmp_path / "nope"), "--project", str(tmp_path / "q")]) == 2
    assert f"{tmp_path / 'nope'}: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["add-images", str(tmp_path / "empty"), "--project", str(tmp_path / "q")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_the_real_odd_and_rotated_images_are_added(shared_data, tmp_path, capsys):
    odd = shared_data / "labelimg_samples" / "odd_images"  # a non-ASCII name, a palette BMP
    rotated = shared_data / "exif_orientation"  # orientations 0..8, landscape and portrait
    assert main(["add-images", str(odd), str(rotated), "--project", str(tmp_path / "p")]) == 0
    assert "added 20 images" in capsys.readouterr().out
    with Project.open(tmp_path / "p") as opened:
        sizes = {i.file.name: (i.width, i.height) for i in opened.images()}
    assert sizes["臉書.jpg"] == (33, 32) and sizes["test.512.512.bmp"] == (512, 512)
    # Every one is shown 1800 x 1200 (landscape) or 1200 x 1800 (portrait) once turned.
    assert {sizes[f"Landscape_{n}.jpg"] for n in range(9)} == {(1800, 1200)}
    assert {sizes[f"Portrait_{n}.jpg"] for n in range(9)} == {(1200, 1800)}


def test_export_to_a_file_or_under_a_file_is_an_error_not_a_traceback(tmp_path, capsys):
    source = _voc_folder(tmp_path / "voc")
    project = tmp_path / "p"
    assert main(["import", str(source), "--project", str(project)]) == 0
    capsys.readouterr()
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")

    def export(format: str, out: Path) -> str:
        assert main(["export-annotations", "--project", str(project), "--format", format,
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1
        return err.strip()

    assert export("voc", afile) == (
        f"frcnn: error: {afile}: is a file; the voc export needs a folder there")
    assert export("coco", afile / "out.json") == (
        f"frcnn: error: {afile}: is a file; the coco export needs a folder there (or a .json "
        f"file name)")
    # Deeper under a file: the operating system's own reason, with the path.
    assert export("yolo", afile / "a") == (
        f"frcnn: error: {afile / 'a' / 'images'}: Not a directory")
    assert afile.read_text() == "not a folder"
