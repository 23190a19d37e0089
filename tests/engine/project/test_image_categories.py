"""image_categories: which classes each image's boxes have, for the image list's class filter."""

from __future__ import annotations

from engine.data.annotations import BoxRecord


def _box(category_id: int) -> BoxRecord:
    return BoxRecord(1, 2, 11, 12, category_id, source="manual")


def test_image_categories_lists_each_images_distinct_classes(project):
    cat, dog, bird = (project.add_category(name).id for name in ("cat", "dog", "bird"))
    first, second, empty, third = (
        project.insert_image(f"/images/{n}.png", width=64, height=48, hash=None)
        for n in range(4))
    project.set_boxes(first, [_box(cat), _box(cat), _box(dog)], base=project.boxes(first))
    project.set_boxes(second, [_box(bird)], base=project.boxes(second))
    project.set_boxes(third, [_box(dog)], base=project.boxes(third))
    assert project.image_categories() == {first: frozenset({cat, dog}),
                                          second: frozenset({bird}),
                                          third: frozenset({dog})}
    # Images without boxes are absent; asking for some images gives only those.
    assert project.image_categories([first, empty]) == {first: frozenset({cat, dog})}
    assert project.image_categories([]) == {}
    project.set_boxes(first, [], base=project.boxes(first))
    assert first not in project.image_categories()
