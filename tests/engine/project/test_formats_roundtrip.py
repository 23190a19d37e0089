"""Real formats through the project: import, export, and the CLI commands end to end.

Round trips: VOC -> project -> VOC gives identical boxes (integers stay integers), YOLO ->
project -> YOLO agrees within 1e-6, COCO -> project -> COCO keeps boxes and categories (ids
and names).
"""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.cli import main
from engine.data.exporting import export_annotations
from engine.data.importing import import_annotations
from engine.data.project import Project

from .conftest import table_dump, write_image


def _voc_dataset(root: Path) -> Path:
    """A VOC devkit folder: 4 images, integer corners, flags, train/val lists."""
    objects = {
        "a": [("dog", 1, 1, 64, 48, 0, 0), ("cat", 10, 5, 20, 30, 1, 0)],
        "b": [("cat", 3, 4, 50, 40, 0, 1)],
        "c": [],
        "d": [("person", 2, 2, 9, 9, 0, 0), ("dog", 30, 20, 60, 45, 1, 1)],
    }
    for index, (stem, boxes) in enumerate(objects.items()):
        write_image(root / "JPEGImages" / f"{stem}.jpg", 64, 48, shade=index + 1)
        xml = ["<annotation>", f"<filename>{stem}.jpg</filename>",
               "<size><width>64</width><height>48</height><depth>3</depth></size>"]
        for name, x0, y0, x1, y1, difficult, truncated in boxes:
            xml.append(f"<object><name>{name}</name><truncated>{truncated}</truncated>"
                       f"<difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin>"
                       f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
        xml.append("</annotation>")
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text("".join(xml))
    main_folder = root / "ImageSets" / "Main"
    main_folder.mkdir(parents=True)
    (main_folder / "train.txt").write_text("a\nb\nc\n")
    (main_folder / "val.txt").write_text("d\n")
    return root


def _voc_objects(folder: Path) -> dict[str, list[tuple]]:
    """file name -> its objects as written (name, bndbox texts, flags)."""
    found = {}
    for xml_file in sorted((folder / "Annotations").glob("*.xml")):
        root = ET.parse(xml_file).getroot()
        found[root.findtext("filename")] = [
            (obj.findtext("name"), *(obj.findtext(f"bndbox/{k}")
                                     for k in ("xmin", "ymin", "xmax", "ymax")),
             obj.findtext("difficult"), obj.findtext("truncated"))
            for obj in root.iter("object")]
    return found


def test_voc_to_project_to_voc_gives_identical_boxes(tmp_path, capsys):
    source = _voc_dataset(tmp_path / "voc")
    assert main(["import", str(source), "--project", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "(voc): 4 images added" in out and "5 boxes added" in out
    with Project.open(tmp_path / "p") as project:
        assert [(i.file.name, i.split) for i in project.images()] == [
            ("a.jpg", "train"), ("b.jpg", "train"), ("c.jpg", "train"), ("d.jpg", "val")]
        first = project.boxes(project.images()[0].id)
        assert (first[0].x0, first[0].y0, first[0].x1, first[0].y1) == (0.0, 0.0, 64.0, 48.0)
    assert main(["export-annotations", "--project", str(tmp_path / "p"), "--format", "voc",
                 "--out", str(tmp_path / "back"), "--images", "none"]) == 0
    before, after = _voc_objects(source), _voc_objects(tmp_path / "back")
    assert after == before
    assert after["a.jpg"][1] == ("cat", "10", "5", "20", "30", "1", "0")  # integers stay so
    assert (tmp_path / "back" / "ImageSets" / "Main" / "val.txt").read_text() == "d\n"


def _yolo_dataset(root: Path) -> tuple[Path, dict[str, list[list[float]]]]:
    rng = random.Random(5)
    labels = {}
    for split, stems in (("train", ["t0", "t1", "t2"]), ("val", ["v0"])):
        for stem in stems:
            write_image(root / "images" / split / f"{stem}.png", 80, 60, shade=rng.randrange(999))
            lines = []
            for _ in range(rng.randint(0, 4)):
                w, h = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5)
                cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
                lines.append([rng.randrange(3), cx, cy, w, h])
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{stem}.txt").write_text(
                "".join(" ".join([str(v[0]), *(f"{x:.9f}" for x in v[1:])]) + "\n"
                        for v in lines))
            labels[f"{split}/{stem}"] = lines
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: green\n"
        "  2: blue\n")
    return root, labels


def _yolo_labels(root: Path) -> dict[str, list[list[float]]]:
    return {f"{path.parent.name}/{path.stem}": [[float(v) for v in line.split()]
                                                 for line in path.read_text().splitlines()]
            for path in sorted((root / "labels").glob("*/*.txt"))}


def test_yolo_to_project_to_yolo_agrees_within_1e_6(tmp_path):
    source, labels = _yolo_dataset(tmp_path / "yolo")
    report = import_annotations(tmp_path / "p", source / "data.yaml")
    assert report.format == "yolo" and report.images_added == 4
    with Project.open(tmp_path / "p") as project:
        assert [(c.id, c.name) for c in project.categories()] == [
            (0, "red"), (1, "green"), (2, "blue")]
        written, entries = export_annotations(project, "yolo", tmp_path / "back")
    assert entries == []
    assert tmp_path / "back" / "data.yaml" in written
    back = _yolo_labels(tmp_path / "back")
    assert sorted(back) == sorted(labels)
    for key, lines in labels.items():
        assert len(back[key]) == len(lines)
        for original, exported in zip(lines, back[key]):
            assert exported[0] == original[0]
            assert exported[1:] == pytest.approx(original[1:], abs=1e-6)


