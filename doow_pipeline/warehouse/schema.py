"""DuckDB schema `azure_openai`: the warehouse contract of design.md §6."""

from __future__ import annotations

import polars as pl

from ..core.problems import TROUBLESHOOTING, ProblemCode, Symptom
from ..usage.focus import SCHEMA as FOCUS_SCHEMA

SCHEMA = "azure_openai"

# What connection_status says for the states that have no error message of their own; the troubleshooting
# rows are core/problems.py's, so the view, `doctor` and the checks give the same advice.
UNREADABLE = TROUBLESHOOTING[Symptom.NO_USAGE]
UNREADABLE_ACTION = (
    f"{TROUBLESHOOTING[Symptom.ONE_RESOURCE].action}; then re-sync the affected days "
    "(`doow-azure doctor <connection>` lists them)."
)
METRIC_ERRORS_CAUSE = "Azure kept answering errors for some metrics in the latest sync, so some usage is missing."
METRIC_ERRORS_ACTION = "Re-sync these days later; if it persists, check the Azure status page."
NEVER_SYNCED_CAUSE = "No sync has landed data for this connection yet."
NEVER_SYNCED_ACTION = (
    "Run `doow-azure sync --from DAY --to DAY --connection <connection>`, or materialise its "
    "metric_points partitions in Dagster."
)
DOCTOR = "Run `doow-azure doctor <connection>`."


def _sql(text: str) -> str:
    return text.replace("'", "''")


