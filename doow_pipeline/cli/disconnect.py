"""`doow-azure disconnect`: remove a connection's secret and entry at once; optionally purge its data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from ..core.problems import ConnectionFileError, WarehouseError
from ..warehouse.landing import Landing
from ..warehouse.landing_cache import cache_root
from ..warehouse.store import delete_connection
from . import files
from .output import EXIT_FAILURE, EXIT_OK, Output
from .project import connection_or_exit, load_project

DISCONNECT_EPILOG = """Examples:

  doow-azure disconnect dev

  doow-azure disconnect dev --purge-data
"""


def disconnect(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connection to remove.")],
    purge_data: Annotated[
        bool, typer.Option("--purge-data", help="Also delete its rows from the warehouse and its landing files.")
    ] = False,
) -> None:
    """Remove a connection: its secret from .env and its entry from connections.yaml, at once.

    Other connections and .env entries are untouched. Prints what is left to do in Azure.
    """
    output = Output()
    config = load_project(ctx, output)
    connection_or_exit(output, config, name)
    assert config.path is not None  # load_config records the file it read
    config_file = Path(config.path)
    env_file = config.env_file
    # Read, edited and written under the edit lock: a connect verifying meanwhile re-reads the files before it
    # saves, so it cannot bring this connection (or its secret) back.
    with files.edit_lock(config_file):
        config = load_project(ctx, output)
        connection = connection_or_exit(output, config, name)
        yaml_old = files.read_bytes(config_file)
        env_old = files.read_bytes(env_file)
        remaining = [c for c in config.connections if c.name != name]
        shared = [c.name for c in remaining if c.client_secret_env == connection.client_secret_env]
        try:
            yaml_new = files.yaml_without_connection((yaml_old or b"").decode("utf-8"), name)
            env_text = env_old.decode("utf-8") if env_old is not None else None
            env_new = env_text if shared else files.env_without(env_text, connection.client_secret_env)
        except (ConnectionFileError, UnicodeDecodeError) as exc:
            raise output.usage_error(str(exc)) from None
        writes = [files.PlannedWrite(config_file, yaml_new.encode("utf-8"), yaml_old)]
        if env_old is not None:
            writes.insert(
                0, files.PlannedWrite(env_file, (env_new or "").encode("utf-8"), env_old, files.ENV_FILE_MODE)
            )
        files.apply(writes)
    if not shared:
        os.environ.pop(connection.client_secret_env, None)  # gone for anything this process still runs
    output.line(f"Removed connection {name} from {config_file}.", "bold")
    if shared:
        output.line(f"Kept {connection.client_secret_env} in {env_file}: still used by {', '.join(shared)}.")
    elif env_old is not None and env_old != (env_new or "").encode("utf-8"):
        output.line(f"Deleted its secret {connection.client_secret_env} from {env_file}.")
    else:
        output.line(f"No secret {connection.client_secret_env} was stored in {env_file}.")

    exit_code = EXIT_OK
    if purge_data:
        try:
            if config.warehouse_path.exists():
                purged = delete_connection(config.warehouse_path, name, config.analyst_copy_path)
                output.line(
                    "Deleted from the warehouse: " + ", ".join(f"{n:,} {t}" for t, n in purged.counts.items()) + "."
                )
                if purged.publication is not None:
                    publication = purged.publication
                    output.line(publication.message, None if publication.ok else "yellow")
            else:
                output.line(f"No warehouse at {config.warehouse_path}; nothing to delete.")
            Landing(config.landing_location).purge(name)
            if config.landing_location.is_blob:  # and the writer's local copy of it
                Landing(cache_root(config.warehouse_path)).purge(name)
            output.line(f"Deleted its landing files under {config.landing_location}.")
        except (WarehouseError, duckdb.Error, OSError) as exc:
            output.error(
                f"the connection is removed, but purging its data failed: {type(exc).__name__}: {exc}. "
                f"Delete its rows later with: DELETE FROM azure_openai.<table> WHERE connection = '{name}' "
                "(tables usage_daily, metric_points, accounts, sync_events, connections, usage_cost_daily) "
                "and its files "
                f"under {config.landing_location}: */connection={name}"
            )
            exit_code = EXIT_FAILURE
    else:
        output.line(
            "Its rows stay in the warehouse (use --purge-data to delete them); days synced again later are "
            "rebuilt without this connection."
        )

    same_app = [c.name for c in remaining if c.client_id == connection.client_id]
    output.line("")
    output.line("Left to do in Azure (doow-azure never writes to Azure):", "bold")
    output.line(
        f"  1. Remove the Monitoring Reader role assignment of application {connection.client_id} on "
        f"{connection.scope} (Access control (IAM) > Role assignments), e.g.\n"
        f'     az role assignment delete --assignee {connection.client_id} --role "Monitoring Reader" '
        f"--scope {connection.scope}"
    )
    if same_app:
        output.line(
            f"  2. Keep the app registration and its secret: connection(s) {', '.join(same_app)} still use "
            f"application {connection.client_id}."
        )
    else:
        output.line(
            f"  2. Delete the client secret (App registrations > {connection.client_id} > Certificates & "
            f"secrets), or the app registration itself if nothing else uses it:\n"
            f"     az ad app delete --id {connection.client_id}"
        )
    raise typer.Exit(exit_code)
