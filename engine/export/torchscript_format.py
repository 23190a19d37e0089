"""The TorchScript format: :class:`engine.export.deploy.DeployDetector` compiled, in one file
that runs with torch and torchvision alone (``import torchvision`` first: it registers the
``nms`` and ``roi_align`` operators the module calls).

The convolutional part (backbone, FPN, RPN head) is traced: it has no data-dependent step,
and tracing keeps its sizes symbolic, so it runs at every input size, while our backbones
themselves are not written for TorchScript's compiler. Everything after it (anchors,
proposals, RoIAlign, box head, postprocessing, the resize before) is compiled from
``DeployDetector``'s code, so the module takes images of any size. The tests run the file at
sizes other than the traced one, in a Python that cannot import this package.
"""

from __future__ import annotations

import math
import os
import warnings

import torch

from ..detector.model import FasterRCNN
from .deploy import DeployDetector, inference_copy


def torchscript_module(model: FasterRCNN) -> torch.jit.ScriptModule:
    """The scripted :class:`DeployDetector` of ``model`` (which is left untouched)."""
    deploy = DeployDetector(inference_copy(model)).eval()
    # One stride-aligned size the model sees in use; any other works as well.
    side = math.ceil(deploy.min_size / deploy.size_divisible) * deploy.size_divisible
    pixels = torch.zeros(1, 3, side, side)
    with warnings.catch_warnings():
        # torch marks jit.trace and jit.script deprecated (FutureWarning) but ships and runs
        # them; TracerWarnings flag Python-side shape arithmetic, absent from this part.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            deploy.features = torch.jit.trace(
                deploy.features, pixels, strict=False, check_trace=False
            )
        return torch.jit.script(deploy)


def save_torchscript(model: FasterRCNN, path: str | os.PathLike) -> None:
    """Write the TorchScript file."""
    module = torchscript_module(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(module, os.fspath(path))


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """A saved module, on the CPU (torchvision imported for its operators)."""
    import torchvision  # noqa: F401  (registers torchvision::nms and roi_align)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(os.fspath(path), map_location="cpu")
