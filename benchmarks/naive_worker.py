"""Worker: the baseline, a naive per-resource, per-day extractor.

What a first attempt looks like: for every account, every UTC day and every metric family, one
`MonitorManagementClient.metrics.list` call (azure-mgmt-monitor, the per-resource ARM metrics API) for that
day with P1D buckets, split by the same dimensions with the same explicit `top`, `concurrency` calls at a
time through the same AzureSession (same SDK clients, transport and retry policy as the pipeline).

It is given the account list (no discovery, no metricDefinitions: it assumes both families), which only
favours the baseline. The points it gets are written to Parquet so the parent can check them against the
emulator's generator, i.e. that the baseline did the same work.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from benchmarks.common import worker_main

SPLITS = {
    "models": ("ModelDeploymentName", "ModelName", "ModelVersion", "Region"),
    "azure_openai": ("ModelDeploymentName", "ModelVersion", "Region"),  # no ModelName on these token metrics
}
DIMENSION_COLUMNS = {
    "modeldeploymentname": "deployment",
    "modelname": "model_name",
    "modelversion": "model_version",
    "region": "metric_region",
}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(spec: dict) -> dict:
    import polars as pl

    from doow_pipeline.azure.metric_definitions import FamilyQuery
    from doow_pipeline.azure.session import AzureSession
    from doow_pipeline.config import Endpoints
    from doow_pipeline.core.metrics import FAMILY_METRICS, NAMESPACE, POINT_SCHEMA
    from doow_pipeline.services.sessions import cloud_endpoints

    endpoints = cloud_endpoints("AzureCloud", Endpoints(**spec["endpoints"]))
    first, last = date.fromisoformat(spec["first_day"]), date.fromisoformat(spec["last_day"])
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    queries = {
        family: FamilyQuery(family, tuple(metrics.values()), SPLITS[family])
        for family, metrics in FAMILY_METRICS.items()
    }
    # Day by day, account by account: the natural loop of a per-day extractor. It also spreads consecutive
    # calls over the sample's subscriptions, so ARM's per-subscription read budget throttles it no more than
    # it would the whole estate.
    tasks = [(account, day, family) for day in days for account in spec["accounts"] for family in queries]
    top = int(spec["top"])

    session = AzureSession(spec["tenant_id"], spec["client_id"], os.environ["DOOW_BENCH_SECRET"], endpoints)
    started = time.perf_counter()
    session.token()

    def call(task):
        account, day, family = task
        query = queries[family]
        start = datetime.combine(day, dtime(0), tzinfo=UTC)
        response = session.monitor(account["subscription_id"]).metrics.list(
            account["resource_id"],
            timespan=f"{_iso(start)}/{_iso(start + timedelta(days=1))}",
            interval="P1D",
            metricnames=",".join(query.metric_names),
            aggregation="Total",
            top=top,
            orderby="Total desc",
            filter=query.metric_query(top).filter(),
            metricnamespace=NAMESPACE,
        )
        rows = []
        for metric in response.value or ():
            for series in metric.timeseries or ():
                dims = {md.name.value.lower(): md.value for md in series.metadatavalues or ()}
                for point in series.data or ():
                    if point.total is None:
                        continue
                    rows.append(
                        (
                            account["resource_id"],
                            family,
                            metric.name.value,
                            *(dims.get(d) for d in DIMENSION_COLUMNS),
                            point.time_stamp,
                            float(point.total),
                        )
                    )
        return rows

    with ThreadPoolExecutor(max_workers=int(spec["concurrency"]), thread_name_prefix="naive") as pool:
        results = list(pool.map(call, tasks))
    wall = time.perf_counter() - started
    session.close()
    rows = [row for chunk in results for row in chunk]
    frame = pl.DataFrame(
        rows,
        schema={k: (pl.Datetime("us", "UTC") if k == "timestamp" else v) for k, v in POINT_SCHEMA.items()},
        orient="row",
    )
    frame.write_parquet(spec["points_out"])
    return {
        "wall_s": wall,
        "calls": len(tasks),
        "points": frame.height,
        "accounts": len(spec["accounts"]),
        "days": len(days),
        "families": len(queries),
    }


if __name__ == "__main__":
    worker_main(run)
