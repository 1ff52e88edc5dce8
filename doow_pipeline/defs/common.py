"""What every Dagster piece of the project shares: the group, owners, partitions, pool, and check results."""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

from ..config import ProjectConfig
from ..core.checks import CheckDef, CheckOutcome, Severity
from ..core.clock import days_between
from ..warehouse.analyst import Publication

GROUP = "azure_openai"
OWNERS = ["team:data-platform"]
DUCKDB_POOL = "duckdb"
INTERRUPTED = "interrupted (Ctrl-C or a stop signal)"  # a step that ended because a stop was asked for

_SEVERITY = {Severity.ERROR: dg.AssetCheckSeverity.ERROR, Severity.WARN: dg.AssetCheckSeverity.WARN}


def daily_partitions(config: ProjectConfig) -> dg.DailyPartitionsDefinition:
    # end_offset=1 adds today's (partial) partition, so the schedule can refresh the current day.
    return dg.DailyPartitionsDefinition(start_date=config.settings.start_date.isoformat(), end_offset=1, timezone="UTC")


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    key_range = context.partition_key_range
    return days_between(date.fromisoformat(key_range.start), date.fromisoformat(key_range.end))


def check_spec(check: CheckDef, key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(check.name, asset=key, description=check.description, blocking=check.blocking)


def _metadata_value(value: Any) -> Any:
    return dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value


def check_result(outcome: CheckOutcome, key: dg.AssetKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=_SEVERITY[outcome.severity],
        description=outcome.description,
        metadata={k: _metadata_value(v) for k, v in outcome.metadata.items()},
    )


def markdown_table(headers: list[str], rows: list[list[Any]] | list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def log_publication(context: dg.AssetExecutionContext, publication: Publication | None) -> None:
    """The analyst copy published after a write: an INFO line, or a WARNING naming the failure (the write
    itself is committed; the materialization's `analyst_copy_error` metadata says the same)."""
    if publication is None:
        return
    if publication.ok:
        context.log.info(publication.message)
    else:
        context.log.warning(publication.message)
