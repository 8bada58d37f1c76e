"""What the shipped training code may reach: no research module, no plug-in, no process-wide
environment changes."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_training_imports_no_research_module_and_no_plugin():
    for path in sorted((ROOT / "handseg_training").glob("*.py")):
        found = {name for name in imported_modules(path) if name.split(".")[0] in ("research", "handseg_plugins")}
        assert not found, f"{path.name} imports {found}"


def test_training_sets_no_environment_variable():
    for path in sorted((ROOT / "handseg_training").glob("*.py")):
        assert "os.environ[" not in path.read_text(), path.name


def test_the_engine_imports_no_adapter_training_or_research():
    for path in sorted((ROOT / "handseg_core").glob("*.py")):
        found = {name for name in imported_modules(path)
                 if name.split(".")[0] in ("research", "handseg_plugins", "handseg_training", "handseg_cli")}
        assert not found, f"{path.name} imports {found}"
