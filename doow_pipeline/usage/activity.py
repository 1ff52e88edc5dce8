"""Roll-up of deployment activity beyond tokens (pure polars): requests by status code, spillover and service
tier per day, and provisioned utilisation per hour.

The family rule is usage's: per (day, resource, deployment) the family usage_daily used (models where it has
token data, else azure_openai), never both; a deployment without token usage that day (only throttled calls,
say) follows the same rule on its own data. One connection per account and day, as in usage_daily.
"""

from __future__ import annotations

import polars as pl

from ..core.metrics import ACTIVITY_COLUMNS, EMPTY_DIMENSION, Family

DEPLOYMENT_KEY = ["usage_date", "resource_id", "deployment"]
DIMENSIONS = ["deployment", "model_name", "model_version", "metric_region"]
REQUEST_COLUMNS = list(ACTIVITY_COLUMNS.values())


def _reported(columns: list[str]) -> list[pl.Expr]:
    return [pl.when(pl.col(c).is_in(["", EMPTY_DIMENSION])).then(None).otherwise(pl.col(c)).alias(c) for c in columns]


def _chosen(frame: pl.DataFrame, usage: pl.DataFrame, usage_family: bool) -> pl.DataFrame:
    """Keeps, per (day, resource, deployment), one connection (usage's for the account) and one family: usage's
    where `usage_family` and usage has the deployment, else the rule applied to the frame itself."""
    from_usage = usage.select([*DEPLOYMENT_KEY, "connection", pl.col("metric_family").alias("family")]).unique(
        DEPLOYMENT_KEY
    )
    if not usage_family:
        from_usage = from_usage.clear()
    account_connection = usage.select("usage_date", "resource_id", "connection").unique(["usage_date", "resource_id"])
    own = (
        frame.join(account_connection, on=["usage_date", "resource_id"], how="left", suffix="_account")
        .group_by(DEPLOYMENT_KEY)
        .agg(
            pl.col("connection_account").first().fill_null(pl.col("connection").min()).alias("connection"),
            pl.when((pl.col("family") == str(Family.MODELS)).any())
            .then(pl.lit(str(Family.MODELS)))
            .otherwise(pl.lit(str(Family.AZURE_OPENAI)))
            .alias("family"),
        )
    )
    choice = pl.concat(
        [from_usage, own.join(from_usage, on=DEPLOYMENT_KEY, how="anti", nulls_equal=True).select(from_usage.columns)]
    )
    return frame.join(choice, on=[*DEPLOYMENT_KEY, "connection", "family"], how="semi", nulls_equal=True)


def roll_up_requests(points: pl.DataFrame, usage: pl.DataFrame) -> pl.DataFrame:
    """Daily requests per (day, connection, resource, deployment, model, version, region, status code,
    spillover, tier requested, tier served) from the landed request points (columns of
    core.metrics.REQUEST_POINT_SCHEMA plus `connection`)."""
    daily = (
        points.with_columns(pl.col("timestamp").dt.date().alias("usage_date"), *_reported(DIMENSIONS + REQUEST_COLUMNS))
        .group_by(["usage_date", "connection", "resource_id", "family", *DIMENSIONS, *REQUEST_COLUMNS])
        .agg(pl.col("total").sum().round().cast(pl.Int64).alias("requests"))
    )
    kept = _chosen(daily, usage, usage_family=True)
    return kept.rename({"family": "metric_family"}).filter(pl.col("requests") > 0)


def roll_up_utilization(points: pl.DataFrame, usage: pl.DataFrame) -> pl.DataFrame:
    """Hourly Average and Maximum utilisation per (hour, connection, resource, deployment, model, version,
    region) from the landed utilisation points (core.metrics.UTILIZATION_POINT_SCHEMA plus `connection`)."""
    hourly = points.with_columns(
        pl.col("timestamp").dt.replace_time_zone(None).alias("hour"),
        pl.col("timestamp").dt.date().alias("usage_date"),
        *_reported(DIMENSIONS),
    ).select(
        "hour",
        "usage_date",
        "connection",
        "resource_id",
        "family",
        *DIMENSIONS,
        pl.col("average").alias("avg_utilization"),
        pl.col("maximum").alias("max_utilization"),
    )
    # Utilisation metrics are not token metrics: the rule applies to their own data.
    kept = _chosen(hourly, usage, usage_family=False)
    return kept.rename({"family": "metric_family"})
