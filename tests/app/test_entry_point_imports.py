"""``app.main`` is the entry point: it imports the window, and no module of the app imports it
back (a panel run on its own takes a project folder instead of the app's demo project)."""

from __future__ import annotations

import ast

from ..conftest import REPO


def _imported_modules(path) -> set[str]:
    names = set()
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_app_module_imports_the_entry_point():
    importers = sorted(
        str(path.relative_to(REPO)) for path in (REPO / "app").rglob("*.py")
        if path.name != "main.py" and "app.main" in _imported_modules(path)
    )
    assert importers == []
