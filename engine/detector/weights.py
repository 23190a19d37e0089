"""Pretrained weights: torchvision's (ImageNet backbones, COCO detectors) from the torch hub
cache, and ours from the EfficientNet-Lite0 package.

Nothing here downloads when ``FRCNN_OFFLINE=1`` is set (the test suite sets it) or when the
caller passes ``allow_download=False``: a missing file is then an error that names the file and
the folder to put it in, so a user without internet can copy it there by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision import models

from ..safe_load import load_torch_file


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights that are neither cached nor downloadable."""


COCO_WEIGHTS = {
    "resnet50": models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
    "mobilenet_v3_large": models.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
}


def hub_checkpoint_dir() -> Path:
    """Where torch (and so torchvision) caches downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def downloads_allowed() -> bool:
    return os.environ.get("FRCNN_OFFLINE", "").strip() not in {"1", "true", "yes"}


def load_torchvision_weights(weights_entry, allow_download: bool | None = None) -> dict:
    """The state dict of a torchvision weights entry (e.g. ``ResNet50_Weights.IMAGENET1K_V1``),
    from the hub cache, or downloaded into it when allowed. Loaded with ``weights_only=True``."""
    url = weights_entry.url
    path = hub_checkpoint_dir() / Path(url).name
    if allow_download is None:
        allow_download = downloads_allowed()
    if not path.is_file():
        if not allow_download:
            raise WeightsUnavailableError(
                f"pretrained weights {path.name} are not in {path.parent} and downloading is "
                f"off. Download {url} on a machine with internet and copy it into that folder."
            )
        # torch writes the download beside its destination first (FILE.<id>.partial): in a
        # cache that never held weights the folder does not exist yet.
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except OSError as error:  # URLError is an OSError
            raise WeightsUnavailableError(
                f"could not download {url} ({error}). Copy {path.name} into {path.parent} "
                "by hand, or choose other initial weights."
            ) from error
    return load_torch_file(path, what="pretrained weights file")


def load_checkpoint_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Model weights from a file: a bare state dict or one under a ``"model"`` key. Loaded with
    ``weights_only=True``, so a file holding pickled code is refused, not run."""
    path = Path(path)
    data = load_torch_file(path, what="weights file")
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path} does not hold a model state dict")
    return data
