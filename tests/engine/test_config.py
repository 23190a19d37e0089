"""The detector configuration is plain data that rebuilds the same model."""

from __future__ import annotations

import json

import pytest

from engine import build_model
from engine.detector import DetectorConfig, model_from_config


def test_config_round_trips_through_json_and_rebuilds_the_model():
    model = build_model(
        "resnet18",
        num_classes=4,
        min_size=(96, 128),
        max_size=160,
        anchor_sizes=((16,), (32,), (64,), (128,), (256,)),
    )
    data = json.loads(json.dumps(model.config.to_dict()))
    config = DetectorConfig.from_dict(data)
    assert config == model.config
    again = model_from_config(config)
    again.load_state_dict(model.state_dict(), strict=True)
    assert again.anchor_spec.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert again.transform.min_size == (96, 128)


def test_unknown_settings_are_named():
    with pytest.raises(ValueError, match="unknown detector settings: rpn_nms"):
        DetectorConfig.from_dict({"backbone": "resnet18", "rpn_nms": 0.5})
    with pytest.raises(TypeError, match="rpn_nms"):
        build_model("resnet18", num_classes=3, rpn_nms=0.5)
