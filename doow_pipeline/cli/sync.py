"""`doow-azure sync`: materialise a range of days in-process, one run per connection, then usage_daily."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import duckdb
import typer

from ..config import ProjectConfig
from ..core.metrics import RETENTION_DAYS, oldest_syncable_day
from ..core.problems import SyncInterrupted, WarehouseError
from ..warehouse import queries
from ..warehouse.database import connect
from .output import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, Output, configure_logging, usage_table
from .project import clock, configured_secrets, connection_or_exit, load_project, parse_day, warn_if_env_readable


def retention_note(now: datetime, first_day: date, last_day: date) -> str | None:
    """Days of the range Azure Monitor no longer keeps (93-day retention): said, never skipped silently."""
    oldest = oldest_syncable_day(now)
    if first_day >= oldest:
        return None
    last_skipped = min(last_day, oldest - timedelta(days=1))
    count = (last_skipped - first_day).days + 1
    synced = f"syncing {oldest} .. {last_day}" if last_day >= oldest else "nothing left to sync"
    return (
        f"{count} day(s) from {first_day} to {last_skipped} are older than Azure Monitor's {RETENTION_DAYS}-day "
        f"metric retention and cannot be synced; {synced}."
    )


def usage_summary(config: ProjectConfig, first_day: date, last_day: date) -> list[dict[str, Any]]:
    """Per connection usage of the range, read from the warehouse (empty when there is none yet)."""
    if not config.warehouse_path.exists():
        return []
    with connect(config.warehouse_path, read_only=True) as con:
        return queries.usage_by_connection(con, first_day, last_day)


def sync(
    ctx: typer.Context,
    from_: Annotated[str, typer.Option("--from", help="First UTC day (YYYY-MM-DD), inclusive.")],
    to: Annotated[str, typer.Option("--to", help="Last UTC day (YYYY-MM-DD), inclusive.")],
    connection: Annotated[
        list[str] | None, typer.Option("--connection", "-c", help="Only this connection (repeatable). Default: all.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's debug log.")] = False,
) -> None:
    """Materialise a range of days in-process: one run per connection, then usage_daily.

    Example: doow-azure sync --from 2026-10-01 --to 2026-10-31 --connection prod
    """
    from ..defs.runs import RunReport, sync_range  # Dagster loads only when a sync is asked for

    output = Output()
    config = load_project(ctx, output, check_secrets=True, export_secrets=True)
    output.secrets.extend(configured_secrets(config))
    warn_if_env_readable(output, config)
    configure_logging(output, verbose)
    today = clock(ctx, config).today()
    first_day, last_day = parse_day(output, from_, "--from"), parse_day(output, to, "--to")
    if first_day > last_day:
        raise output.usage_error(f"--from {first_day} is after --to {last_day}")
    if first_day < config.settings.start_date:
        raise output.usage_error(
            f"--from {first_day} is before settings.start_date {config.settings.start_date} in "
            f"{config.path}; move start_date earlier or sync later days"
        )
    if last_day > today:
        raise output.usage_error(f"--to {last_day} is in the future (today is {today} UTC)")
    if not config.connections:
        raise output.usage_error(f"{config.path} has no connections; add one with `doow-azure connect`")
    for name in connection or ():
        connection_or_exit(output, config, name)

    def progress(job: str, report: RunReport | None) -> None:
        if as_json:
            return
        if report is None:
            output.line(f"… {job}: running", stderr=True)
            return
        status = "ok" if report.success else f"FAILED: {report.failure}"
        output.line(f"{'✓' if report.success else '✗'} {job}: {status}", stderr=True)
        for check in report.failed_checks:
            output.line(f"    check {check.name} ({check.severity}): {check.description}", stderr=True)
        for warning in report.warnings:
            output.line(f"    warning: {warning}", "yellow", stderr=True)

    skipped = retention_note(clock(ctx, config).now(), first_day, last_day)
    if skipped and not as_json:
        output.line(f"note: {skipped}", "yellow", stderr=True)
    # Without --verbose, a failed step is reported in one line (below) with its cause and fix: Dagster's own
    # console log would add the full Dagster and MSAL stack traces.
    try:
        reports = sync_range(
            config, first_day, last_day, connection, on_progress=progress, log_level="DEBUG" if verbose else "CRITICAL"
        )
    except SyncInterrupted as stop:
        output.error(str(stop))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    try:
        summary = usage_summary(config, first_day, last_day)
    except (WarehouseError, duckdb.Error) as exc:
        output.error(f"cannot read the usage summary: {exc}")
        summary = []
    failed = [r for r in reports if not r.success]
    if as_json:
        output.json(
            {
                "from": str(first_day),
                "to": str(last_day),
                "ok": not failed,
                "runs": [
                    {
                        "job": r.job,
                        "success": r.success,
                        "failure": r.failure,
                        "failed_checks": [
                            {"check": c.name, "severity": c.severity, "description": c.description}
                            for c in r.failed_checks
                        ],
                        "warnings": r.warnings,
                    }
                    for r in reports
                ],
                "usage": summary,
                "skipped_days": skipped,
            }
        )
    else:
        output.table(usage_table(summary, f"Azure OpenAI usage {first_day} .. {last_day} (UTC)"))
        if failed:
            output.line(
                f"{len(failed)} run(s) failed: " + "; ".join(f"{r.job}: {r.failure}" for r in failed), stderr=True
            )
    sys.stdout.flush()
    raise typer.Exit(EXIT_FAILURE if failed else EXIT_OK)
