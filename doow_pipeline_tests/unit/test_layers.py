"""The layout's import rules (README "Layout"): layers import downwards only, dagster only in defs/ and
definitions.py, Azure SDK packages only in azure/, core/ imports nothing else of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "doow_pipeline"
# What each part may import from the package (besides itself). config.py sits beside core.
ALLOWED = {
    "core": set(),
    "config": {"core"},
    "azure": {"core"},
    "usage": {"core"},
    "warehouse": {"core", "usage"},
    "services": {"core", "config", "azure", "usage", "warehouse"},
    "defs": {"core", "config", "azure", "usage", "warehouse", "services"},
    "cli": {"core", "config", "azure", "usage", "warehouse", "services", "defs"},
    "definitions": {"config", "defs"},
}
AZURE_SDK = ("azure.", "msal")


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute names of everything a module imports (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_parts = ["doow_pipeline", *path.relative_to(PACKAGE).with_suffix("").parts]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (
                    module_parts[: -node.level]
                    if path.name != "__init__.py"
                    else module_parts[: len(module_parts) - node.level + 1]
                )
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names.append((name, node.lineno))
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    part = _part(path)
    if part in ("__init__", "__main__"):
        return
    problems = []
    for name, line in _imports(path):
        if name.startswith("doow_pipeline."):
            target = name.split(".")[1]
            if target != part and target not in ALLOWED[part]:
                problems.append(f"line {line}: {part} imports {name}")
        elif name == "dagster" or name.startswith("dagster."):
            if part not in ("defs", "definitions"):
                problems.append(f"line {line}: dagster imported outside defs/ and definitions.py")
        elif name.startswith(AZURE_SDK) and part != "azure":
            problems.append(f"line {line}: Azure SDK package {name} imported outside azure/")
    assert not problems, problems


def test_every_part_is_known() -> None:
    parts = {_part(p) for p in MODULES} - {"__init__", "__main__"}
    assert parts == set(ALLOWED), parts ^ set(ALLOWED)


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import in core/ is reported (so the test above can fail)."""
    module = PACKAGE / "core" / "_probe_upward.py"
    module.write_text("from ..warehouse import store\n", encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match="core imports doow_pipeline.warehouse"):
            test_imports_point_one_way(module)
    finally:
        module.unlink()
