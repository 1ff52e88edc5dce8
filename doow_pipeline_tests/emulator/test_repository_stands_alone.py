"""The repository stands alone: no file points at, and spec validation reads nothing from, outside it."""

from __future__ import annotations

import builtins
import io
import re
from pathlib import Path

from doow_pipeline_tests.azure_emulator import spec_validation

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {
    ".git",
    ".venv",
    ".demo",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    "__pycache__",
    ".dagster_home",
    "data",
    "node_modules",
}
SKIPPED_SUFFIXES = {".pyc", ".duckdb", ".parquet", ".lock", ".png", ".jpg", ".gz", ".zip"}
# This file spells the patterns out, so it is the one file not scanned.
OUTSIDE = re.compile(r"\.\./shared|shared/(azure-specs|research|design)|[\"']shared[\"']\s*/|DOOW_AZURE_SPECS")


def _repository_files() -> list[Path]:
    files = []
    for path in REPO_ROOT.rglob("*"):
        rel = path.relative_to(REPO_ROOT)
        if any(part in SKIPPED_DIRS for part in rel.parts) or not path.is_file() or path.suffix in SKIPPED_SUFFIXES:
            continue
        if path == Path(__file__).resolve():
            continue
        files.append(path)
    return files


def test_no_file_points_outside_the_repository():
    files = _repository_files()
    assert any(p.name == "spec_validation.py" for p in files) and any(p.name == "README.md" for p in files)
    offenders = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_pattern_catches_what_it_should():
    for line in (
        'DEFAULT = REPO_ROOT.parent / "shared" / "azure-specs"',
        "see ../shared/research/x.md",
        "reads <repo>/../shared/azure-specs",
        "$DOOW_AZURE_SPECS",
        "see shared/design.md §4",
    ):
        assert OUTSIDE.search(line), line
    for line in ("the shared DuckDB writer", "connection 'shared' scope", "Azure/azure-rest-api-specs"):
        assert not OUTSIDE.search(line), line


def test_spec_validation_opens_only_files_inside_the_repository(monkeypatch):
    opened: list[Path] = []
    real_open = io.open

    def recording_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)):
            opened.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    spec_validation._validator.cache_clear()
    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    try:
        for kind in spec_validation.KINDS:
            for status in (200, 400):
                spec_validation.validate_response(kind, status, {})
    finally:
        monkeypatch.undo()
        spec_validation._validator.cache_clear()
    assert {p.name for p in opened} == {k.schema for k in spec_validation.KINDS.values() if k.schema} | {
        spec_validation.ERRORS_SCHEMA
    }
    assert all(p.is_relative_to(REPO_ROOT / "doow_pipeline_tests" / "azure_emulator" / "schemas") for p in opened)
