"""The Dagster entry point (`dagster dev`, the code server): connections.yaml -> Definitions."""

from __future__ import annotations

import dagster as dg

from .config import export_env_file, load_config
from .defs.project import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    """connections.yaml from DOOW_CONNECTIONS (or ./); the `.env` beside it supplies the secrets' EnvVars."""
    config = load_config()
    export_env_file(config)
    return build_definitions(config)