def _coco_dataset(root: Path) -> Path:
    """COCO with category ids that are neither 1..K nor in order, and float boxes."""
    categories = [{"id": 7, "name": "zebra"}, {"id": 2, "name": "ant"}, {"id": 40, "name": "yak"}]
    images, annotations = [], []
    rng = random.Random(1)
    for index in range(5):
        name = f"img_{index}.png"
        write_image(root / "images" / name, 100, 80, shade=index + 11)
        images.append({"id": 100 + index, "file_name": f"images/{name}", "width": 100,
                       "height": 80})
        for _ in range(index % 3 + 1):
            w, h = round(rng.uniform(5, 40), 2), round(rng.uniform(5, 40), 2)
            x, y = round(rng.uniform(0, 100 - w), 2), round(rng.uniform(0, 80 - h), 2)
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + index,
                                "category_id": rng.choice([7, 2, 40]), "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0})
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def _coco_boxes(path: Path) -> tuple[dict, dict]:
    data = json.loads(path.read_text())
    names = {image["id"]: Path(image["file_name"]).name for image in data["images"]}
    boxes: dict[str, list] = {name: [] for name in names.values()}
    for ann in data["annotations"]:
        boxes[names[ann["image_id"]]].append((ann["category_id"], ann["bbox"]))
    return {c["id"]: c["name"] for c in data["categories"]}, boxes


def test_coco_to_project_to_coco_keeps_boxes_and_category_ids(tmp_path):
    source = _coco_dataset(tmp_path / "coco")
    assert main(["import", str(source), "--project", str(tmp_path / "p"),
                 "--format", "coco"]) == 0
    assert main(["export-annotations", "--project", str(tmp_path / "p"), "--format", "coco",
                 "--out", str(tmp_path / "back" / "out.json")]) == 0
    categories, boxes = _coco_boxes(source)
    back_categories, back_boxes = _coco_boxes(tmp_path / "back" / "out.json")
    assert back_categories == categories == {7: "zebra", 2: "ant", 40: "yak"}
    assert back_boxes.keys() == boxes.keys()
    for name, original in boxes.items():
        exported = back_boxes[name]
        assert [c for c, _ in exported] == [c for c, _ in original]
        for (_, a), (_, b) in zip(exported, original):
            assert a == pytest.approx(b, abs=1e-9)
    # pycocotools reads what we wrote.
    from pycocotools.coco import COCO

    loaded = COCO(str(tmp_path / "back" / "out.json"))
    assert len(loaded.getAnnIds()) == sum(len(b) for b in boxes.values())


def test_importing_the_same_file_again_adds_nothing(tmp_path, capsys):
    source = _coco_dataset(tmp_path / "coco")
    import_annotations(tmp_path / "p", source)
    with Project.open(tmp_path / "p") as project:
        before = table_dump(project)
        again = import_annotations(project, source)
        assert (again.images_added, again.images_merged, again.boxes_added) == (0, 5, 0)
        assert table_dump(project) == before


def test_import_reports_what_it_skipped_and_still_succeeds(tmp_path, capsys):
    source = _coco_dataset(tmp_path / "coco")
    data = json.loads(source.read_text())
    data["images"].append({"id": 999, "file_name": "images/gone.png", "width": 100,
                           "height": 80})
    data["annotations"].append({"id": 998, "image_id": 999, "category_id": 7,
                                "bbox": [1, 1, 10, 10]})
    data["annotations"].append({"id": 999, "image_id": 100, "category_id": 7,
                                "bbox": [1, 1, 0, 10]})  # zero width
    source.write_text(json.dumps(data))
    assert main(["import", str(source), "--project", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "6 images added" in out and "1 image missing" in out
    assert "gone.png: missing" in out
    assert "instances.json: annotation 999: skipped: box has zero or negative size" in out
    with Project.open(tmp_path / "p") as project:
        gone = [i for i in project.images() if i.problem == "missing"]
        assert [(i.file.name, i.box_count, i.width) for i in gone] == [("gone.png", 1, 100)]


def test_import_of_an_unreadable_source_fails_clearly_and_creates_nothing(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert main(["import", str(bad), "--project", str(tmp_path / "p"), "--format", "coco"]) == 2
    err = capsys.readouterr().err
    assert "broken.json" in err and "not a readable JSON file" in err
    assert not (tmp_path / "p").exists()
    assert main(["import", str(tmp_path / "nothing"), "--project", str(tmp_path / "p")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_export_of_one_split_and_into_an_existing_project(tmp_path, capsys):
    source = _voc_dataset(tmp_path / "voc")
    with Project.create(tmp_path / "p") as project:
        project.add_category("dog", category_id=5)  # matched by name: keeps id 5
        import_annotations(project, source)
        assert [(c.id, c.name) for c in project.categories()] == [
            (1, "cat"), (3, "person"), (5, "dog")]
    assert main(["export-annotations", "--project", str(tmp_path / "p"), "--format", "coco",
                 "--out", str(tmp_path / "val"), "--split", "val"]) == 0
    _, boxes = _coco_boxes(tmp_path / "val" / "instances_val.json")
    assert list(boxes) == ["d.jpg"]
    assert sorted(c for c, _ in boxes["d.jpg"]) == [3, 5]
