"""Checks on the usage rows a write produced, inside its transaction -> CheckOutcome.

`usage` is exactly what the transaction wrote for the days, so the row checks run on it directly instead of
reading a million rows back; the overlap check reads the accounts table.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from ..core.checks import (
    ACCOUNTS_ALL_READABLE,
    ACCOUNTS_UNIQUE,
    ALL_CONNECTIONS_LANDED,
    NO_OVERLAPPING_SCOPES,
    SINGLE_METRIC_FAMILY,
    TOKENS_CONSISTENT,
    UNIQUE_GRAIN,
    CheckOutcome,
)
from ..core.problems import ROLE_FIX
from ..usage.anomalies import ACTIVITY_SCHEMA, COVERAGE_SCHEMA, AnomalyThresholds, anomaly_checks
from ..usage.transform import GRAIN
from .schema import SCHEMA


def usage_checks(
    con: duckdb.DuckDBPyConnection, usage: pl.DataFrame, days: list[date], missing: dict[date, list[str]] | None = None
) -> list[CheckOutcome]:
    """`missing`: per day, the configured connections that landed nothing for it (default: none)."""
    missing = missing if missing is not None else {day: [] for day in days}
    duplicates = usage.select(GRAIN).filter(pl.struct(GRAIN).is_duplicated()).unique().height
    inconsistent = usage.filter(pl.col("input_tokens") + pl.col("output_tokens") != pl.col("total_tokens")).height
    double_family = (
        usage.group_by("usage_date", "resource_id", "deployment")
        .agg(pl.col("metric_family").n_unique().alias("families"))
        .filter(pl.col("families") > 1)
        .height
    )
    overlaps = con.execute(
        f"SELECT resource_id, list(DISTINCT connection ORDER BY connection) AS connections FROM {SCHEMA}.accounts "
        "WHERE usage_date BETWEEN $first AND $last GROUP BY resource_id HAVING count(DISTINCT connection) > 1 "
        "ORDER BY resource_id",
        {"first": min(days), "last": max(days)},
    ).fetchall()
    overlap_text = "; ".join(f"{rid} via {', '.join(conns)}" for rid, conns in overlaps[:10])
    return [
        CheckOutcome(
            UNIQUE_GRAIN, duplicates == 0, f"{duplicates} duplicate grain key(s)", {"duplicate_keys": duplicates}
        ),
        CheckOutcome(
            TOKENS_CONSISTENT,
            inconsistent == 0,
            f"{inconsistent} row(s) where input_tokens + output_tokens <> total_tokens",
            {"inconsistent_rows": inconsistent},
        ),
        CheckOutcome(
            SINGLE_METRIC_FAMILY,
            double_family == 0,
            f"{double_family} (day, resource, deployment) with both metric families",
            {"mixed_keys": double_family},
        ),
        CheckOutcome(
            NO_OVERLAPPING_SCOPES,
            not overlaps,
            f"{len(overlaps)} account(s) reached through several connections, counted once (from the "
            f"first connection by name): {overlap_text}"
            if overlaps
            else "no account is reached through two connections",
            {"overlapping_accounts": len(overlaps)},
        ),
        _all_connections_landed(missing),
    ]


def _all_connections_landed(missing: dict[date, list[str]]) -> CheckOutcome:
    incomplete = {str(day): names for day, names in sorted(missing.items()) if names}
    if not incomplete:
        return CheckOutcome(
            ALL_CONNECTIONS_LANDED,
            True,
            f"Every configured connection landed data for all {len(missing)} day(s).",
            {"incomplete_days": 0},
        )
    by_connection: dict[str, list[str]] = {}
    for day, names in incomplete.items():
        for name in names:
            by_connection.setdefault(name, []).append(day)
    text = "; ".join(f"{name} ({_day_span(days)})" for name, days in sorted(by_connection.items()))
    return CheckOutcome(
        ALL_CONNECTIONS_LANDED,
        False,
        (
            f"{len(incomplete)} of {len(missing)} day(s) were built without data from: {text}. Their usage is missing "
            "from these days. Next action: fix the connection (see its credentials check and connection_status), "
            "then materialise its metric_points and usage_daily for these days."
        ),
        {
            "incomplete_days": len(incomplete),
            "missing_connections": sorted(by_connection),
            "missing_by_day": incomplete,
        },
    )


def _day_span(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{len(days)} days, {days[0]}..{days[-1]}"


def accounts_checks(accounts: pl.DataFrame) -> list[CheckOutcome]:
    """Checks on the account inventory the write loaded."""
    key = ["usage_date", "connection", "resource_id"]
    duplicates = accounts.select(key).filter(pl.struct(key).is_duplicated()).unique().height
    unreadable = (
        accounts.filter(~pl.col("readable"))
        .group_by("connection", "resource_name")
        .agg(pl.col("usage_date").min().alias("first"), pl.col("usage_date").max().alias("last"))
        .sort("connection", "resource_name")
    )
    names = [f"{r['connection']}: {r['resource_name']}" for r in unreadable.iter_rows(named=True)]
    return [
        CheckOutcome(
            ACCOUNTS_UNIQUE,
            duplicates == 0,
            f"{duplicates} duplicate (usage_date, connection, resource_id) key(s)",
            {"duplicate_keys": duplicates},
        ),
        CheckOutcome(
            ACCOUNTS_ALL_READABLE,
            not names,
            f"{len(names)} account(s) were not readable: {', '.join(names[:10])}. Their usage is missing. "
            f"Next action: {ROLE_FIX}."
            if names
            else "Every account in scope was readable.",
            {"unreadable_accounts": names},
        ),
    ]


def activity_anomalies(
    con: duckdb.DuckDBPyConnection, days: list[date], thresholds: AnomalyThresholds
) -> list[CheckOutcome]:
    """The anomaly checks for `days`, over what the warehouse holds for them and the trailing window (read
    inside the writer's transaction, so the days just written are seen)."""
    bounds = {"first": thresholds.first_baseline_day(days), "last": max(days)}
    activity = con.execute(
        f"SELECT usage_date, resource_id, any_value(resource_name) AS resource_name, deployment, "
        f"sum(total_tokens)::BIGINT AS total_tokens, sum(requests)::BIGINT AS requests FROM {SCHEMA}.usage_daily "
        "WHERE usage_date BETWEEN $first AND $last GROUP BY ALL",
        bounds,
    ).pl()
    # A day is covered for an account when a connection read the account that day; final when that sync was.
    coverage = con.execute(
        f"SELECT a.resource_id, a.usage_date, bool_or(s.is_final) AS is_final FROM {SCHEMA}.accounts a "
        f"JOIN {SCHEMA}.syncs s USING (connection, usage_date) "
        "WHERE a.readable AND a.usage_date BETWEEN $first AND $last GROUP BY ALL",
        bounds,
    ).pl()
    return anomaly_checks(
        activity.cast(ACTIVITY_SCHEMA),
        coverage.cast(COVERAGE_SCHEMA),
        days,
        thresholds,
    )
