"""The read side of the warehouse: what `status`, `doctor`, the sync summary and the status asset read.

Every function takes an open (read-only) connection and returns plain values; no function writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import polars as pl

from ..usage.focus import SCHEMA as FOCUS_SCHEMA
from .schema import SCHEMA

STATUS_COLUMNS = (
    "state",
    "cause",
    "next_action",
    "last_successful_sync",
    "last_error",
    "last_error_time",
    "last_error_code",
    "usage_rows",
    "total_tokens",
    "accounts_covered",
    "accounts_in_scope",
    "unreadable_accounts",
    "metric_errors",
    "first_day",
    "last_day",
)


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $s", {"s": SCHEMA}
        ).fetchall()
    }


def usage_by_connection(con: duckdb.DuckDBPyConnection, first: date, last: date) -> list[dict[str, Any]]:
    """Per connection: accounts, deployments, rows and token and request sums over [first, last]."""
    return (
        con.execute(
            "SELECT connection, count(DISTINCT resource_id) AS accounts, count(DISTINCT deployment) AS deployments, "
            "count(*) AS rows, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
            f"sum(total_tokens) AS total_tokens, sum(requests) AS requests FROM {SCHEMA}.usage_daily "
            "WHERE usage_date BETWEEN ? AND ? GROUP BY connection ORDER BY connection",
            [first, last],
        )
        .pl()
        .to_dicts()
    )


def connection_status(con: duckdb.DuckDBPyConnection, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The `connection_status` view, by connection (all of them, or `names`)."""
    rows = con.execute(
        f"SELECT connection, {', '.join(STATUS_COLUMNS)} FROM {SCHEMA}.connection_status "
        "WHERE $names IS NULL OR connection IN (SELECT unnest($names))",
        {"names": names},
    ).fetchall()
    return {row[0]: dict(zip(STATUS_COLUMNS, row[1:], strict=True)) for row in rows}


