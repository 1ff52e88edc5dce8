"""Asset checks as typed values: each check's definition once (name, severity, description), and the
outcome of running it. Dagster wiring turns outcomes into `AssetCheckResult`s; nothing joins by strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "ERROR"
    WARN = "WARN"


@dataclass(frozen=True)
class CheckDef:
    name: str
    severity: Severity
    description: str
    blocking: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    check: CheckDef
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    raised_to: Severity | None = None  # a stronger severity for this outcome (a failing connection: ERROR)

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def severity(self) -> Severity:
        return self.raised_to or self.check.severity


# ---- per connection (on its metric_points asset) ----------------------------------------------------------------
# Not blocking: a blocking check that fails skips every downstream step of the run, so one connection's
# expired secret would stop usage_daily for all connections. The failed ERROR check marks the connection
# instead, and the writer keeps that connection's previous days.
CREDENTIALS = CheckDef(
    "credentials_and_monitoring_reader", Severity.ERROR, "The credential works and holds Monitoring Reader in scope."
)
ACCOUNTS_READABLE = CheckDef("accounts_readable", Severity.WARN, "Every discovered account's metrics are readable.")
SYNC_NOT_EMPTY = CheckDef("sync_not_empty", Severity.WARN, "The sync found usage where accounts exist.")
NO_SERIES_TRUNCATED = CheckDef("no_series_truncated", Severity.ERROR, "No dimension split was silently truncated.")
CONNECTION_CHECKS = (CREDENTIALS, ACCOUNTS_READABLE, SYNC_NOT_EMPTY, NO_SERIES_TRUNCATED)

# ---- on usage_daily ---------------------------------------------------------------------------------------------
UNIQUE_GRAIN = CheckDef(
    "unique_grain",
    Severity.ERROR,
    "One row per (usage_date, resource_id, deployment, model_name, model_version, metric_region).",
)
TOKENS_CONSISTENT = CheckDef(
    "tokens_consistent", Severity.ERROR, "input_tokens + output_tokens equals total_tokens on every row."
)
SINGLE_METRIC_FAMILY = CheckDef(
    "single_metric_family", Severity.ERROR, "No (day, resource, deployment) mixes the models and azure_openai families."
)
NO_OVERLAPPING_SCOPES = CheckDef(
    "no_overlapping_scopes",
    Severity.WARN,
    "Warns when an account is reached through several connections (it is counted once).",
)
LANDING_FILES_READABLE = CheckDef(
    "landing_files_readable",
    Severity.WARN,
    "Every landing file of the range could be read (a corrupt one is named and skipped; "
    "its day keeps its previous rows until re-synced).",
)
ALL_CONNECTIONS_LANDED = CheckDef(
    "all_connections_landed",
    Severity.WARN,
    "Every configured connection has landed data for each day written; names the connections missing per day.",
)
USAGE_CHECKS = (
    UNIQUE_GRAIN,
    TOKENS_CONSISTENT,
    SINGLE_METRIC_FAMILY,
    NO_OVERLAPPING_SCOPES,
    LANDING_FILES_READABLE,
    ALL_CONNECTIONS_LANDED,
)

# ---- on usage_daily: activity anomalies per deployment (usage/anomalies.py), judged on final days only -------
USAGE_SPIKE = CheckDef(
    "usage_spike",
    Severity.WARN,
    "No deployment's day is above settings.anomaly_factor x its trailing median (final days).",
)
USAGE_DROP = CheckDef(
    "usage_drop",
    Severity.WARN,
    "No deployment in steady use drops below 1/anomaly_factor of its trailing median (final days).",
)
DEPLOYMENT_SILENT = CheckDef(
    "deployment_silent", Severity.WARN, "No deployment in steady use goes silent (final days)."
)
DEPLOYMENT_NEW = CheckDef(
    "new_deployment",
    Severity.WARN,
    "Warns when a deployment starts using tokens after none in the trailing window (final days).",
)
ANOMALY_CHECKS = (USAGE_SPIKE, USAGE_DROP, DEPLOYMENT_SILENT, DEPLOYMENT_NEW)

# ---- on accounts ------------------------------------------------------------------------------------------------
ACCOUNTS_UNIQUE = CheckDef(
    "one_row_per_account_and_day", Severity.ERROR, "One row per (usage_date, connection, resource_id)."
)
ACCOUNTS_ALL_READABLE = CheckDef(
    "every_account_readable",
    Severity.WARN,
    "Every account in scope was readable on the days written; names those that were not, with the fix.",
)
ACCOUNTS_CHECKS = (ACCOUNTS_UNIQUE, ACCOUNTS_ALL_READABLE)


# ---- on connection_status (one per connection) -------------------------------------------------------------------
def connection_health_check(connection: str) -> CheckDef:
    """The health of one connection as a check on connection_status, so the lineage graph shows it."""
    return CheckDef(
        f"{connection}_healthy",
        Severity.WARN,
        f"Connection '{connection}' is healthy: its last sync read every account in scope (fails with "
        "the cause and next action when it is degraded, failing or never synced).",
    )


# ---- cost (on retail_prices and usage_cost_daily) ---------------------------------------------------------------
PRICES_FETCHED = CheckDef(
    "prices_fetched",
    Severity.WARN,
    "The Retail Prices API answered; when it cannot be reached, the stored prices stay in use.",
)
PRICES_FRESH = CheckDef(
    "prices_fresh", Severity.WARN, "The stored prices were read within settings.prices_max_age_days."
)
PRICES_CHECKS = (PRICES_FETCHED, PRICES_FRESH)
TOKENS_HAVE_METERS = CheckDef(
    "tokens_have_meters",
    Severity.WARN,
    "Every deployment's tokens match one meter; names each model and version that does not, and how to map it.",
)
COST_CHECKS = (TOKENS_HAVE_METERS,)
