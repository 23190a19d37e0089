"""``Project.info()``: counts a reader can check by hand against the project built here."""

from __future__ import annotations

from engine.data.annotations import BoxRecord
from engine.data.project import CategoryCount, CategoryRow


def test_info_golden_values(project):
    a = project.add_category("apple", "#aa0000").id  # id 1
    b = project.add_category("banana", "#00aa00").id  # id 2
    folder = project.folder

    def image(name, width, height, split, status, boxes, problem=None):
        image_id = project.insert_image(folder / name, width=width, height=height, hash=None,
                                        problem=problem, split=split, status=status)
        project.set_boxes(image_id, [BoxRecord(0, 0, 1, 1, c) for c in boxes],
                          base=project.boxes(image_id))

    image("1.png", 64, 48, "train", "done", [a, a, b])
    image("2.png", 64, 48, "train", "done", [])
    image("3.png", 100, 50, "val", "in_progress", [a])
    image("4.png", None, None, None, "unlabeled", [b], problem="missing")
    image("5.png", 20, 10, "test", "skipped", [])

    info = project.info()
    assert (info.images, info.boxes) == (5, 5)
    assert info.by_split == {"train": 2, "val": 1, "test": 1, "none": 1}
    assert info.by_status == {"unlabeled": 1, "in_progress": 1, "done": 2, "skipped": 1}
    assert info.categories == [
        CategoryCount(CategoryRow(1, "apple", "#aa0000"), boxes=3, images=2,
                      boxes_by_split={"train": 2, "val": 1, "test": 0, "none": 0}),
        CategoryCount(CategoryRow(2, "banana", "#00aa00"), boxes=2, images=2,
                      boxes_by_split={"train": 1, "val": 0, "test": 0, "none": 1}),
    ]
    assert info.boxes_per_image == (0, 1.0, 3)  # 3, 0, 1, 1, 0
    assert info.smallest_size == (20, 10)
    assert info.largest_size == (100, 50)
    assert info.most_common_size == ((64, 48), 2)
    assert info.unknown_size == 1
    assert info.missing == ["4.png"]
    assert info.unreadable == []
    text = "\n".join(info.lines())
    assert "images per split: train 2, val 1, test 1, none 1" in text
    assert "boxes per image: min 0, mean 1.00, max 3" in text
    assert "image sizes: smallest 20x10, largest 100x50, most common 64x48 (2 images)" in text
    assert "missing images: 1\n  missing: 4.png" in text
    assert "   1 apple       2      1      0      0       3       2" in text


def test_info_of_an_empty_project(project):
    info = project.info()
    assert (info.images, info.boxes, info.boxes_per_image, info.smallest_size) == (0, 0, None,
                                                                                   None)
    assert "images: 0, boxes: 0, categories: 0" in info.lines()
