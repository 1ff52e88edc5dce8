"""Pure transforms from raw metric points to daily usage rows (polars, no I/O).

Rules (design.md §3):
- dimension values `__Empty` mean "not reported" and become NULL;
- buckets are P1D aligned to 00:00Z, so a point's timestamp date is its usage day;
- one connection per (resource, day): overlapping scopes never count a resource twice;
- per (resource, deployment, day) the "models" family wins where it has token data, else "azure_openai";
  the two are never added together;
- legacy rows (no ModelName dimension) take the model name from "models" rows of the same deployment and
  version where known, else NULL;
- tokens are integers.
"""

from __future__ import annotations

import polars as pl

from ..azure.definitions import METRIC_QUANTITY

EMPTY_DIMENSION = "__Empty"
DIMENSIONS = ["deployment", "model_name", "model_version", "metric_region"]
GRAIN = ["usage_date", "resource_id", *DIMENSIONS]
QUANTITIES = ["input_tokens", "output_tokens", "total_tokens", "requests"]
TOKEN_QUANTITIES = ["input_tokens", "output_tokens", "total_tokens"]
USAGE_COLUMNS = ["usage_date", "connection", "resource_id", *DIMENSIONS, *QUANTITIES, "metric_family"]
MODEL_NAME_KEY = ["resource_id", "deployment", "model_version"]

_QUANTITY_OF_METRIC = pl.DataFrame(
    {"metric_lower": list(METRIC_QUANTITY), "quantity": list(METRIC_QUANTITY.values())})


def normalise_points(points: pl.DataFrame) -> pl.LazyFrame:
    """Raw points (with a `connection` column) to (connection, day, dims, family, quantity, value)."""
    return (
        points.lazy()
        .with_columns(
            [pl.when(pl.col(c) == EMPTY_DIMENSION).then(None).otherwise(pl.col(c)).alias(c) for c in DIMENSIONS]
            + [pl.col("timestamp").dt.date().alias("usage_date"), pl.col("metric").str.to_lowercase().alias("metric_lower")]
        )
        .join(_QUANTITY_OF_METRIC.lazy(), on="metric_lower", how="inner")
        .select("connection", "resource_id", "family", *DIMENSIONS, "usage_date", "quantity",
                pl.col("total").round(0).cast(pl.Int64).alias("value"))
    )


def _one_connection_per_resource_day(points: pl.LazyFrame) -> pl.LazyFrame:
    chosen = points.group_by("resource_id", "usage_date").agg(pl.col("connection").min().alias("chosen"))
    return (points.join(chosen, on=["resource_id", "usage_date"])
            .filter(pl.col("connection") == pl.col("chosen")).drop("chosen"))


def _pivot_quantities(points: pl.LazyFrame) -> pl.LazyFrame:
    keys = ["connection", "resource_id", "family", *DIMENSIONS, "usage_date"]
    return points.group_by(keys).agg(
        [pl.col("value").filter(pl.col("quantity") == q).sum().alias(q) for q in QUANTITIES]
        + [(pl.col("quantity") == "requests").any().alias("has_requests")]
    )


def _pick_family(rows: pl.LazyFrame) -> pl.LazyFrame:
    has_tokens = pl.any_horizontal([pl.col(q) != 0 for q in TOKEN_QUANTITIES])
    models_days = (rows.filter((pl.col("family") == "models") & has_tokens)
                   .select("resource_id", "deployment", "usage_date").unique()
                   .with_columns(pl.lit(True).alias("models_has_data")))
    return (rows.join(models_days, on=["resource_id", "deployment", "usage_date"], how="left", nulls_equal=True)
            .filter(pl.when(pl.col("models_has_data")).then(pl.col("family") == "models")
                    .otherwise(pl.col("family") == "azure_openai"))
            .drop("models_has_data"))


def model_names(points: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """(resource_id, deployment, model_version) -> model_name, from "models" family points, where unambiguous."""
    frame = points.lazy() if isinstance(points, pl.DataFrame) else points
    return (
        frame.filter((pl.col("family") == "models") & pl.col("model_name").is_not_null()
                     & (pl.col("model_name") != EMPTY_DIMENSION))
        .with_columns([pl.when(pl.col(c) == EMPTY_DIMENSION).then(None).otherwise(pl.col(c)).alias(c)
                       for c in ("deployment", "model_version")])
        .group_by(MODEL_NAME_KEY).agg(pl.col("model_name").unique().alias("names"))
        .filter(pl.col("names").list.len() == 1)
        .select(*MODEL_NAME_KEY, pl.col("names").list.first().alias("known_model_name"))
    )


def roll_up_daily(points: pl.DataFrame, known_model_names: pl.LazyFrame | None = None) -> pl.DataFrame:
    """Daily usage rows at the warehouse grain from raw points of one or more connections.

    `known_model_names` (see `model_names`) lets legacy rows be named from points outside this batch, so a
    day's rows do not depend on which range was rebuilt with it.
    """
    normalised = normalise_points(points)
    rows = _pick_family(_pivot_quantities(_one_connection_per_resource_day(normalised)))
    names = known_model_names if known_model_names is not None else model_names(points)
    rows = (
        rows.join(names, on=MODEL_NAME_KEY, how="left", nulls_equal=True)
        .with_columns(pl.coalesce("model_name", "known_model_name").alias("model_name"))
        .drop("known_model_name")
        # Two legacy series can only merge here if a name was filled in; sum keeps the grain unique.
        .group_by("usage_date", "connection", "resource_id", *DIMENSIONS, "family")
        .agg([pl.col(q).sum() for q in QUANTITIES] + [pl.col("has_requests").any()])
        .with_columns(
            pl.when(pl.col("has_requests")).then(pl.col("requests")).otherwise(None).alias("requests"),
            pl.col("family").alias("metric_family"),
        )
    )
    return rows.select(USAGE_COLUMNS).sort(GRAIN, nulls_last=True).collect()
