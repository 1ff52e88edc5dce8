"""Use cases shared by Dagster and the CLI: fetch a connection, verify it, diagnose it. No Dagster, no printing."""
