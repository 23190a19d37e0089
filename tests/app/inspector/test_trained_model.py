"""End to end with a trained model: a detector overfit on one demo image, opened from its
checkpoint in the view with the project's boxes, finds every box and says so."""

from __future__ import annotations

import pytest

from app.inspector.stages import STAGES
from app.inspector.view import InspectorView
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.config import DetectorConfig
from engine.training import Trainer, TrainSettings
from engine.training.data import classes_for

# As the training tests' overfitting check: EfficientNet-Lite0 (packaged ImageNet weights).
TINY = DetectorConfig(backbone="efficientnet_lite0", min_size=240, max_size=320,
                      rpn_batch_size_per_image=64, box_batch_size_per_image=64)


@pytest.mark.slow
def test_a_trained_model_finds_the_demo_boxes_in_the_view(qtbot, tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=1, seed=3)
    with Project.open(folder) as project:
        records = project.dataset(None)
        classes = classes_for(project.categories())
        image = project.images()[0]
        rows = project.boxes(image.id)
    trainer = Trainer(train_records=records, val_records=records, classes=classes,
                      out_dir=tmp_path / "run", detector=TINY,
                      settings=TrainSettings(epochs=50, batch_size=1, flip_probability=0.0,
                                             warmup_iters=5, eval_every=0, lr_steps=()),
                      init_weights="imagenet", device="cpu")
    assert trainer.run() == "finished"

    view = InspectorView()
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    try:
        with qtbot.waitSignal(view.trace_changed, timeout=120_000):
            view.set_image(image.file, [(b.x0, b.y0, b.x1, b.y1) for b in rows],
                           [b.category_id for b in rows])
            view.set_checkpoints([tmp_path / "run" / "best.pt", tmp_path / "run" / "last.pt"])
        for stage in STAGES[1:]:
            view.step(1)
            assert view.stage_key == stage.key
        count = len(rows)
        assert f"{count} of {count} found" in view.caption.text()
        assert view.info.text().count("detected (IoU") == count
    finally:
        view.shutdown()
