"""One rule between a checkpoint's classes and a project's categories, and every engine user of
it (training data, ``frcnn eval``, error analysis, suggestions) following it where the saved ids
and the names disagree. The inspector's use: tests/app/inspector/test_session.py."""

from __future__ import annotations

import pytest
import torch

from engine import build_model
from engine.assist import Predictor
from engine.cli import main
from engine.data.demo import write_demo_project
from engine.data.project import CategoryRow, Project
from engine.detector.checkpoint import save_detector
from engine.detector.class_map import ClassInfo, classes_for, map_classes
from engine.training.data import DetectionDataset
from engine.training.error_analysis import analyse_checkpoint


def _rows(*pairs: tuple[int, str]) -> list[CategoryRow]:
    return [CategoryRow(category_id, name, "#000000") for category_id, name in pairs]


def test_classes_for_numbers_categories_in_id_order():
    classes = classes_for([CategoryRow(9, "owl", "#ffffff"), CategoryRow(2, "cat", "#000000")])
    assert classes == [ClassInfo(1, "cat", 2, "#000000"), ClassInfo(2, "owl", 9, "#ffffff")]
    # Mapped back onto the project it came from: the identity.
    mapping = map_classes(classes, _rows((2, "cat"), (9, "owl")))
    assert mapping.to_category == {1: 2, 2: 9} and mapping.unmapped == []


def test_the_name_decides_when_the_saved_id_disagrees():
    classes = [ClassInfo(1, "cat", 1), ClassInfo(2, "dog", 2), ClassInfo(3, "fox", 3),
               ClassInfo(4, "owl", 4), ClassInfo(5, "bee", None)]
    categories = _rows(
        (1, "cat"),   # same id, same name: the project it was trained on
        (2, "wolf"),  # id 2 is another category here...
        (7, "dog"),   # ...and the dog lives under id 7: by name
        (3, "lynx"),  # fox's id, renamed (or another project's 3); no "fox" anywhere
        (9, "owl"),   # owl's id 4 is gone; the name is here
        (5, "bee"),   # no saved id (e.g. COCO weights): by name
    )
    mapping = map_classes(classes, categories)
    assert mapping.to_category == {1: 1, 2: 7, 4: 9, 5: 5}
    assert mapping.unmapped == ["fox"]
    assert mapping.renamed == {3: "lynx"}
    assert mapping.unmapped_notes() == ["fox (category 3 is called 'lynx' here)"]
    # The inverse: categories 2 (wolf) and 3 (lynx) have no class.
    assert [mapping.class_of(c) for c in (1, 2, 3, 5, 7, 9)] == [1, None, None, 5, 2, 4]
    assert mapping.unknown_categories([3, 7, 2, 3, 1]) == [2, 3]
    assert [(c.class_id, c.name, c.category_id) for c in mapping.project_classes()] == [
        (1, "cat", 1), (2, "dog", 7), (3, "fox", None), (4, "owl", 9), (5, "bee", 5)]


def test_swapped_names_follow_the_names_not_the_ids():
    mapping = map_classes([ClassInfo(1, "cat", 1), ClassInfo(2, "dog", 2)],
                          _rows((1, "dog"), (2, "cat")))
    assert mapping.to_category == {1: 2, 2: 1}


def test_names_compare_exactly():
    mapping = map_classes([ClassInfo(1, "Cat", 1), ClassInfo(2, "dog ", 2)],
                          _rows((5, "cat"), (6, "dog")))
    assert mapping.to_category == {} and mapping.unmapped == ["Cat", "dog "]


def test_without_project_categories_each_class_stands_for_its_saved_category():
    mapping = map_classes([ClassInfo(1, "cat", 7), ClassInfo(2, "dog", 3),
                           ClassInfo(3, "person", None)])
    assert mapping.to_category == {1: 7, 2: 3} and mapping.unmapped == ["person"]


@pytest.fixture(scope="module")
def disagreeing(tmp_path_factory):
    """A demo project (circle 1, square 2, triangle 3, cross 4, then triangle renamed "wedge")
    and a checkpoint whose saved ids disagree with it in every way the rule knows."""
    folder = tmp_path_factory.mktemp("class-map")
    project_folder = write_demo_project(folder / "project", count=5, seed=4, val_fraction=0.6)
    with Project.open(project_folder) as project:
        project.rename_category(3, "wedge")
        categories = project.categories()
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=5, weights="none", min_size=160, max_size=224)
    classes = [ClassInfo(1, "circle", 1),  # same id, same name
               ClassInfo(2, "square", 9),  # another id, same name
               ClassInfo(3, "triangle", 3),  # its category renamed since
               ClassInfo(4, "cross", 2)]  # id 2 is the square here: the name wins
    checkpoint = save_detector(folder / "model.pt", model, classes)
    return project_folder, categories, checkpoint, classes


def test_every_user_of_a_checkpoint_maps_the_same_way(disagreeing, capsys):
    project_folder, categories, checkpoint, classes = disagreeing
    expected = {1: 1, 2: 2, 4: 4}  # class -> category; triangle (class 3) has none

    # Suggestions.
    predictor = Predictor(checkpoint, categories)
    assert predictor.mapping.to_category == expected
    assert predictor.mapping.unmapped == ["triangle"]

    # Training data: labels of the project's boxes in the checkpoint's classes.
    mapping = map_classes(classes, categories)
    dataset = DetectionDataset([], mapping.project_classes())
    assert dataset.class_of == {1: 1, 2: 2, 4: 4}

    # frcnn eval: the wedge boxes are left out, and the triangle class is named as unmatched.
    with Project.open(project_folder) as project:
        assert any(3 in r.category_ids for r in project.dataset("val"))
    assert main(["eval", "--checkpoint", str(checkpoint), "--project", str(project_folder),
                 "--split", "val", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "the model was not trained on wedge" in err
    assert "triangle (category 3 is called 'wedge' here)" in err

    # Error analysis refuses a split holding boxes no class stands for, naming the category.
    with pytest.raises(ValueError, match="was not trained on wedge"):
        analyse_checkpoint(checkpoint, project_folder, "val")
