"""Cost in the warehouse: stored Retail Prices, `usage_cost_daily` and `focus_cost_daily`, the owners view.

- Prices: every answer of the Retail Prices API is kept (`retail_prices`, one record per meter, region,
  currency, type, tier and effectiveStartDate). The API answers today's prices only, so a record never
  changes once stored (only `last_seen_at`, and an end date when the API reports one): re-pricing a past
  day gives the same cost, and an unreachable API leaves the stored prices in use.
- Cost: the usage rows of a day range priced by usage.pricing and written, with the FOCUS-aligned rows of
  usage.focus, in one transaction (rerunning leaves identical tables). An estimate at public list price,
  never the invoice; unknown cost is NULL, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from ..core.checks import TOKENS_HAVE_METERS, CheckOutcome
from ..usage.focus import focus_frame
from ..usage.pricing import AMBIGUOUS, COSTED_STATUSES, NO_METER, PRICE_COLUMNS, DeploymentTypes, price_usage
from .analyst import Publication, publish_analyst_copy
from .database import connect
from .schema import (
    RETAIL_PRICES_COLUMNS,
    RETAIL_PRICES_KEY,
    SCHEMA,
    USAGE_COST_COLUMNS,
    USAGE_DAILY_COLUMNS,
    account_owners_view_sql,
)

_POLARS_TYPES: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMPTZ": pl.Datetime("us", "UTC"),
    "TIMESTAMP": pl.Datetime("us"),
}
PRICE_RECORD_SCHEMA = pl.Schema(
    {name: _POLARS_TYPES[kind.replace(" NOT NULL", "")] for name, kind in RETAIL_PRICES_COLUMNS}
)


@dataclass(frozen=True)
class PriceFetchRecord:
    """One read of the Retail Prices API (one cloud's endpoint), as `price_fetches` records it."""

    fetched_at: datetime  # UTC
    cloud: str
    endpoint: str | None
    currency: str
    regions: tuple[str, ...]
    items: int
    new_records: int
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class CostOptions:
    """What settings say about cost: deployment types, model names for deployments whose metrics name none,
    the currency, and the tags meaning owner and cost centre."""

    deployment_types: DeploymentTypes = field(default_factory=DeploymentTypes)
    deployment_models: Mapping[str, str] = field(default_factory=dict)
    currency: str = "USD"
    owner_tag: str = "owner"
    cost_centre_tag: str = "cost-center"


@dataclass
class CostSummary:
    days: list[date]
    rows: int = 0
    currency: str = "USD"
    statuses: dict[str, int] = field(default_factory=dict)
    per_day: dict[str, dict[str, float | int | None]] = field(default_factory=dict)  # estimated_cost NULL = unknown
    focus_rows: int = 0
    stored_prices: int = 0
    check_results: list[CheckOutcome] = field(default_factory=list)
    publication: Publication | None = None  # the analyst copy published after the COMMIT (None: not configured)


# ---- prices --------------------------------------------------------------------------------------------------
def account_regions(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Regions of the configured connections' accounts, per cloud: the regions whose prices are needed."""
    rows = con.execute(
        f"SELECT DISTINCT c.cloud, lower(a.resource_region) FROM {SCHEMA}.accounts a "
        f"JOIN {SCHEMA}.connections c USING (connection) WHERE a.resource_region <> '' ORDER BY ALL"
    ).fetchall()
    regions: dict[str, list[str]] = {}
    for cloud, region in rows:
        regions.setdefault(cloud, []).append(region)
    return regions


def price_records(prices: list[dict[str, object]], seen_at: datetime) -> pl.DataFrame:
    """Price items (RetailPrice fields, snake_case) as `retail_prices` rows first and last seen at `seen_at`."""
    naive = seen_at.replace(tzinfo=None)
    rows = [
        {**{k: p.get(k) for k in PRICE_RECORD_SCHEMA}, "first_seen_at": naive, "last_seen_at": naive} for p in prices
    ]
    frame = pl.DataFrame(rows, schema=PRICE_RECORD_SCHEMA, orient="row")
    # one record per key: the client already drops repeats; a page answered twice must not double a price
    return frame.unique(list(RETAIL_PRICES_KEY), keep="first", maintain_order=True)


def merge_prices(con: duckdb.DuckDBPyConnection, records: pl.DataFrame) -> int:
    """Adds the records not stored yet; a stored record keeps its price and dates (only `last_seen_at` moves,
    and an end date the API now reports is recorded). Returns how many records were new."""
    if records.is_empty():
        return 0
    con.register("fetched_prices", records)
    on = " AND ".join(f"r.{k} = f.{k}" for k in RETAIL_PRICES_KEY)
    con.execute(
        f"UPDATE {SCHEMA}.retail_prices r SET last_seen_at = greatest(r.last_seen_at, f.last_seen_at), "
        "effective_end_date = coalesce(r.effective_end_date, f.effective_end_date) "
        f"FROM fetched_prices f WHERE {on}"
    )
    inserted = con.execute(
        f"INSERT INTO {SCHEMA}.retail_prices BY NAME SELECT f.* FROM fetched_prices f "
        f"ANTI JOIN {SCHEMA}.retail_prices r ON {on}"
    ).fetchone()
    con.unregister("fetched_prices")
    return int(inserted[0]) if inserted else 0


def record_fetches(con: duckdb.DuckDBPyConnection, fetches: list[PriceFetchRecord]) -> None:
    for f in fetches:
        con.execute(
            f"INSERT INTO {SCHEMA}.price_fetches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                f.fetched_at.replace(tzinfo=None),
                f.cloud,
                f.endpoint,
                f.currency,
                ",".join(f.regions),
                f.items,
                f.new_records,
                f.ok,
                f.error,
            ],
        )


@dataclass(frozen=True)
class PricesState:
    records: int
    last_ok_fetch: datetime | None  # naive UTC
    newest_effective_start: datetime | None


def prices_state(con: duckdb.DuckDBPyConnection, currency: str) -> PricesState:
    records, newest = con.execute(
        f"SELECT count(*), max(effective_start_date) FROM {SCHEMA}.retail_prices WHERE currency_code = ?", [currency]
    ).fetchone() or (0, None)
    last_ok = con.execute(
        f"SELECT max(fetched_at) FROM {SCHEMA}.price_fetches WHERE ok AND currency = ?", [currency]
    ).fetchone()
    return PricesState(int(records or 0), last_ok[0] if last_ok else None, newest)


def stored_prices(con: duckdb.DuckDBPyConnection, currency: str) -> pl.DataFrame:
    """Every stored price record of the currency, as usage.pricing reads prices."""
    frame = con.execute(
        f"SELECT {', '.join(PRICE_COLUMNS)} FROM {SCHEMA}.retail_prices WHERE currency_code = ?", [currency]
    ).pl()
    return frame.cast(PRICE_COLUMNS)  # type: ignore[arg-type]


def delete_connection_cost(con: duckdb.DuckDBPyConnection, connection: str) -> dict[str, int]:
    """Deletes one connection's estimated cost rows (and their FOCUS-aligned rows), inside the caller's
    transaction."""
    focus = con.execute(
        f"DELETE FROM {SCHEMA}.focus_cost_daily f WHERE EXISTS (SELECT 1 FROM {SCHEMA}.usage_cost_daily c "
        'WHERE c.connection = ? AND c.resource_id = f."ResourceId" '
        'AND c.usage_date = CAST(f."ChargePeriodStart" AS DATE))',
        [connection],
    ).fetchone()
    cost = con.execute(f"DELETE FROM {SCHEMA}.usage_cost_daily WHERE connection = ?", [connection]).fetchone()
    return {"usage_cost_daily": int(cost[0]) if cost else 0, "focus_cost_daily": int(focus[0]) if focus else 0}


# ---- cost ----------------------------------------------------------------------------------------------------
def _settings_models(usage: pl.DataFrame, models: Mapping[str, str]) -> pl.DataFrame:
    """The model name settings give a deployment whose metrics name none ("account/deployment" wins over a
    bare "deployment"), as `_settings_model`."""
    lowered = {k.lower(): v for k, v in models.items()}
    pairs = usage.filter(pl.col("model_name").is_null()).select("resource_name", "deployment").unique()

    def model(account: str | None, deployment: str | None) -> str | None:
        bare = (deployment or "").lower()
        return lowered.get(f"{(account or '').lower()}/{bare}", lowered.get(bare))

    found = [{"resource_name": a, "deployment": d, "_settings_model": model(a, d)} for a, d in pairs.iter_rows()]
    mapping = pl.DataFrame(
        found, schema={"resource_name": pl.String, "deployment": pl.String, "_settings_model": pl.String}
    )
    return usage.join(mapping, on=["resource_name", "deployment"], how="left", nulls_equal=True)


def price_rows(usage: pl.DataFrame, prices: pl.DataFrame, options: CostOptions, priced_at: datetime) -> pl.DataFrame:
    """usage_daily rows priced: meters, unit prices, estimated list cost and a status per row. A model name from
    settings (deployment_models) is used for matching only: model_name stays as the metrics reported it."""
    named = _settings_models(usage, options.deployment_models)
    priced = price_usage(
        named.with_columns(model_name=pl.coalesce("model_name", "_settings_model")),
        prices,
        options.deployment_types,
        options.currency,
    )
    from_settings = pl.col("_settings_model").is_not_null()
    priced = priced.with_columns(
        model_name=pl.when(from_settings).then(pl.lit(None, pl.String)).otherwise(pl.col("model_name")),
        cost_detail=pl.when(from_settings)
        .then(
            pl.format(
                "model {} from settings.deployment_models{}",
                pl.col("_settings_model"),
                pl.when(pl.col("cost_detail").is_not_null())
                .then(pl.lit("; ") + pl.col("cost_detail"))
                .otherwise(pl.lit("")),
            )
        )
        .otherwise(pl.col("cost_detail")),
        priced_at=pl.lit(priced_at.replace(tzinfo=None)).cast(pl.Datetime("us")),
    )
    return priced.select([name for name, _ in USAGE_COST_COLUMNS])


def _account_tags(con: duckdb.DuckDBPyConnection, first: date, last: date) -> dict[str, dict[str, str]]:
    """ARM tags per resource id, from its latest account row in the range."""
    rows = con.execute(
        f"SELECT resource_id, arg_max(map_entries(tags), usage_date) FROM {SCHEMA}.accounts "
        "WHERE usage_date BETWEEN ? AND ? GROUP BY resource_id",
        [first, last],
    ).fetchall()
    return {rid: {e["key"]: e["value"] for e in (entries or [])} for rid, entries in rows}


HOW_TO_MAP = (
    "How to map: a deployment whose metrics name no model gets one in settings.deployment_models "
    "({'account/deployment': 'gpt-4o'}); a deployment of another type gets it in settings.deployment_types."
    "overrides ({'account/deployment': 'Standard' | 'DataZoneStandard' | 'GlobalBatch' | ...}); a provisioned (PTU) "
    "deployment is listed in settings.deployment_types.provisioned (billed per hour). Models with no token meter in "
    "the Retail Prices API (Marketplace models) and ambiguous matches keep a NULL cost: never guessed. Days before "
    "the first stored price of a meter have none: the API answers today's prices only, the daily sync keeps them."
)


def _unmatched_check(priced: pl.DataFrame) -> CheckOutcome:
    unmatched = (
        priced.filter(
            pl.col("cost_status").is_in([NO_METER, AMBIGUOUS])
            & ((pl.col("input_tokens") > 0) | (pl.col("output_tokens") > 0))
        )
        .group_by(
            "resource_name",
            "deployment",
            "model_name",
            "model_version",
            "deployment_type",
            "resource_region",
            "cost_status",
        )
        .agg(
            pl.len().alias("rows"),
            (pl.col("input_tokens") + pl.col("output_tokens")).sum().alias("tokens"),
            pl.col("usage_date").min().alias("first"),
            pl.col("usage_date").max().alias("last"),
        )
        .sort("tokens", "resource_name", "deployment", descending=[True, False, False])
    )
    if unmatched.is_empty():
        return CheckOutcome(
            TOKENS_HAVE_METERS,
            True,
            "Every deployment's tokens matched a meter (or are provisioned).",
            {"unmatched_deployments": 0},
        )
    lines = [_unmatched_line(r) for r in unmatched.head(10).iter_rows(named=True)]
    more = f"; and {unmatched.height - 10} more" if unmatched.height > 10 else ""
    return CheckOutcome(
        TOKENS_HAVE_METERS,
        False,
        (
            f"{unmatched.height} deployment(s) have tokens with no single meter, so their cost is NULL: "
            + "; ".join(lines)
            + more
            + ". "
            + HOW_TO_MAP
        ),
        {
            "unmatched_deployments": unmatched.height,
            "unmatched_tokens": int(unmatched["tokens"].sum()),
            "deployments": [f"{r['resource_name']}/{r['deployment']}" for r in unmatched.iter_rows(named=True)][:50],
        },
    )


def _unmatched_line(row: dict[str, object]) -> str:
    key = f"{row['resource_name']}/{row['deployment']}"
    version = row["model_version"] or "?"
    if row["model_name"] is None:
        return f"{key}: version {version}, no model name in its metrics (Azure OpenAI metrics family only)"
    what = f"{key}: {row['model_name']} version {version} as {row['deployment_type']} in {row['resource_region']}"
    days = f" ({row['first']}..{row['last']})" if row["first"] != row["last"] else f" ({row['first']})"
    return what + (" matches several meters" if row["cost_status"] == AMBIGUOUS else " has no token meter") + days


def _per_day(priced: pl.DataFrame) -> dict[str, dict[str, float | int | None]]:
    # polars sums an all-NULL group to 0: an unknown cost must stay None, so sum only where a row is costed
    costed = pl.col("cost_status").is_in(COSTED_STATUSES)
    days = (
        priced.group_by("usage_date")
        .agg(
            rows=pl.len(),
            costed_rows=costed.sum(),
            estimated_cost=pl.when(costed.any()).then(pl.col("estimated_cost").sum()),
        )
        .sort("usage_date")
    )
    return {str(r.pop("usage_date")): r for r in days.iter_rows(named=True)}


def write_cost(
    warehouse: Path, days: list[date], options: CostOptions, now: datetime, analyst_copy: Path | None = None
) -> CostSummary:
    """Prices the usage rows of `days` with every stored price and replaces those days of usage_cost_daily and
    focus_cost_daily in one transaction; refreshes the account_owners view; then publishes the analyst copy
    (when `analyst_copy` is set)."""
    first, last = min(days), max(days)
    summary = CostSummary(days=days, currency=options.currency)
    with connect(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(account_owners_view_sql(options.owner_tag, options.cost_centre_tag))
            usage = con.execute(
                f"SELECT {', '.join(n for n, _ in USAGE_DAILY_COLUMNS)} FROM {SCHEMA}.usage_daily "
                "WHERE usage_date BETWEEN ? AND ?",
                [first, last],
            ).pl()
            prices = stored_prices(con, options.currency)
            summary.stored_prices = prices.height
            priced = price_rows(usage, prices, options, now)
            focus = focus_frame(priced, _account_tags(con, first, last))
            con.execute(f"DELETE FROM {SCHEMA}.usage_cost_daily WHERE usage_date BETWEEN ? AND ?", [first, last])
            con.register("new_cost", priced)
            con.execute(f"INSERT INTO {SCHEMA}.usage_cost_daily BY NAME SELECT * FROM new_cost")
            con.execute(
                f'DELETE FROM {SCHEMA}.focus_cost_daily WHERE CAST("ChargePeriodStart" AS DATE) BETWEEN ? AND ?',
                [first, last],
            )
            con.register("new_focus", focus)
            con.execute(f"INSERT INTO {SCHEMA}.focus_cost_daily BY NAME SELECT * FROM new_focus")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if analyst_copy is not None:
            summary.publication = publish_analyst_copy(con, warehouse, analyst_copy)
    summary.rows = priced.height
    summary.focus_rows = focus.height
    summary.statuses = dict(sorted(priced.group_by("cost_status").len().iter_rows()))
    summary.per_day = _per_day(priced)
    summary.check_results = [_unmatched_check(priced)]
    return summary
