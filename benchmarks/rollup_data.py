"""Worker: synthetic landing zone of N raw metric points (POINT_SCHEMA), generated with polars.

Shaped like a real sync's landing: `connections` connections of accounts with 10 deployments each over
`days` UTC days; OpenAI models report in both metric families (8 metrics), the others in "models" only
(4 metrics), as Azure does. Every (connection, day) is written through `Landing.write_day` (zstd Parquet
+ manifest with the account inventory), the way `fetch_connection` lands a day.

Values are deterministic; input + output = total in both families, so the warehouse checks hold, and the
expected totals are returned for the parent to check the roll-up against.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from benchmarks.common import worker_main

MODELS = (
    ("gpt-4o", "2024-11-20", True),
    ("gpt-4o-mini", "2024-07-18", True),
    ("gpt-4.1", "2025-04-14", True),
    ("o3-mini", "2025-01-31", True),
    ("text-embedding-3-large", "1", True),
    ("gpt-4.1-mini", "2025-04-14", True),
    ("Phi-4", "7", False),
    ("DeepSeek-R1", "1", False),
    ("gpt-5", "2025-08-07", True),
    ("Mistral-Large-2411", "2", False),
)
DEPLOYMENTS = 10
REGIONS = ("eastus", "westeurope", "swedencentral")
FAMILY_METRICS = {
    "models": ("InputTokens", "OutputTokens", "TotalTokens", "ModelRequests"),
    "azure_openai": ("ProcessedPromptTokens", "GeneratedTokens", "TokenTransaction", "AzureOpenAIRequests"),
}
TENANT = "8c1f4a6e-2b3d-4e5f-9a0b-1c2d3e4f5a60"


def points_per_account_day() -> int:
    return sum(8 if openai else 4 for _, _, openai in MODELS[:DEPLOYMENTS])


def accounts_for(points: int, connections: int, days: int) -> int:
    """Accounts per connection so that the estate holds about `points` raw points."""
    return max(1, round(points / (days * points_per_account_day() * connections)))


def generate(spec: dict) -> dict:
    import polars as pl

    from doow_pipeline.core.metrics import POINT_SCHEMA
    from doow_pipeline.warehouse.landing import DayManifest, Landing

    started = time.perf_counter()
    n_conn, per_conn, n_days = int(spec["connections"]), int(spec["accounts_per_connection"]), int(spec["days"])
    last = date.fromisoformat(spec["last_day"])
    days = [last - timedelta(days=n_days - 1 - i) for i in range(n_days)]
    synced_at = datetime.fromisoformat(spec["synced_at"])
    landing = Landing(spec["landing"])

    accounts = []
    for c in range(n_conn):
        subscription = f"00000000-0000-4000-8000-{c:012d}"
        for a in range(per_conn):
            name = f"bench-{c}-{a:05d}"
            rg = f"rg-bench-{a % 5}"
            accounts.append(
                {
                    "connection": f"bench_{c}",
                    "tenant_id": TENANT,
                    "subscription_id": subscription,
                    "resource_group": rg,
                    "resource_name": name,
                    "resource_id": f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/"
                    f"Microsoft.CognitiveServices/accounts/{name}",
                    "resource_kind": "OpenAI" if a % 2 == 0 else "AIServices",
                    "resource_region": REGIONS[a % 3],
                    "readable": True,
                    "metrics_api": "batch",
                    "metric_families": "azure_openai,models",
                    "index": a,
                }
            )
    acc = pl.DataFrame(accounts).select("connection", "resource_id", "resource_region", "index")
    deps = pl.DataFrame(
        {
            "d": list(range(DEPLOYMENTS)),
            "model": [m for m, _, _ in MODELS[:DEPLOYMENTS]],
            "version": [v for _, v, _ in MODELS[:DEPLOYMENTS]],
            "openai": [o for _, _, o in MODELS[:DEPLOYMENTS]],
        }
    )
    day_frame = pl.DataFrame(
        {"timestamp": [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days]},
        schema={"timestamp": pl.Datetime("us", "UTC")},
    )
    base = (
        acc.join(deps, how="cross")
        .join(day_frame, how="cross")
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("i"),
            (pl.col("model").str.to_lowercase() + "-" + pl.col("d").cast(pl.String)).alias("deployment"),
        )
        .with_columns(
            (100_000 + (pl.col("i") * 2_654_435_761) % 200_000).cast(pl.Float64).alias("input"),
            (20_000 + (pl.col("i") * 40_503) % 60_000).cast(pl.Float64).alias("output"),
            (500 + (pl.col("i") * 7_919) % 1_000).cast(pl.Float64).alias("req"),
        )
    )
    frames = []
    for family, (m_in, m_out, m_total, m_req) in FAMILY_METRICS.items():
        rows = base if family == "models" else base.filter(pl.col("openai"))
        for metric, value in (
            (m_in, pl.col("input")),
            (m_out, pl.col("output")),
            (m_total, pl.col("input") + pl.col("output")),
            (m_req, pl.col("req")),
        ):
            frames.append(
                rows.select(
                    "connection",
                    "resource_id",
                    pl.lit(family).alias("family"),
                    pl.lit(metric).alias("metric"),
                    "deployment",
                    (pl.col("model") if family == "models" else pl.lit(None, pl.String)).alias("model_name"),
                    pl.col("version").alias("model_version"),
                    pl.col("resource_region").alias("metric_region"),
                    "timestamp",
                    value.alias("total"),
                )
            )
    points = pl.concat(frames)
    expected = {
        "points": points.height,
        "usage_rows": base.height,  # one row per (resource, deployment, day): "models" wins everywhere
        "models_total_tokens": int((base["input"] + base["output"]).sum()),
    }
    generated = time.perf_counter() - started
    inventories = {}
    for account in accounts:
        inventories.setdefault(account["connection"], []).append(
            {k: v for k, v in account.items() if k not in ("connection", "index")}
        )
    for (connection, timestamp), day_points in points.partition_by(["connection", "timestamp"], as_dict=True).items():
        day = timestamp.date()
        manifest = DayManifest(
            connection=connection,
            day=day.isoformat(),
            synced_at=synced_at.isoformat(),
            is_final=True,
            accounts=inventories[connection],
        )
        landing.write_day(manifest, day_points.select(list(POINT_SCHEMA)))
    return {
        "expected": expected,
        "generate_s": generated,
        "write_s": time.perf_counter() - started - generated,
        "connections": [
            {
                "name": f"bench_{c}",
                "tenant_id": TENANT,
                "client_id": "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5b0",
                "scope": f"/subscriptions/00000000-0000-4000-8000-{c:012d}",
                "cloud": "AzureCloud",
            }
            for c in range(n_conn)
        ],
        "days": [d.isoformat() for d in days],
    }


if __name__ == "__main__":
    worker_main(generate)
