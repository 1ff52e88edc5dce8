"""The `doow-azure` command: sync (and the connection lifecycle commands in cli_connections).

Exit codes: 0 ok, 1 a finding or failure, 2 usage error (bad arguments or configuration).
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .clock import utc_today
from .config import ConfigError, ProjectConfig, export_env_file, load_config
from .warehouse.store import connect

app = typer.Typer(name="doow-azure", no_args_is_help=True, add_completion=False,
                  help="Connect Azure scopes and sync Azure OpenAI usage into DuckDB.",
                  pretty_exceptions_show_locals=False)  # a traceback must never print a secret held in a local
# Not a terminal (pipes, CI): plain text, wide enough that tables are not truncated.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def fail_usage(message: str) -> typer.Exit:
    err_console.print(f"error: {message}", markup=False)
    return typer.Exit(EXIT_USAGE)


def load_config_or_exit(check_secrets: bool = True) -> ProjectConfig:
    try:
        config = load_config(check_secrets=check_secrets)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None
    export_env_file(config)
    return config


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail_usage(f"{option} {value!r} is not a date; use YYYY-MM-DD (UTC)") from None


def usage_summary(config: ProjectConfig, first_day: date, last_day: date) -> list[dict]:
    if not config.warehouse_path.exists():
        return []
    with connect(config.warehouse_path, read_only=True) as con:
        rows = con.execute(
            "SELECT connection, count(DISTINCT resource_id) AS accounts, count(DISTINCT deployment) AS deployments, "
            "count(*) AS rows, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
            "sum(total_tokens) AS total_tokens, sum(requests) AS requests FROM azure_openai.usage_daily "
            "WHERE usage_date BETWEEN ? AND ? GROUP BY connection ORDER BY connection", [first_day, last_day]).pl()
    return rows.to_dicts()


def print_summary(rows: list[dict], first_day: date, last_day: date) -> None:
    table = Table(title=f"Azure OpenAI usage {first_day} .. {last_day} (UTC)")
    for column in ("connection", "accounts", "deployments", "rows", "input_tokens", "output_tokens",
                   "total_tokens", "requests"):
        table.add_column(column, justify="left" if column == "connection" else "right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


@app.command()
def sync(
    from_: Annotated[str, typer.Option("--from", help="First UTC day (YYYY-MM-DD), inclusive.")],
    to: Annotated[str, typer.Option("--to", help="Last UTC day (YYYY-MM-DD), inclusive.")],
    connection: Annotated[list[str] | None, typer.Option(
        "--connection", "-c", help="Only this connection (repeatable). Default: all.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's debug log.")] = False,
) -> None:
    """Materialise a range of days in-process: one run per connection, then usage_daily.

    Example: doow-azure sync --from 2026-10-01 --to 2026-10-31 --connection prod
    """
    from .runs import sync_range

    config = load_config_or_exit()
    first_day, last_day = _parse_day(from_, "--from"), _parse_day(to, "--to")
    if first_day > last_day:
        raise fail_usage(f"--from {first_day} is after --to {last_day}")
    if first_day < config.settings.start_date:
        raise fail_usage(f"--from {first_day} is before settings.start_date {config.settings.start_date} in "
                         f"{config.path}; move start_date earlier or sync later days")
    if last_day > utc_today():
        raise fail_usage(f"--to {last_day} is in the future (today is {utc_today()} UTC)")
    for name in connection or ():
        try:
            config.connection(name)
        except KeyError as exc:
            raise fail_usage(str(exc.args[0])) from None

    def progress(job: str, report) -> None:
        if as_json:
            return
        if report is None:
            err_console.print(f"… {job}: running", markup=False)
        else:
            status = "ok" if report.success else f"FAILED: {report.failure}"
            err_console.print(f"{'✓' if report.success else '✗'} {job}: {status}", markup=False)
            for name, passed, severity, text in report.checks:
                if not passed:
                    err_console.print(f"    check {name} ({severity}): {text}", markup=False)

    reports = sync_range(config, first_day, last_day, connection, on_progress=progress,
                         log_level="DEBUG" if verbose else "WARNING")
    summary = usage_summary(config, first_day, last_day)
    failed = [r for r in reports if not r.success]
    if as_json:
        json.dump({"from": str(first_day), "to": str(last_day), "ok": not failed,
                   "runs": [{"job": r.job, "success": r.success, "failure": r.failure,
                             "failed_checks": [{"check": c, "severity": s, "description": d}
                                               for c, p, s, d in r.checks if not p]} for r in reports],
                   "usage": summary}, sys.stdout, default=str, indent=1)
        sys.stdout.write("\n")
    else:
        print_summary(summary, first_day, last_day)
        if failed:
            err_console.print(f"{len(failed)} run(s) failed: " + "; ".join(f"{r.job}: {r.failure}" for r in failed),
                              markup=False)
    raise typer.Exit(EXIT_FAILURE if failed else EXIT_OK)


def main() -> None:
    # Registers connect, status, doctor and disconnect on `app`. Called through the module's own `app`, which
    # is this one except under `python -m doow_pipeline.cli`, where this file runs as __main__.
    from . import cli_connections

    cli_connections.app()


if __name__ == "__main__":
    main()
