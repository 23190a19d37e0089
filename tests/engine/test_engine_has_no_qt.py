"""The engine is the model layer: it never imports Qt (ARCHITECTURE.md)."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import REPO


def test_no_engine_module_imports_qt():
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "engine").rglob("*.py")
        if any(name in path.read_text() for name in ("PySide6", "pyqtgraph", "PyQt"))
    ]
    assert offenders == []


def test_importing_the_engine_loads_no_qt():
    code = (
        "import sys, engine, engine.cli, engine.detector, engine.data.images, engine.data.demo,"
        " engine.data.project, engine.data.importing, engine.data.exporting,"
        " engine.data.formats, engine.training, engine.training.worker,"
        " engine.detector.inspection, engine.detector.overlays;"
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"
