"""`doow-azure doctor`: diagnose a connection against Azure and the warehouse (symptom, cause, action)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from ..config import secrets_environment
from ..core.problems import DoowError
from ..services.doctor import run_doctor
from .output import EXIT_FAILURE, EXIT_OK, Output, configure_logging, new_table, when
from .project import clock, configured_secrets, connection_or_exit, load_project, warn_if_env_readable

DOCTOR_EPILOG = """Examples:

  doow-azure doctor prod

  doow-azure doctor prod --json | jq '.findings[] | {symptom, cause, action}'
"""


def doctor(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connection to diagnose.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Diagnose a connection against Azure and the warehouse: symptom, likely cause and next action.

    Checks the credential and its tenant and subscription, the accounts in scope and whether each is
    readable, the role's scope, recent usage in Azure and whether the warehouse holds it (per deployment,
    region and model), the age of the latest data point, and errors in the sync event log.
    Exits 1 when there is a finding.
    """
    output = Output()
    config = load_project(ctx, output)
    output.secrets.extend(configured_secrets(config))
    connection = connection_or_exit(output, config, name)
    warn_if_env_readable(output, config)
    assert config.path is not None, "load_project returns a config read from a file"
    secret = secrets_environment(Path(config.path)).get(connection.client_secret_env) or None
    configure_logging(output, verbose=False, verification=True)
    status_display = output.err.status(f"diagnosing {name}…") if output.tty and not as_json else None
    try:
        if status_display is not None:
            status_display.start()
        report = run_doctor(config, connection, secret)
    except (DoowError, duckdb.Error) as exc:
        output.error(f"doctor stopped: {type(exc).__name__}: {output.scrub(str(exc))[:500]}")
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        if status_display is not None:
            status_display.stop()
    if as_json:
        output.json(report.to_dict())
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)
    output.line(f"Doctor: {name} ({connection.scope})", "bold")
    for check in report.checks:
        mark, style = {"ok": ("✓", "green"), "finding": ("✗", "red"), "skipped": ("-", "dim")}[check.status]
        output.line(f"{mark} {check.name}: {check.summary}", style)
    facts = report.facts
    state = facts.get("state", "never synced")
    output.line(f"state: {state}; last successful sync: {when(facts.get('last_successful_sync'))}")
    if state == "never synced":
        last = clock(ctx, config).today() - timedelta(days=1)
        output.line(
            f"Not synced yet: run `doow-azure sync --from {last - timedelta(days=6)} --to {last} "
            f"--connection {name}`, then the doctor again to compare Azure with the warehouse.",
            "yellow",
        )
    if report.ok:
        output.line("No findings.", "bold green")
        raise typer.Exit(EXIT_OK)
    table = new_table("#", "symptom", "likely cause", "next action", title=f"{len(report.findings)} finding(s)")
    for i, finding in enumerate(report.findings, 1):
        table.add_row(str(i), finding.symptom, finding.cause, finding.action)
    output.table(table)
    for i, finding in enumerate(report.findings, 1):
        if finding.detail:
            output.line(f"  [{i}] {finding.detail[:600]}", "dim")
    raise typer.Exit(EXIT_FAILURE)
