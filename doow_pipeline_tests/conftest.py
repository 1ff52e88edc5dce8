"""Shared pytest fixtures."""

from doow_pipeline_tests.azure_emulator.fixture import emulator_factory  # noqa: F401
