"""TorchScript: one image tensor in, boxes/labels/scores in the image's pixels out, from a file
that runs where only torch and torchvision can be imported; exported through the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.detector.checkpoint import load_detector

from .conftest import TEST_IMAGES

# Runs with -I -S: no site processing, so neither the editable install's finder nor the
# current folder puts our package on the path; only torch's site-packages is added.
ISOLATED_RUN = """
import sys
sys.path[:0] = [{site!r}]
try:
    import engine
except ImportError:
    pass
else:
    raise SystemExit("our package is importable here: " + engine.__file__)
import torch, torchvision
model = torch.jit.load({model!r})
outputs = []
for image in torch.load({images!r}, weights_only=True):
    with torch.inference_mode():
        outputs.append(model(image))
torch.save(outputs, {result!r})
"""


@pytest.fixture(scope="module")
def exported(trained_checkpoint, tmp_path_factory):
    """``frcnn export-model --format torchscript`` on the trainer's checkpoint."""
    checkpoint, records = trained_checkpoint
    out = tmp_path_factory.mktemp("torchscript") / "detector.ts"
    argv = ["export-model", "--checkpoint", str(checkpoint), "--format", "torchscript",
            "--out", str(out)]
    for image in TEST_IMAGES:
        argv += ["--image", str(image)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return checkpoint, records, out, printed.getvalue()


def test_cli_reports_the_files_and_the_check(exported):
    _, _, out, printed = exported
    card_path = out.with_name("detector.card.json")
    assert f"wrote {out} and {card_path}" in printed
    assert "same detections as the checkpoint (TorchScript" in printed
    assert "on 2 image(s): " in printed
    card = json.loads(card_path.read_text())
    assert out.is_file() and not list(out.parent.glob("*.partial"))
    verification = card["verification"]
    assert verification["ok"] and verification["runtime"].startswith("TorchScript")
    assert [Path(i["image"]).name for i in verification["images"]] == [
        "raccoon-1.jpg", "raccoon-10.jpg"]
    assert verification["max_box_diff_px"] == 0.0 and verification["max_score_diff"] == 0.0


def test_runs_without_our_package_with_the_checkpoints_detections(exported, real_images,
                                                                  tmp_path):
    checkpoint, _, out, _ = exported
    landscape, portrait = real_images
    # Sizes the traced part never saw, a crop and an enlargement among them.
    images = [landscape, portrait, portrait[:, 17:250, 3:201].contiguous()]
    torch.save(images, tmp_path / "images.pt")
    site = str(Path(torch.__file__).resolve().parents[1])
    code = ISOLATED_RUN.format(site=site, model=str(out), images=str(tmp_path / "images.pt"),
                               result=str(tmp_path / "result.pt"))
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    outputs = torch.load(tmp_path / "result.pt", weights_only=True)

    model = load_detector(checkpoint).model
    for image, (boxes, labels, scores) in zip(images, outputs):
        with torch.inference_mode():
            expected = model([image])[0]
        assert len(expected["boxes"]) > 0
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
        assert torch.equal(labels, expected["labels"])
        torch.testing.assert_close(boxes, expected["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(scores, expected["scores"], rtol=0, atol=1e-6)
        height, width = image.shape[-2:]
        assert float(boxes[:, 2].max()) <= width and float(boxes[:, 3].max()) <= height


def test_model_card_says_what_a_deployer_needs(exported):
    _, records, out, _ = exported
    card = json.loads(out.with_name("detector.card.json").read_text())
    assert card["format"] == "frcnn-workbench model card"
    assert card["model"] == {"architecture": "Faster R-CNN with FPN",
                             "backbone": "efficientnet_lite0", "num_classes": 5,
                             "export_format": "torchscript", "file": "detector.ts"}
    # Classes: the background, then the demo's categories in id order.
    assert [(c["class_id"], c["name"]) for c in card["classes"]] == [
        (0, "background"), (1, "circle"), (2, "square"), (3, "triangle"), (4, "cross")]
    assert card["classes"][1]["category_id"] == 1
    assert card["input"]["shape"].startswith("(3, H, W)")
    assert card["input"]["range"].startswith("[0, 1]")
    assert card["preprocessing"]["resize"]["min_size"] == 224
    assert card["preprocessing"]["resize"]["max_size"] == 320
    assert card["preprocessing"]["normalization"]["mean"] == [0.498, 0.498, 0.498]
    assert card["preprocessing"]["normalization"]["std"] == [0.502, 0.502, 0.502]
    assert set(card["output"]) >= {"boxes", "labels", "scores"}
    assert "torch.jit.load('detector.ts')" in card["loading"]["code"]

    # What the trainer recorded: 4 training and 2 validation images, counted here by hand.
    data = card["training"]["data"]
    for split, subset in (("train", records[:4]), ("val", records[4:])):
        assert data[split]["images"] == len(subset)
        assert data[split]["boxes"] == sum(len(r.boxes) for r in subset)
        per_class = data[split]["boxes_per_class"]
        assert sum(per_class.values()) == data[split]["boxes"]
        names = {1: "circle", 2: "square", 3: "triangle", 4: "cross"}
        for category_id, name in names.items():
            assert per_class[name] == sum(r.category_ids.count(category_id) for r in subset)
    assert card["training"]["epochs_done"] == 1
    assert card["training"]["settings"]["batch_size"] == 2
    metrics = card["metrics"]
    assert metrics["best_AP"] == metrics["at_checkpoint"]["AP"]
    assert {"AP", "AP50", "per_class"} <= set(metrics["at_checkpoint"])
    assert len(card["source"]["checkpoint_sha256"]) == 64
