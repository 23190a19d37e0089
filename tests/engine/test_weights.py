"""Initial weights: torchvision's COCO detector from the hub cache, offline; safe loading."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

from engine import build_model
from engine.detector.weights import (
    COCO_WEIGHTS,
    WeightsUnavailableError,
    downloads_allowed,
    hub_checkpoint_dir,
    load_checkpoint_state,
    load_torchvision_weights,
)

TINY = {"min_size": 96, "max_size": 128}


def _write_fake_coco_checkpoint() -> dict[str, torch.Tensor]:
    """A checkpoint file where torchvision's COCO weights would be cached, holding seeded
    weights of the same shape (the real file is 75 MB and needs the internet)."""
    torch.manual_seed(3)
    state = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).state_dict()
    path = hub_checkpoint_dir() / Path(COCO_WEIGHTS["mobilenet_v3_large"].url).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_coco_weights_load_from_the_hub_cache_offline():
    state = _write_fake_coco_checkpoint()
    model = build_model("mobilenet_v3_large", num_classes=91, weights="coco", **TINY)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], msg=key)
    # Pretrained models fine-tune with frozen BatchNorm, as torchvision's builder does.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_coco_weights_for_other_classes_keep_all_but_the_predictor():
    state = _write_fake_coco_checkpoint()
    model = build_model("mobilenet_v3_large", num_classes=4, weights="coco", **TINY)
    loaded = model.state_dict()
    key = "rpn.head.cls_logits.weight"
    torch.testing.assert_close(loaded[key], state[key])
    assert loaded["roi_heads.box_predictor.cls_score.weight"].shape == (4, 1024)


def test_missing_coco_weights_offline_name_the_file_and_folder():
    with pytest.raises(WeightsUnavailableError) as error:
        build_model("resnet50", num_classes=91, weights="coco", **TINY)
    message = str(error.value)
    assert "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in message
    assert str(hub_checkpoint_dir()) in message
    assert os.environ["FRCNN_OFFLINE"] == "1"


def test_first_download_creates_the_hub_cache_folder(tmp_path, monkeypatch):
    """A machine that never downloaded weights has no <TORCH_HOME>/hub/checkpoints; the first
    download must create it (torch writes FILE.<id>.partial there first). A file:// URL stands
    in for torchvision's servers."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "fresh_torch_home"))
    monkeypatch.setenv("FRCNN_OFFLINE", "0")
    assert downloads_allowed() and not hub_checkpoint_dir().exists()
    state = {"conv.weight": torch.arange(6.0).reshape(1, 1, 2, 3), "conv.bias": torch.tensor([7.0])}
    served = tmp_path / "server" / "tiny-0123abcd.pth"
    served.parent.mkdir()
    torch.save(state, served)
    entry = SimpleNamespace(url=served.as_uri())

    loaded = load_torchvision_weights(entry)
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value)
    cached = hub_checkpoint_dir() / "tiny-0123abcd.pth"
    assert cached.is_file() and list(hub_checkpoint_dir().iterdir()) == [cached]
    # From now on the cache serves it, with downloading off.
    served.unlink()
    torch.testing.assert_close(load_torchvision_weights(entry, allow_download=False)["conv.bias"],
                               state["conv.bias"])


def test_missing_imagenet_weights_offline_are_reported():
    with pytest.raises(WeightsUnavailableError, match="resnet18-"):
        build_model("resnet18", num_classes=3, weights="imagenet", **TINY)


def test_coco_weights_only_for_torchvision_architectures():
    with pytest.raises(ValueError, match="COCO weights exist for resnet50, mobilenet_v3_large"):
        build_model("resnet18", num_classes=3, weights="coco", **TINY)


def test_checkpoint_file_round_trip(tmp_path):
    model = build_model("resnet18", num_classes=3, **TINY)
    path = tmp_path / "model.pth"
    torch.save({"model": model.state_dict(), "epoch": 3}, path)
    again = build_model("resnet18", num_classes=3, weights=path, **TINY)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"model": _RunsCodeWhenUnpickled()}, handle)
    with pytest.raises(ValueError, match="not a safe weights file"):
        load_checkpoint_state(path)


def test_unknown_weights_name():
    with pytest.raises(ValueError, match="weights must be one of none, imagenet, coco"):
        build_model("resnet18", num_classes=3, weights="cocoa")


def test_resnet50_coco_v1_weights_use_frozen_batchnorm_eps_zero(tmp_path):
    """torchvision trained its v1 COCO weights with eps 0 and sets it so on load; we do too."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(4)
    state = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    state = {k: v for k, v in state.items() if "num_batches" not in k}
    path = hub_checkpoint_dir() / Path(COCO_WEIGHTS["resnet50"].url).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    model = build_model("resnet50", num_classes=91, weights="coco", **TINY)
    norms = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 53 and all(m.eps == 0.0 for m in norms)
    # A checkpoint of the fine-tuned model loads with the same epsilon.
    from engine.detector.checkpoint import ClassInfo, load_detector, save_detector

    saved = save_detector(tmp_path / "fine-tuned.pt", model,
                          [ClassInfo(i, f"c{i}") for i in range(1, 91)])
    again = load_detector(saved).model
    assert all(m.eps == 0.0 for m in again.modules() if isinstance(m, FrozenBatchNorm2d))
