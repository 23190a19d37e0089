"""The one torch.load wrapper: a damaged file is called damaged, a file holding code is refused
without torch's advice to load it unsafely, and every reader of torch files goes through it."""

from __future__ import annotations

import ast
import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from engine.detector.checkpoint import read_checkpoint
from engine.detector.weights import load_checkpoint_state
from engine.safe_load import DamagedFileError, UnsafeFileError, load_torch_file

ENGINE = Path(__file__).resolve().parents[2] / "engine"


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo never > /dev/null",))


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    torch.save({"model": {"weight": torch.arange(1000.0)}}, path)
    return path


def test_plain_data_loads(tmp_path):
    assert load_torch_file(_good(tmp_path))["model"]["weight"][-1] == 999


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "legacy truncated"])
def test_a_damaged_file_is_called_damaged_and_named(tmp_path, damage):
    path = tmp_path / "last.pt"
    data = _good(tmp_path).read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        path.write_text("this is not a checkpoint\n")
    else:
        path.write_bytes(pickle.dumps({"weight": [1.0] * 100}, protocol=2)[:40])
    for read in (load_torch_file, read_checkpoint, load_checkpoint_state):
        with pytest.raises(DamagedFileError, match=rf"{re.escape(str(path))} is damaged"):
            read(path)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_file_holding_code_is_refused_without_torchs_unsafe_advice(tmp_path, writer):
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"model": _RunsCode()}, path)
    else:
        path.write_bytes(pickle.dumps({"model": _RunsCode()}, protocol=2))
    for read in (load_torch_file, read_checkpoint, load_checkpoint_state):
        with pytest.raises(UnsafeFileError) as error:
            read(path)
        message = str(error.value)
        assert str(path) in message and "system" in message
        assert "weights_only" not in message and "damaged" not in message


def test_every_torch_load_in_the_engine_goes_through_the_wrapper():
    callers = sorted(
        str(path.relative_to(ENGINE))
        for path in ENGINE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch")
    assert callers == ["safe_load.py"]
