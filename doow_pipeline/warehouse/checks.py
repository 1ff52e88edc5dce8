"""Checks on the usage rows a write produced, inside its transaction -> CheckOutcome.

`usage` is exactly what the transaction wrote for the days, so the row checks run on it directly instead of
reading a million rows back; the overlap check reads the accounts table.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from ..core.checks import (
    NO_OVERLAPPING_SCOPES,
    SINGLE_METRIC_FAMILY,
    TOKENS_CONSISTENT,
    UNIQUE_GRAIN,
    CheckOutcome,
)
from ..usage.transform import GRAIN
from .schema import SCHEMA


def usage_checks(con: duckdb.DuckDBPyConnection, usage: pl.DataFrame, days: list[date]) -> list[CheckOutcome]:
    duplicates = usage.select(GRAIN).filter(pl.struct(GRAIN).is_duplicated()).unique().height
    inconsistent = usage.filter(pl.col("input_tokens") + pl.col("output_tokens") != pl.col("total_tokens")).height
    double_family = (usage.group_by("usage_date", "resource_id", "deployment")
                     .agg(pl.col("metric_family").n_unique().alias("families"))
                     .filter(pl.col("families") > 1).height)
    overlaps = con.execute(
        f"SELECT resource_id, list(DISTINCT connection ORDER BY connection) AS connections FROM {SCHEMA}.accounts "
        "WHERE usage_date BETWEEN $first AND $last GROUP BY resource_id HAVING count(DISTINCT connection) > 1 "
        "ORDER BY resource_id", {"first": min(days), "last": max(days)}).fetchall()
    overlap_text = "; ".join(f"{rid} via {', '.join(conns)}" for rid, conns in overlaps[:10])
    return [
        CheckOutcome(UNIQUE_GRAIN, duplicates == 0, f"{duplicates} duplicate grain key(s)",
                     {"duplicate_keys": duplicates}),
        CheckOutcome(TOKENS_CONSISTENT, inconsistent == 0,
                     f"{inconsistent} row(s) where input_tokens + output_tokens <> total_tokens",
                     {"inconsistent_rows": inconsistent}),
        CheckOutcome(SINGLE_METRIC_FAMILY, double_family == 0,
                     f"{double_family} (day, resource, deployment) with both metric families",
                     {"mixed_keys": double_family}),
        CheckOutcome(NO_OVERLAPPING_SCOPES, not overlaps,
                     f"{len(overlaps)} account(s) reached through several connections, counted once (from the "
                     f"first connection by name): {overlap_text}" if overlaps else
                     "no account is reached through two connections", {"overlapping_accounts": len(overlaps)}),
    ]
