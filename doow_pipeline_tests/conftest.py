"""Shared pytest fixtures."""

import pytest

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.fixture import emulator_factory, run_emulator  # noqa: F401

# Real servers on 127.0.0.1 (installed by scripts/install-test-servers), started and stopped by the tests.
from doow_pipeline_tests.servers import azurite_server, chromium, postgres_server  # noqa: F401


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """The emulator serving the demo estate, one per test module (its request log and faults are shared
    by the module's tests: clear them where it matters)."""
    with run_emulator(DEMO_SCENARIO, state_dir=tmp_path_factory.mktemp("emulator")) as running:
        yield running
