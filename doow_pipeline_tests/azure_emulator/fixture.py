"""pytest fixtures for the emulator. Import them in a conftest.py:

    from doow_pipeline_tests.azure_emulator.fixture import emulator_factory  # noqa: F401

    def test_x(emulator_factory):
        emu = emulator_factory({"seed": 1, "tenants": [...]})   # or a scenario file path

Every emulator started by the factory stops at teardown; teardown fails the test if spec validation
recorded violations.
"""

from __future__ import annotations

import contextlib

import pytest

from .harness import Emulator, run_emulator

__all__ = ["emulator_factory", "Emulator", "run_emulator"]


@pytest.fixture
def emulator_factory(tmp_path):
    stack = contextlib.ExitStack()
    count = 0

    def start(scenario, **kwargs) -> Emulator:
        nonlocal count
        count += 1
        kwargs.setdefault("state_dir", tmp_path / f"azure-emulator-{count}")
        return stack.enter_context(run_emulator(scenario, **kwargs))

    with stack:
        yield start
