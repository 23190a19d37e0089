"""Test settings shared by the whole suite: Qt offscreen, no downloads, a few real images."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before anything imports Qt or torchvision's hub helpers.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["FRCNN_OFFLINE"] = "1"
# The app's settings (QSettings) and data folder (the demo project) go to a throwaway place,
# never the user's own: Qt reads these once, so they are set before anything imports Qt.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="frcnn-tests-config-")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="frcnn-tests-data-")

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def isolated_torch_home(tmp_path_factory, monkeypatch):
    """Each test sees an empty torch hub cache, so no test relies on weights a machine has."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


@pytest.fixture(scope="session")
def real_images() -> list[torch.Tensor]:
    """Two real photos (raccoons, MIT licence, downscaled to 320 px) as (3, H, W) tensors."""
    from engine.data.images import load_image_tensor

    return [load_image_tensor(TEST_DATA / name) for name in ("raccoon-1.jpg", "raccoon-10.jpg")]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The third-party data beside the repository; absent in a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (it only exists beside the development repo)")
    return SHARED_DATA
