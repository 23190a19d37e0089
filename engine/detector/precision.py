"""Mixed precision: which autocast type a device gets, and the context that applies it.

On CUDA, float16 autocast (with a gradient scaler in training), as torchvision's reference
does with ``--amp``. On a CPU whose instructions compute bfloat16 natively (x86 ``avx512_bf16``
or ``amx_bf16``, e.g. AMD Zen 4, Intel Cooper Lake and later), bfloat16 autocast: convolutions
and matrix products in bf16, everything PyTorch's autocast keeps in float32 (losses, softmax,
box arithmetic) in float32; the detector's heads hand float32 to box decoding. Elsewhere (a CPU
without bf16, where emulated bf16 is slower than float32) float32. ``amp`` False turns it off
everywhere; True asks for it even where it is emulated.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux: its /proc/cpuinfo flags; elsewhere
    oneDNN's own check)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return any(flag in line.split() for flag in BF16_CPU_FLAGS)
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def autocast_dtype(device: torch.device | str, amp: bool | None = None) -> torch.dtype | None:
    """The type autocast computes in on ``device`` (None: float32, no autocast). ``amp``: None
    chooses by the device (see the module docstring), False never, True always."""
    device = torch.device(device)
    if amp is False or device.type not in ("cuda", "cpu"):
        return None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if amp or cpu_supports_bf16() else None


def precision_name(dtype: torch.dtype | None) -> str:
    """"fp32", "bf16" or "fp16"."""
    return NAMES[dtype]


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` in ``dtype``; nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
