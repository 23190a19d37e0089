"""Reading torch files (checkpoints, weights, traces) as data: the one ``torch.load`` wrapper.

Every file goes through ``torch.load(..., weights_only=True)``: tensors, numbers, strings,
lists and dicts load; anything else (a pickled class or function, i.e. code that would run
while loading) is refused. The errors say what is wrong with the file in the user's terms:

- :class:`DamagedFileError`: empty, cut short (a copy or download that stopped, a disk that
  filled up while saving) or not a torch file at all;
- :class:`UnsafeFileError`: it holds objects other than tensors and plain data. torch's own
  message advises retrying with ``weights_only=False``; we never do that and never quote it:
  such a file can run code on this machine.

Both are ValueErrors naming the file; a missing file is a FileNotFoundError.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch


class DamagedFileError(ValueError):
    """A torch file that cannot be read: empty, truncated, or not a torch file."""


class UnsafeFileError(ValueError):
    """A torch file holding objects other than tensors and plain data (possibly code)."""


# torch names the refused global in its message: "Unsupported global: GLOBAL os.system" or
# "unsupported GLOBAL posix.system whose module posix is blocked".
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: str | os.PathLike, *, what: str = "checkpoint",
                    mmap: bool = False) -> Any:
    """The contents of the torch file at ``path``, loaded on the CPU with
    ``weights_only=True``. ``what`` names the file in messages ("checkpoint", "weights file",
    "trace"); ``mmap`` maps tensors instead of reading them (a checkpoint's metadata without
    its weights). Raises FileNotFoundError, :class:`DamagedFileError` or
    :class:`UnsafeFileError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise DamagedFileError(f"{path} is damaged: the {what} is empty (0 bytes); it was "
                               f"probably cut off while being saved or copied")
    try:
        options = {"mmap": True} if mmap else {}
        with warnings.catch_warnings():
            # A file pickled with another protocol loads or is refused all the same; torch's
            # note about it is noise to a user.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, **options)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise _damaged(path, what, error) from None
        refused = _GLOBAL.search(str(error))
        holds = f" ({refused.group(1)})" if refused else ""
        raise UnsafeFileError(
            f"{path} is not a safe {what}: it holds objects other than tensors and plain "
            f"data{holds}, which could run code when loaded; it was not loaded. Use a file "
            f"written by this program or a plain state dict (torch.save(model.state_dict()))"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, AttributeError, IndexError,
            TypeError, UnicodeDecodeError, OSError) as error:
        if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise _damaged(path, what, error) from None


def _damaged(path: Path, what: str, error: Exception) -> DamagedFileError:
    detail = str(error).split(". ")[0].strip() or type(error).__name__
    return DamagedFileError(
        f"{path} is damaged: the {what} cannot be read ({detail}); it was probably cut off "
        f"while being saved or copied, or it is not a PyTorch file")
