"""`doow-azure status`: each connection's health and recent usage, read from the warehouse (read-only)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

import duckdb
import typer
from rich.text import Text

from ..config import ProjectConfig
from ..core.clock import days_between
from ..core.problems import WarehouseError
from ..warehouse import queries
from ..warehouse.analyst import published_at
from ..warehouse.database import connect
from .cost import cost_line
from .output import EXIT_FAILURE, EXIT_OK, Output, new_table, num, sparkline, when
from .project import clock, configured_secrets, connection_or_exit, load_project, warn_if_env_readable

STATUS_DAYS = 7


def _status_rows(config: ProjectConfig, names: list[str], first: date, last: date) -> dict[str, dict[str, Any]]:
    """Per connection: status view row, usage groups and per-day trend (read-only)."""
    result: dict[str, dict[str, Any]] = {
        name: {
            "connection": name,
            "state": "never synced",
            "cause": None,
            "next_action": None,
            "last_successful_sync": None,
            "last_error": None,
            "last_error_time": None,
            "accounts_covered": 0,
            "accounts_in_scope": 0,
            "usage_rows_all": 0,
            "usage": [],
            "totals": {"rows": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "requests": 0},
            "trend": [],
            "activity": [],
            "cost": None,
        }
        for name in names
    }
    days = days_between(first, last)
    if not config.warehouse_path.exists():
        for item in result.values():
            item["trend"] = [{"day": str(d), "total_tokens": None} for d in days]
        return result
    with connect(config.warehouse_path, read_only=True, wait_seconds=10) as con:
        tables = queries.table_names(con)
        if "connection_status" in tables:
            for connection, row in queries.connection_status(con, names).items():
                item = result[connection]
                item.update(
                    {
                        key: row[key]
                        for key in (
                            "state",
                            "cause",
                            "next_action",
                            "last_successful_sync",
                            "last_error",
                            "last_error_time",
                            "accounts_covered",
                            "accounts_in_scope",
                        )
                    }
                )
                item["usage_rows_all"] = row["usage_rows"]
        if "usage_daily" in tables:
            for row in queries.usage_groups(con, names, first, last):
                name = row.pop("connection")
                result[name]["usage"].append(row)
                totals = result[name]["totals"]
                for key in totals:
                    totals[key] += int(row[key] or 0)
            if "requests_daily" in tables:
                for row in queries.deployment_activity(con, names, first, last):
                    result[row.pop("connection")]["activity"].append(row)
            by_day = queries.tokens_per_day(con, names, first, last)
            for name, item in result.items():
                item["trend"] = [{"day": str(d), "total_tokens": by_day.get((name, d))} for d in days]
        if "usage_cost_daily" in tables:
            for name, cost in queries.cost_by_connection(con, names, first, last).items():
                result[name]["cost"] = cost
    return result


def _analyst_copy(config: ProjectConfig) -> dict[str, Any] | None:
    """The read-only analyst copy and when it was last published (None: settings.analyst_copy is 'off')."""
    path = config.analyst_copy_path
    if path is None:
        return None
    stamp = published_at(path)
    return {"path": str(path), "published_at": stamp}


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


STATUS_EPILOG = """Examples:

  doow-azure status

  doow-azure status prod --days 30

  doow-azure status --json | jq '.connections[] | {connection, state, totals}'