USAGE_DAILY_COLUMNS = (
    ("usage_date", "DATE NOT NULL"),
    ("connection", "VARCHAR NOT NULL"),
    ("tenant_id", "VARCHAR"),
    ("subscription_id", "VARCHAR"),
    ("resource_group", "VARCHAR"),
    ("resource_name", "VARCHAR"),
    ("resource_id", "VARCHAR NOT NULL"),
    ("resource_kind", "VARCHAR"),
    ("resource_region", "VARCHAR"),
    ("deployment", "VARCHAR"),
    ("model_name", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("metric_region", "VARCHAR"),
    ("input_tokens", "BIGINT NOT NULL"),
    ("output_tokens", "BIGINT NOT NULL"),
    ("total_tokens", "BIGINT NOT NULL"),
    ("requests", "BIGINT"),
    ("metric_family", "VARCHAR NOT NULL"),
    ("is_final", "BOOLEAN NOT NULL"),
    ("synced_at", "TIMESTAMP NOT NULL"),
)

REQUESTS_DAILY_COLUMNS = (
    ("usage_date", "DATE NOT NULL"),
    ("connection", "VARCHAR NOT NULL"),
    ("resource_id", "VARCHAR NOT NULL"),
    ("resource_name", "VARCHAR"),
    ("deployment", "VARCHAR"),
    ("model_name", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("metric_region", "VARCHAR"),
    ("status_code", "VARCHAR"),
    ("is_spillover", "VARCHAR"),
    ("tier_request", "VARCHAR"),
    ("tier_response", "VARCHAR"),
    ("requests", "BIGINT NOT NULL"),
    ("metric_family", "VARCHAR NOT NULL"),
    ("is_final", "BOOLEAN NOT NULL"),
    ("synced_at", "TIMESTAMP NOT NULL"),
)

PTU_UTILIZATION_HOURLY_COLUMNS = (
    ("hour", "TIMESTAMP NOT NULL"),  # UTC
    ("usage_date", "DATE NOT NULL"),
    ("connection", "VARCHAR NOT NULL"),
    ("resource_id", "VARCHAR NOT NULL"),
    ("resource_name", "VARCHAR"),
    ("deployment", "VARCHAR"),
    ("model_name", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("metric_region", "VARCHAR"),
    ("avg_utilization", "DOUBLE"),
    ("max_utilization", "DOUBLE"),
    ("metric_family", "VARCHAR NOT NULL"),
    ("is_final", "BOOLEAN NOT NULL"),
    ("synced_at", "TIMESTAMP NOT NULL"),
)

ACCOUNTS_COLUMNS = (
    ("usage_date", "DATE NOT NULL"),
    ("connection", "VARCHAR NOT NULL"),
    ("tenant_id", "VARCHAR NOT NULL"),
    ("subscription_id", "VARCHAR NOT NULL"),
    ("resource_group", "VARCHAR NOT NULL"),
    ("resource_name", "VARCHAR NOT NULL"),
    ("resource_id", "VARCHAR NOT NULL"),
    ("resource_kind", "VARCHAR NOT NULL"),
    ("resource_region", "VARCHAR NOT NULL"),
    ("readable", "BOOLEAN NOT NULL"),
    ("metrics_api", "VARCHAR"),
    ("metric_families", "VARCHAR"),
    ("synced_at", "TIMESTAMP NOT NULL"),
)

# What each column means (design.md §6): shown as column descriptions in Dagster and kept beside the DDL so they
# cannot drift apart.
USAGE_DAILY_DESCRIPTIONS = {
    "usage_date": "UTC day of the usage.",
    "connection": "Connection that supplied the row (the first by name when scopes overlap).",
    "tenant_id": "Entra ID tenant of the account.",
    "subscription_id": "Azure subscription of the account.",
    "resource_group": "Resource group of the account.",
    "resource_name": "Azure OpenAI / AI Services account name.",
    "resource_id": "Full ARM id of the account.",
    "resource_kind": "Account kind: OpenAI or AIServices.",
    "resource_region": "Account location from ARM.",
    "deployment": "Model deployment name (ModelDeploymentName); NULL when Azure does not report it.",
    "model_name": "Model name from the ModelName dimension; NULL when not reported.",
    "model_version": "Model version from the ModelVersion dimension; NULL when not reported.",
    "metric_region": "Region dimension as Azure Monitor reports it; NULL when not reported.",
    "input_tokens": "Prompt (input) tokens of the day.",
    "output_tokens": "Completion (output) tokens of the day.",
    "total_tokens": "Total tokens of the day (input + output).",
    "requests": "Model requests of the day; NULL when not reported.",
    "metric_family": "Metric family the row comes from: models or azure_openai (never both per deployment-day).",
    "is_final": "The day had settled (settings.settle_hours after its end) when it was synced.",
    "synced_at": "When the row's day was synced (UTC).",
}

ACCOUNTS_DESCRIPTIONS = {
    "usage_date": "UTC day the inventory applies to.",
    "connection": "Connection whose scope holds the account.",
    "tenant_id": "Entra ID tenant of the account.",
    "subscription_id": "Azure subscription of the account.",
    "resource_group": "Resource group of the account.",
    "resource_name": "Account name.",
    "resource_id": "Full ARM id of the account.",
    "resource_kind": "Account kind: OpenAI or AIServices.",
    "resource_region": "Account location from ARM.",
    "readable": "The connection's principal could read the account's metrics.",
    "metrics_api": "Metrics API used for its subscription: batch or per_resource.",
    "metric_families": "Metric families queried for the account (models, azure_openai).",
    "synced_at": "When the day was synced (UTC).",
}

CONNECTION_STATUS_DESCRIPTIONS = {
    "connection": "Configured connection.",
    "state": "healthy, degraded (some accounts unreadable or persistent metric errors), failing (credentials, "
    "role, scope or endpoint) or never synced.",
    "cause": "Why the connection is not healthy.",
    "next_action": "What to do about it.",
    "last_successful_sync": "When the connection last landed data (UTC).",
    "last_error": "The latest error, with its fix.",
    "last_error_time": "When the latest error happened (UTC).",
    "last_error_code": "The latest error's problem code.",
    "usage_rows": "usage_daily rows supplied by the connection.",
    "total_tokens": "Total tokens in those rows.",
    "accounts_covered": "Readable accounts on the connection's latest synced day.",
    "accounts_in_scope": "Accounts in scope on that day.",
    "unreadable_accounts": "Accounts the principal could not read on that day.",
    "metric_errors": "Metrics Azure kept refusing in the latest sync.",
    "first_day": "First day with usage.",
    "last_day": "Last day with usage.",
}

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};

CREATE TABLE IF NOT EXISTS {SCHEMA}.usage_daily (
    {", ".join(f"{name} {kind}" for name, kind in USAGE_DAILY_COLUMNS)}
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.requests_daily (
    {", ".join(f"{name} {kind}" for name, kind in REQUESTS_DAILY_COLUMNS)}
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.ptu_utilization_hourly (
    {", ".join(f"{name} {kind}" for name, kind in PTU_UTILIZATION_HOURLY_COLUMNS)}
);

-- Per deployment and day: throttled share (429 / all requests), spillover and downgraded priority requests.
-- Client retries of a 429 are counted again: the share of throttled *calls*, an upper bound for users.
CREATE OR REPLACE VIEW {SCHEMA}.deployment_requests_daily AS
SELECT usage_date, connection, resource_id, any_value(resource_name) AS resource_name, deployment,
       sum(requests) AS requests,
       coalesce(sum(requests) FILTER (WHERE status_code = '429'), 0) AS throttled_requests,
       coalesce(sum(requests) FILTER (WHERE status_code = '429'), 0) / sum(requests) AS throttled_share,
       coalesce(sum(requests) FILTER (WHERE status_code LIKE '5%'), 0) AS server_error_requests,
       coalesce(sum(requests) FILTER (WHERE lower(is_spillover) = 'true'), 0) AS spillover_requests,
       coalesce(sum(requests) FILTER (WHERE lower(tier_request) = 'priority'), 0) AS priority_requests,
       coalesce(sum(requests) FILTER (WHERE lower(tier_request) = 'priority'
                                      AND lower(coalesce(tier_response, '')) <> 'priority'), 0)
           AS downgraded_priority_requests,
       bool_and(is_final) AS is_final
FROM {SCHEMA}.requests_daily
GROUP BY usage_date, connection, resource_id, deployment;

-- Per PTU deployment and day: the peak and mean of the hourly values, and the hours whose Maximum reached
-- 90% and 100% (averages hide saturation: read the maximum).
CREATE OR REPLACE VIEW {SCHEMA}.ptu_utilization_daily AS
SELECT usage_date, connection, resource_id, any_value(resource_name) AS resource_name, deployment,
       max(max_utilization) AS max_utilization, avg(avg_utilization) AS avg_utilization,
       count(DISTINCT hour) AS hours_reported,
       count(DISTINCT hour) FILTER (WHERE max_utilization >= 90) AS hours_at_or_above_90,
       count(DISTINCT hour) FILTER (WHERE max_utilization >= 100) AS hours_at_100,
       bool_and(is_final) AS is_final
FROM {SCHEMA}.ptu_utilization_hourly
GROUP BY usage_date, connection, resource_id, deployment;

CREATE TABLE IF NOT EXISTS {SCHEMA}.accounts (
    {", ".join(f"{name} {kind}" for name, kind in ACCOUNTS_COLUMNS)}
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.syncs (
    connection VARCHAR NOT NULL,
    usage_date DATE NOT NULL,
    is_final BOOLEAN NOT NULL,
    synced_at TIMESTAMP NOT NULL,
    accounts_in_scope BIGINT NOT NULL,
    raw_points BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_events (
    "time" TIMESTAMP NOT NULL,
    connection VARCHAR NOT NULL,
    "partition" VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    resource VARCHAR
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.connections (
    connection VARCHAR PRIMARY KEY,
    tenant_id VARCHAR NOT NULL,
    client_id VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,
    cloud VARCHAR NOT NULL
);

CREATE OR REPLACE VIEW {SCHEMA}.connection_status AS
WITH last_event AS (
    -- errors that stopped a sync (a truncated series is an ERROR too, but its sync landed)
    SELECT connection, max("time") AS last_error_time, arg_max(message, "time") AS last_error,
           arg_max(code, "time") AS last_error_code
    FROM {SCHEMA}.sync_events WHERE level = 'ERROR' AND code <> '{ProblemCode.TRUNCATED}' GROUP BY connection
), synced AS (
    SELECT connection, max(synced_at) AS last_successful_sync FROM {SCHEMA}.syncs GROUP BY connection
), covered AS (
    -- accounts of each connection's latest synced day
    SELECT connection, count(DISTINCT resource_id) FILTER (WHERE readable) AS accounts_covered,
           count(DISTINCT resource_id) AS accounts_in_scope,
           list(DISTINCT resource_name ORDER BY resource_name) FILTER (WHERE NOT readable) AS unreadable_accounts
    FROM {SCHEMA}.accounts
    JOIN (SELECT connection, max(usage_date) AS usage_date FROM {SCHEMA}.accounts GROUP BY connection)
        USING (connection, usage_date)
    GROUP BY connection
), metric_errors AS (
    -- metrics Azure kept refusing in the connection's latest successful sync
    SELECT e.connection, count(*) AS metric_errors
    FROM {SCHEMA}.sync_events e JOIN synced s ON e.connection = s.connection AND e."time" = s.last_successful_sync
    WHERE e.code = '{ProblemCode.METRIC_ERROR}' GROUP BY e.connection
), usage AS (
    SELECT connection, count(*) AS usage_rows, sum(total_tokens) AS total_tokens,
           min(usage_date) AS first_day, max(usage_date) AS last_day
    FROM {SCHEMA}.usage_daily GROUP BY connection
), known AS (
    SELECT connection FROM {SCHEMA}.connections
    UNION SELECT connection FROM synced
    UNION SELECT connection FROM last_event
), judged AS (
    SELECT known.connection,
           CASE WHEN synced.last_successful_sync IS NULL AND last_event.last_error_time IS NULL THEN 'never synced'
                -- ">=": under a frozen clock a failure and the sync before it share a time; a sync that
                -- failed lands nothing, so the error is the later of the two
                WHEN last_event.last_error_time IS NOT NULL AND (synced.last_successful_sync IS NULL
                     OR last_event.last_error_time >= synced.last_successful_sync) THEN 'failing'
                WHEN coalesce(covered.accounts_covered, 0) < coalesce(covered.accounts_in_scope, 0)
                     OR coalesce(metric_errors.metric_errors, 0) > 0 THEN 'degraded'
                ELSE 'healthy' END AS state,
           synced.last_successful_sync, last_event.last_error, last_event.last_error_time,
           last_event.last_error_code,
           coalesce(usage.usage_rows, 0) AS usage_rows, coalesce(usage.total_tokens, 0) AS total_tokens,
           coalesce(covered.accounts_covered, 0) AS accounts_covered,
           coalesce(covered.accounts_in_scope, 0) AS accounts_in_scope,
           coalesce(covered.unreadable_accounts, []) AS unreadable_accounts,
           coalesce(metric_errors.metric_errors, 0) AS metric_errors,
           usage.first_day, usage.last_day
    FROM known
    LEFT JOIN synced USING (connection)
    LEFT JOIN covered USING (connection)
    LEFT JOIN last_event USING (connection)
    LEFT JOIN metric_errors USING (connection)
    LEFT JOIN usage USING (connection)
)
SELECT connection, state,
       CASE state
           WHEN 'never synced' THEN '{_sql(NEVER_SYNCED_CAUSE)}'
           -- a Problem reads "<cause> Fix: <fix>" (core/problems.py)
           WHEN 'failing' THEN regexp_replace(last_error, ' Fix: .*$', '')
           WHEN 'degraded' THEN CASE WHEN accounts_covered < accounts_in_scope
               THEN (accounts_in_scope - accounts_covered) || ' of ' || accounts_in_scope || ' account(s) unreadable ('
                    || array_to_string(unreadable_accounts, ', ') || '): {_sql(UNREADABLE.cause)}.'
               ELSE '{_sql(METRIC_ERRORS_CAUSE)}' END
       END AS cause,
       CASE state
           WHEN 'never synced' THEN '{_sql(NEVER_SYNCED_ACTION)}'
           WHEN 'failing' THEN coalesce(nullif(regexp_extract(last_error, 'Fix: (.*)$', 1), ''), '{_sql(DOCTOR)}')
           WHEN 'degraded' THEN CASE WHEN accounts_covered < accounts_in_scope THEN '{_sql(UNREADABLE_ACTION)}'
                                     ELSE '{_sql(METRIC_ERRORS_ACTION)}' END
       END AS next_action,
       last_successful_sync, last_error, last_error_time, last_error_code, usage_rows, total_tokens,
       accounts_covered, accounts_in_scope, unreadable_accounts, metric_errors, first_day, last_day
FROM judged
ORDER BY connection;
"""


METRIC_POINTS_COLUMNS = (
    "connection VARCHAR, usage_date DATE, resource_id VARCHAR, family VARCHAR, metric VARCHAR, "
    "deployment VARCHAR, model_name VARCHAR, model_version VARCHAR, metric_region VARCHAR, "
    '"timestamp" TIMESTAMPTZ, total DOUBLE'
)


def glob_escape(path: str) -> str:
    """`path` as a literal inside a DuckDB glob pattern: a folder named `wh[1]` or `a*b` matches only itself."""
    return "".join(f"[{ch}]" if ch in "[*?" else ch for ch in path)


def metric_points_view_sql(landing_dir: str, has_files: bool) -> str:
    """`metric_points` is a view over the landing Parquet files (design.md §6 allows it): the raw points are
    stored once, and the writer never copies millions of rows. Paths are absolute: keep the landing folder
    beside the DuckDB file. With no file landed yet, the view is empty with the same columns."""
    if not has_files:
        columns = ", ".join(
            f"NULL::{kind} AS {name}"
            for name, kind in (c.strip().rsplit(" ", 1) for c in METRIC_POINTS_COLUMNS.split(", "))
        )
        return f"CREATE OR REPLACE VIEW {SCHEMA}.metric_points AS SELECT {columns} WHERE false"
    pattern = (glob_escape(landing_dir) + "/points/connection=*/day=*/points.parquet").replace("'", "''")
    return f"""
CREATE OR REPLACE VIEW {SCHEMA}.metric_points AS
SELECT connection, "day" AS usage_date, resource_id, family, metric, deployment, model_name, model_version,
       metric_region, "timestamp", total
FROM read_parquet('{pattern}', hive_partitioning = true,
                  hive_types = {{'connection': VARCHAR, 'day': DATE}}, union_by_name = true)"""


# ---- cost and ownership ------------------------------------------------------------------------------------------
# An estimate at public list price (the Retail Prices API), never the invoice: every table and column says so.

RETAIL_PRICES_COLUMNS = (
    ("meter_id", "VARCHAR NOT NULL"),
    ("meter_name", "VARCHAR NOT NULL"),
    ("product_id", "VARCHAR"),
    ("product_name", "VARCHAR"),
    ("sku_id", "VARCHAR"),
    ("sku_name", "VARCHAR"),
    ("arm_sku_name", "VARCHAR"),
    ("service_id", "VARCHAR"),
    ("service_name", "VARCHAR"),
    ("service_family", "VARCHAR"),
    ("arm_region_name", "VARCHAR NOT NULL"),
    ("location", "VARCHAR"),
    ("currency_code", "VARCHAR NOT NULL"),
    ("retail_price", "DOUBLE NOT NULL"),
    ("unit_price", "DOUBLE"),
    ("unit_of_measure", "VARCHAR"),
    ("tier_minimum_units", "DOUBLE NOT NULL"),
    ("type", "VARCHAR NOT NULL"),
    ("reservation_term", "VARCHAR"),
    ("is_primary_meter_region", "BOOLEAN"),
    ("effective_start_date", "TIMESTAMPTZ NOT NULL"),
    ("effective_end_date", "TIMESTAMPTZ"),
    ("first_seen_at", "TIMESTAMP NOT NULL"),
    ("last_seen_at", "TIMESTAMP NOT NULL"),
)
# One stored record per price answer: the API answers today's prices only, so past days keep theirs.
RETAIL_PRICES_KEY = (
    "meter_id",
    "arm_region_name",
    "currency_code",
    "type",
    "tier_minimum_units",
    "effective_start_date",
)

USAGE_COST_EXTRA_COLUMNS = (
    (
        "deployment_type",
        "VARCHAR",
        ("deployment type used for matching (settings.deployment_types; Azure Monitor does not report it)"),
    ),
    ("deployment_type_source", "VARCHAR", "override, provisioned or default (the settings' default: assumed)"),
    ("input_meter_id", "VARCHAR", "Retail Prices meterId of input tokens"),
    ("input_meter_name", "VARCHAR", "Retail Prices meterName of input tokens"),
    ("input_unit_price", "DOUBLE", "public list price (retailPrice) per input_unit_of_measure input tokens"),
    ("input_unit_of_measure", "VARCHAR", "1K or 1M tokens"),
    ("output_meter_id", "VARCHAR", "Retail Prices meterId of output tokens"),
    ("output_meter_name", "VARCHAR", "Retail Prices meterName of output tokens"),
    ("output_unit_price", "DOUBLE", "public list price (retailPrice) per output_unit_of_measure output tokens"),
    ("output_unit_of_measure", "VARCHAR", "1K or 1M tokens"),
    ("currency", "VARCHAR", "currency of the list prices (settings.currency)"),
    ("input_cost", "DOUBLE", "ESTIMATE at public list price of the input tokens; NULL when unknown, never 0"),
    ("output_cost", "DOUBLE", "ESTIMATE at public list price of the output tokens; NULL when unknown, never 0"),
    (
        "estimated_cost",
        "DOUBLE",
        (
            "ESTIMATE at public list price (input + output): not the invoice (no "
            "discounts, reservations, savings plans, taxes or credits); NULL when unknown"
        ),
    ),
    ("cost_status", "VARCHAR NOT NULL", "priced, assumed_deployment_type, no_meter, ambiguous or billed_as_capacity"),
    ("cost_detail", "VARCHAR", "why a row is not priced, or which assumption priced it"),
    ("priced_at", "TIMESTAMP NOT NULL", "when the estimate was computed (UTC)"),
)
USAGE_COST_COLUMNS = tuple((n, k) for n, k in USAGE_DAILY_COLUMNS) + tuple(
    (n, k) for n, k, _ in USAGE_COST_EXTRA_COLUMNS
)

COST_DDL = f"""
ALTER TABLE {SCHEMA}.accounts ADD COLUMN IF NOT EXISTS tags MAP(VARCHAR, VARCHAR);

CREATE TABLE IF NOT EXISTS {SCHEMA}.retail_prices (
    {", ".join(f"{name} {kind}" for name, kind in RETAIL_PRICES_COLUMNS)}
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.price_fetches (
    fetched_at TIMESTAMP NOT NULL,
    cloud VARCHAR NOT NULL,
    endpoint VARCHAR,
    currency VARCHAR NOT NULL,
    regions VARCHAR NOT NULL,
    items BIGINT NOT NULL,
    new_records BIGINT NOT NULL,
    ok BOOLEAN NOT NULL,
    error VARCHAR
);

CREATE TABLE IF NOT EXISTS {SCHEMA}.usage_cost_daily (
    {", ".join(f"{name} {kind}" for name, kind in USAGE_COST_COLUMNS)}
);
"""


def _sql_type(dtype: pl.DataType) -> str:
    if dtype == pl.Float64:
        return "DOUBLE"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    return "VARCHAR"


FOCUS_COLUMNS = tuple((name, _sql_type(dtype)) for name, dtype in FOCUS_SCHEMA.items())
COST_DDL += f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.focus_cost_daily (
    {", ".join(f'"{name}" {kind}' for name, kind in FOCUS_COLUMNS)}
);
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


COST_COMMENTS = [
    f"COMMENT ON TABLE {SCHEMA}.retail_prices IS "
    + _quote(
        "Public Azure Retail Prices (list prices) of Azure OpenAI / Foundry Models meters, every answer kept "
        "with its effective dates, so past days keep the price in force then."
    ),
    f"COMMENT ON TABLE {SCHEMA}.price_fetches IS "
    + _quote("Each read of the Retail Prices API: when, where, how many items, new records, error."),
    f"COMMENT ON TABLE {SCHEMA}.usage_cost_daily IS "
    + _quote(
        "ESTIMATE at public list price of usage_daily rows: the matched meters, unit prices and a status per "
        "row. Not the invoice: no discounts, reservations, savings plans, taxes or credits. Unknown cost is "
        "NULL, never 0."
    ),
    f"COMMENT ON TABLE {SCHEMA}.focus_cost_daily IS "
    + _quote(
        "FOCUS-aligned, not conformant: ListUnitPrice and ListCost are the public list price estimate "
        "(x_CostBasis RetailListPriceEstimate); BilledCost and EffectiveCost stay empty (they come from Cost "
        "Management, which is never read)."
    ),
    f"COMMENT ON COLUMN {SCHEMA}.accounts.tags IS "
    + _quote("ARM tags of the account, as the accounts list returned them"),
    *(
        f"COMMENT ON COLUMN {SCHEMA}.usage_cost_daily.{name} IS {_quote(text)}"
        for name, _k, text in USAGE_COST_EXTRA_COLUMNS
    ),
]


def account_owners_view_sql(owner_tag: str, cost_centre_tag: str) -> str:
    """`account_owners`: accounts with the tags that settings say mean owner and cost centre as columns, at the
    grain of `accounts` (usage_date, connection, resource_id), so it joins usage_daily on those three columns.
    Tag names compare case-insensitively, as in ARM."""

    def tag(name: str) -> str:
        return f"list_filter(map_entries(tags), lambda e: lower(e.key) = {_quote(name.lower())})[1].value"

    return f"""
CREATE OR REPLACE VIEW {SCHEMA}.account_owners AS
SELECT usage_date, connection, resource_id, resource_name, subscription_id, resource_group,
       {tag(owner_tag)} AS owner, {tag(cost_centre_tag)} AS cost_centre, tags
FROM {SCHEMA}.accounts;
COMMENT ON VIEW {SCHEMA}.account_owners IS {
        _quote(
            f"Accounts with their owner (tag {owner_tag!r}) and cost "
            f"centre (tag {cost_centre_tag!r}); join usage_daily or "
            "usage_cost_daily on (usage_date, connection, resource_id)."
        )
    };
"""