def usage_groups(con: duckdb.DuckDBPyConnection, names: list[str], first: date, last: date) -> list[dict[str, Any]]:
    """Usage per connection, subscription, resource, regions, deployment and model over [first, last]."""
    cursor = con.execute(
        "SELECT connection, subscription_id, resource_name, resource_region, metric_region, deployment, "
        "model_name, count(*) AS rows, CAST(sum(input_tokens) AS BIGINT) AS input_tokens, "
        "CAST(sum(output_tokens) AS BIGINT) AS output_tokens, CAST(sum(total_tokens) AS BIGINT) AS total_tokens,"
        f" CAST(sum(requests) AS BIGINT) AS requests FROM {SCHEMA}.usage_daily "
        "WHERE connection IN (SELECT unnest($names)) AND usage_date BETWEEN $first AND $last "
        "GROUP BY ALL ORDER BY connection, total_tokens DESC, resource_name, deployment",
        {"names": names, "first": first, "last": last},
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


def tokens_per_day(
    con: duckdb.DuckDBPyConnection, names: list[str], first: date, last: date
) -> dict[tuple[str, date], int]:
    rows = con.execute(
        f"SELECT connection, usage_date, sum(total_tokens) FROM {SCHEMA}.usage_daily "
        "WHERE connection IN (SELECT unnest($names)) AND usage_date BETWEEN $first AND $last GROUP BY ALL",
        {"names": names, "first": first, "last": last},
    ).fetchall()
    return {(c, d): int(t) for c, d, t in rows}


def deployment_activity(
    con: duckdb.DuckDBPyConnection, names: list[str], first: date, last: date
) -> list[dict[str, Any]]:
    """Per connection and deployment over [first, last]: requests, throttled share (429 / all), its worst day,
    downgraded priority requests, and the PTU peak (Maximum) with the hours at or above 90% and at 100%.
    Only deployments with something to say: throttled or downgraded requests, or a utilisation series."""
    cursor = con.execute(
        f"""WITH r AS (
            SELECT connection, resource_id, any_value(resource_name) AS resource_name, deployment,
                   sum(requests)::BIGINT AS requests, sum(throttled_requests)::BIGINT AS throttled_requests,
                   max(throttled_share) AS worst_day_throttled_share,
                   sum(downgraded_priority_requests)::BIGINT AS downgraded_priority_requests
            FROM {SCHEMA}.deployment_requests_daily
            WHERE connection IN (SELECT unnest($names)) AND usage_date BETWEEN $first AND $last GROUP BY ALL
        ), p AS (
            SELECT connection, resource_id, any_value(resource_name) AS resource_name, deployment,
                   max(max_utilization) AS ptu_max_utilization,
                   sum(hours_at_or_above_90)::BIGINT AS ptu_hours_at_or_above_90,
                   sum(hours_at_100)::BIGINT AS ptu_hours_at_100
            FROM {SCHEMA}.ptu_utilization_daily
            WHERE connection IN (SELECT unnest($names)) AND usage_date BETWEEN $first AND $last GROUP BY ALL
        )
        SELECT connection, resource_id, coalesce(r.resource_name, p.resource_name) AS resource_name, deployment,
               r.requests, r.throttled_requests, r.throttled_requests / r.requests AS throttled_share,
               r.worst_day_throttled_share, r.downgraded_priority_requests, p.ptu_max_utilization,
               p.ptu_hours_at_or_above_90, p.ptu_hours_at_100
        FROM r FULL OUTER JOIN p USING (connection, resource_id, deployment)
        WHERE coalesce(r.throttled_requests, 0) > 0 OR coalesce(r.downgraded_priority_requests, 0) > 0
              OR p.ptu_max_utilization IS NOT NULL
        ORDER BY connection, p.ptu_max_utilization DESC NULLS LAST, throttled_share DESC NULLS LAST,
                 resource_name, deployment""",
        {"names": names, "first": first, "last": last},
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


# ---- doctor's facts ----------------------------------------------------------------------------------------------


def synced_account_days(
    con: duckdb.DuckDBPyConnection, resource_ids: list[str], days: list[date]
) -> set[tuple[str, date]]:
    """(lower-cased resource id, day) of readable accounts whose day was synced after it ended."""
    rows = con.execute(
        f"SELECT DISTINCT lower(resource_id), usage_date FROM {SCHEMA}.accounts WHERE lower(resource_id) IN "
        "(SELECT unnest($rids)) AND usage_date IN (SELECT unnest($days)) AND readable "
        "AND synced_at >= CAST(usage_date AS TIMESTAMP) + INTERVAL 1 DAY",
        {"rids": resource_ids, "days": days},
    ).fetchall()
    return {(rid, day) for rid, day in rows}


@dataclass(frozen=True)
class UsageKey:
    resource_id: str  # lower-cased
    usage_date: date
    deployment: str | None
    model_name: str | None
    metric_region: str | None
    connection: str


def usage_keys(con: duckdb.DuckDBPyConnection, resource_ids: list[str], days: list[date]) -> list[UsageKey]:
    rows = con.execute(
        "SELECT lower(resource_id), usage_date, deployment, model_name, metric_region, connection "
        f"FROM {SCHEMA}.usage_daily WHERE lower(resource_id) IN (SELECT unnest($rids)) "
        "AND usage_date IN (SELECT unnest($days))",
        {"rids": resource_ids, "days": days},
    ).fetchall()
    return [UsageKey(*row) for row in rows]


def latest_point(con: duckdb.DuckDBPyConnection, connection: str) -> datetime | None:
    value = con.execute(
        f'SELECT max("timestamp") FROM {SCHEMA}.metric_points WHERE connection = ?', [connection]
    ).fetchone()
    return value[0] if value else None


@dataclass(frozen=True)
class EventRow:
    time: datetime
    partition: str
    code: str
    message: str
    resource: str | None


def errors_since(
    con: duckdb.DuckDBPyConnection, connection: str, since: datetime | None, limit: int = 5
) -> list[EventRow]:
    rows = con.execute(
        f'SELECT "time", "partition", code, message, resource FROM {SCHEMA}.sync_events WHERE connection = ? '
        "AND level = 'ERROR' AND (CAST(? AS TIMESTAMP) IS NULL OR \"time\" > CAST(? AS TIMESTAMP)) "
        'ORDER BY "time" DESC LIMIT ?',
        [connection, since, since, limit],
    ).fetchall()
    return [EventRow(*row) for row in rows]


def warning_counts(con: duckdb.DuckDBPyConnection, connection: str) -> dict[str, int]:
    rows = con.execute(
        f"SELECT code, count(*) FROM {SCHEMA}.sync_events WHERE connection = ? AND level = 'WARN' "
        "GROUP BY code ORDER BY code",
        [connection],
    ).fetchall()
    return {code: count for code, count in rows}


# ---- cost (an estimate at public list price) ---------------------------------------------------------------------

COST_DIMENSIONS = ("model", "deployment", "connection")


def cost_groups(
    con: duckdb.DuckDBPyConnection, first: date, last: date, by: str, tag: str | None = None
) -> list[dict[str, Any]]:
    """Estimated list cost over [first, last] grouped by model, deployment, connection or an ARM tag's value.

    SQL's sum() of a group with no costed row is NULL (unknown), never 0; `costed_rows` says how many rows
    carry a cost and `statuses` how many rows each match status has."""
    keys = {
        "model": ["model_name", "model_version"],
        "deployment": ["resource_name", "deployment", "model_name"],
        "connection": ["connection"],
        "tag": ["tag_value"],
    }[by]
    tag_join = ""
    params: dict[str, Any] = {"first": first, "last": last}
    if by == "tag":
        # ARM tag names compare case-insensitively; an account without the tag is its own group (NULL)
        tag_join = (
            f"LEFT JOIN (SELECT usage_date, connection, resource_id, list_filter(map_entries(tags), "
            "lambda e: lower(e.key) = lower($tag))[1].value AS tag_value "
            f"FROM {SCHEMA}.accounts) t USING (usage_date, connection, resource_id)"
        )
        params["tag"] = tag
    key_list = ", ".join(keys)
    cursor = con.execute(
        f"SELECT {key_list}, currency, count(*) AS rows, count(estimated_cost) AS costed_rows, "
        "CAST(sum(input_tokens) AS BIGINT) AS input_tokens, CAST(sum(output_tokens) AS BIGINT) AS output_tokens, "
        "sum(input_cost) AS input_cost, sum(output_cost) AS output_cost, sum(estimated_cost) AS estimated_cost, "
        "CAST(sum(input_tokens + output_tokens) FILTER (WHERE estimated_cost IS NULL) AS BIGINT) "
        "AS uncosted_tokens, histogram(cost_status) AS statuses "
        f"FROM {SCHEMA}.usage_cost_daily {tag_join} WHERE usage_date BETWEEN $first AND $last "
        f"GROUP BY ALL ORDER BY estimated_cost DESC NULLS LAST, {key_list}",
        params,
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


def cost_by_connection(
    con: duckdb.DuckDBPyConnection, names: list[str], first: date, last: date
) -> dict[str, dict[str, Any]]:
    """Per connection: estimated list cost (NULL when no row is costed), costed and all rows, currency."""
    rows = con.execute(
        "SELECT connection, currency, sum(estimated_cost) AS estimated_cost, count(estimated_cost) AS costed_rows, "
        f"count(*) AS rows FROM {SCHEMA}.usage_cost_daily WHERE connection IN (SELECT unnest($names)) "
        "AND usage_date BETWEEN $first AND $last GROUP BY ALL ORDER BY connection, currency",
        {"names": names, "first": first, "last": last},
    ).fetchall()
    return {
        c: {"currency": cur, "estimated_cost": cost, "costed_rows": costed, "rows": n}
        for c, cur, cost, costed, n in rows
    }


def last_price_fetch(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The latest read of the Retail Prices API that answered, and the stored records."""
    row = con.execute(
        f"SELECT max(fetched_at) FILTER (WHERE ok), max(fetched_at), "
        f"(SELECT count(*) FROM {SCHEMA}.retail_prices) FROM {SCHEMA}.price_fetches"
    ).fetchone()
    if row is None or row[1] is None:
        return None
    failed = con.execute(
        f"SELECT error FROM {SCHEMA}.price_fetches WHERE fetched_at = ? AND NOT ok LIMIT 1", [row[1]]
    ).fetchone()
    return {"last_ok": row[0], "last_attempt": row[1], "records": row[2], "last_error": failed[0] if failed else None}


def focus_rows(con: duckdb.DuckDBPyConnection, first: date, last: date) -> pl.DataFrame:
    """The FOCUS-aligned rows of [first, last] as a polars frame in usage.focus's schema (UTC timestamps)."""
    frame = con.execute(
        f'SELECT * FROM {SCHEMA}.focus_cost_daily WHERE CAST("ChargePeriodStart" AS DATE) '
        'BETWEEN ? AND ? ORDER BY "ChargePeriodStart", "ResourceId", "x_DeploymentName", '
        '"x_ModelName", "x_ModelVersion", "x_TokenType"',
        [first, last],
    ).pl()
    utc = [
        pl.col(name).dt.convert_time_zone("UTC")
        for name, dtype in FOCUS_SCHEMA.items()
        if isinstance(dtype, pl.Datetime)
    ]
    return frame.with_columns(utc).select(list(FOCUS_SCHEMA)).cast(pl.Schema(FOCUS_SCHEMA))