"""


def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this connection. Default: all.")] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=400, help="Usage window: the last N complete UTC days.")
    ] = STATUS_DAYS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each connection's health and recent usage, read from the warehouse (read-only).

    State (healthy, degraded, failing, never synced) with the cause and next action, last successful sync,
    last error, usage rows and token
    totals per subscription, resource, region, deployment and model, and a per-day trend.
    Exits 1 when a shown connection is failing.
    """
    output = Output()
    config = load_project(ctx, output)
    output.secrets.extend(configured_secrets(config))
    warn_if_env_readable(output, config)
    if name is not None:
        connection_or_exit(output, config, name)
    names = [name] if name else [c.name for c in config.connections]
    now = clock(ctx, config).now()
    last = now.date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    try:
        rows = _status_rows(config, names, first, last)
    except (WarehouseError, duckdb.Error) as exc:  # a locked or damaged warehouse: say so, no traceback
        output.error(
            f"cannot read the warehouse {config.warehouse_path}: {type(exc).__name__}: {exc}. If the file "
            "is damaged, move it aside and re-sync (the landing zone keeps the raw data)."
        )
        raise typer.Exit(EXIT_FAILURE) from None
    failing = [n for n, r in rows.items() if r["state"] == "failing"]
    analyst_copy = _analyst_copy(config)
    if as_json:
        output.json(
            {
                "as_of": now.isoformat(),
                "from": str(first),
                "to": str(last),
                "warehouse": str(config.warehouse_path),
                "analyst_copy": analyst_copy,
                "connections": [
                    {**rows[n], "scope": config.connection(n).scope, "cloud": config.connection(n).cloud} for n in names
                ],
            }
        )
        raise typer.Exit(EXIT_FAILURE if failing else EXIT_OK)
    if not names:
        output.line(f"No connections in {config.path}; add one with `doow-azure connect`.")
        raise typer.Exit(EXIT_OK)
    if analyst_copy is not None:
        output.line(
            f"analyst copy (read-only, for BI tools and notebooks): {analyst_copy['path']}, published "
            f"{when(analyst_copy['published_at'])}"
        )
    styles = {"healthy": "green", "degraded": "yellow", "failing": "red", "never synced": "yellow"}
    for n in names:
        row = rows[n]
        connection = config.connection(n)
        output.line("")
        header = Text()
        header.append(f"{n}  ", style="bold")
        header.append(row["state"], style=styles.get(row["state"], ""))
        header.append(f"  {connection.scope}")
        output.out.print(header, soft_wrap=True)
        last_sync = row["last_successful_sync"]
        output.line(
            f"  last successful sync: {when(last_sync)}; accounts readable: "
            f"{row['accounts_covered']} of {row['accounts_in_scope']}"
        )
        if row.get("cause") and row["state"] != "never synced":
            output.line(
                f"  {row['state']}: {row['cause']} Next action: {row['next_action']}",
                "red" if row["state"] == "failing" else "yellow",
            )
        if row["last_error"]:
            output.line(f"  last error ({when(row['last_error_time'])}): {row['last_error']}", "red")
        totals = row["totals"]
        trend = [d["total_tokens"] for d in row["trend"]]
        output.line(
            f"  {first} .. {last}: {totals['rows']:,} usage rows, {totals['total_tokens']:,} tokens "
            f"(input {totals['input_tokens']:,}, output {totals['output_tokens']:,}), "
            f"{totals['requests']:,} requests"
        )
        output.line("  " + cost_line(row["cost"]))
        output.line(
            f"  tokens per day  {sparkline(trend)}  ({first:%m-%d} .. {last:%m-%d}; max "
            f"{num(max((t for t in trend if t is not None), default=0))})"
        )
        if row["usage"]:
            table = new_table(
                "subscription",
                "resource",
                "region",
                "usage region",
                "deployment",
                "model",
                "rows",
                "input",
                "output",
                "total",
                "requests",
                right=("rows", "input", "output", "total", "requests"),
            )
            for u in row["usage"]:
                table.add_row(
                    u["subscription_id"] or "",
                    u["resource_name"] or "",
                    u["resource_region"] or "",
                    u["metric_region"] or "-",
                    u["deployment"] or "-",
                    u["model_name"] or "-",
                    num(u["rows"]),
                    num(u["input_tokens"]),
                    num(u["output_tokens"]),
                    num(u["total_tokens"]),
                    num(u["requests"]),
                )
            output.table(table)
        if row["activity"]:
            # Throttled share counts calls: a client retrying a 429 counts again. PTU: the hourly Maximum,
            # since averages hide saturation.
            table = new_table(
                "resource",
                "deployment",
                "requests",
                "throttled (429)",
                "worst day",
                "downgraded",
                "PTU peak",
                "hours >= 90%",
                "hours at 100%",
                right=(
                    "requests",
                    "throttled (429)",
                    "worst day",
                    "downgraded",
                    "PTU peak",
                    "hours >= 90%",
                    "hours at 100%",
                ),
            )
            for a in row["activity"]:
                table.add_row(
                    a["resource_name"] or "",
                    a["deployment"] or "-",
                    num(a["requests"]),
                    _share(a["throttled_share"]),
                    _share(a["worst_day_throttled_share"]),
                    num(a["downgraded_priority_requests"]),
                    "-" if a["ptu_max_utilization"] is None else f"{a['ptu_max_utilization']:.0f}%",
                    num(a["ptu_hours_at_or_above_90"]),
                    num(a["ptu_hours_at_100"]),
                )
            output.line("  throttling, downgraded priority requests and PTU utilisation (hourly maximum):")
            output.table(table)
        if not row["usage"] and row["state"] == "never synced":
            output.line(f"  no usage yet: run `doow-azure sync --from {first} --to {last} --connection {n}`")
    raise typer.Exit(EXIT_FAILURE if failing else EXIT_OK)
