"""The ONNX format: :class:`engine.export.deploy.SymbolicDeployDetector` through torch's ONNX
exporter (``torch.export``, then the onnxscript translation), opset 18.

The graph takes one input, ``image``: float32 (3, H, W), RGB in [0, 1], H and W symbolic (any
size from 16 to 8192 pixels), and gives ``boxes`` (D, 4), ``labels`` (D,) int64 and ``scores``
(D,) in the input's pixels, like the TorchScript module: the resize, normalization and
postprocessing are inside. torchvision's ``nms`` and ``roi_align`` become ONNX
NonMaxSuppression and RoiAlign; onnxruntime runs the file (``onnxruntime`` is not needed to
write it, only to check it).

Why ``torch.export`` and not the older TorchScript-based exporter: torch marks that one
deprecated, and tracing fixes every Python-side size computation (the resize's output size,
the per-level top-k counts) to the example's values, which is how torchvision's own ONNX
support ends up with size-specific code paths. ``torch.export`` keeps them symbolic (see the
``sym_*`` hooks in ``deploy.py``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import operator
import os
import warnings

import torch

from ..detector.model import FasterRCNN
from .deploy import SymbolicDeployDetector, inference_copy

OPSET = 18
MIN_SIDE, MAX_SIDE = 16, 8192
INPUT_NAMES = ["image"]
OUTPUT_NAMES = ["boxes", "labels", "scores"]


def _sym_float_as_double(self):
    from onnxscript import DOUBLE
    from onnxscript import opset18 as op

    return op.Cast(self, to=DOUBLE.dtype)


def _truediv_in_double(self, other):
    from onnxscript import DOUBLE
    from onnxscript import opset18 as op

    return op.Div(op.Cast(self, to=DOUBLE.dtype), op.Cast(other, to=DOUBLE.dtype))


# The resize's output size is floor(side * min(min_size / short, max_size / long)), which
# PyTorch computes in double precision (Python floats). The exporter's own translation of
# Python float arithmetic on sizes uses float32, where 198 * (224 / 198) is 223.99998: one
# pixel short, and every detection moves. These two translations keep that arithmetic in
# double; multiplication, min and floor follow their inputs' type.
SIZE_ARITHMETIC_IN_DOUBLE = {torch.sym_float: _sym_float_as_double,
                             operator.truediv: _truediv_in_double}


def save_onnx(model: FasterRCNN, path: str | os.PathLike) -> None:
    """Write the ONNX file (one file: weights inside)."""
    deploy = SymbolicDeployDetector(inference_copy(model)).eval()
    # The example only fixes dtypes and ranks: the sizes stay symbolic.
    example = torch.rand(3, int(deploy.min_size), int(deploy.min_size * 4 / 3),
                         generator=torch.Generator().manual_seed(0))
    height = torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    # The exporter prints its progress and logs notes of its own; a CLI's or GUI's output
    # should hold ours only. Errors still raise.
    quiet = io.StringIO()
    # torch.__trace: torch.export's structured trace, empty DEBUG records when it propagates.
    loggers = [logging.getLogger(name)
               for name in ("onnxscript", "onnx_ir", "torch.onnx", "torch.__trace")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                deploy, (example,), dynamo=True, opset_version=OPSET,
                dynamic_shapes=({1: height, 2: width},),
                input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, verbose=False,
                custom_translation_table=SIZE_ARITHMETIC_IN_DOUBLE,
            )
            program.save(os.fspath(path), external_data=False)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def onnxruntime_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for the file. Raises ImportError when onnxruntime is not
    installed."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(os.fspath(path), options,
                                        providers=["CPUExecutionProvider"])
