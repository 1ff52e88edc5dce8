"""Extraction of daily token and request metric points for a range of UTC days.

Cost model (what the API allows): one `metrics:getBatch` call per (subscription, region, family query)
and chunk of at most 50 accounts, covering the whole range with P1D buckets aligned to 00:00Z, whatever
the number of days. When a subscription refuses the batch API (401: the principal lacks Monitoring Reader
at subscription scope), that subscription falls back to the per-resource ARM API for the rest of the
sync: decided once, by the first batch call made for the subscription.

Batch calls go through `MetricsClient.send_request` (the client's auth, retry and transport) and read the
raw JSON, because the SDK's result models drop both `resourceid` and the per-metric `errorCode` that
Azure reports inside 200 responses.
"""

from __future__ import annotations

import threading
import time as _time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceResponseError
from azure.core.rest import HttpRequest

from .definitions import METRIC_FAMILY, NAMESPACE, AccountPlan, FamilyQuery
from .errors import classify
from .session import AzureSession

BATCH_API_VERSION = "2024-02-01"
BATCH_MAX_RESOURCES = 50
RETENTION_DAYS = 93
PARTIAL_ATTEMPTS = 3
PARTIAL_BACKOFF_SECONDS = 0.5
MAX_LISTING_TOP = 100_000
METRICS_PATH = "/providers/Microsoft.Insights/metrics/"

POINT_SCHEMA = {
    "resource_id": pl.String,
    "family": pl.String,
    "metric": pl.String,
    "deployment": pl.String,
    "model_name": pl.String,
    "model_version": pl.String,
    "metric_region": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),
    "total": pl.Float64,
}
_DIMENSION_COLUMNS = {"modeldeploymentname": "deployment", "modelname": "model_name",
                      "modelversion": "model_version", "region": "metric_region"}


@dataclass(frozen=True)
class SyncEvent:
    level: str  # INFO | WARN | ERROR
    code: str
    message: str
    resource_id: str | None = None


@dataclass
class Extraction:
    points: pl.DataFrame
    events: list[SyncEvent] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # resource id -> reason
    truncated: list[str] = field(default_factory=list)  # "resource_id metric" that stayed truncated
    metric_errors: dict[str, str] = field(default_factory=dict)  # resource id -> persistent per-metric error
    paths: dict[str, str] = field(default_factory=dict)  # subscription -> batch | per_resource
    calls: Counter = field(default_factory=Counter)
    synced_days: list[date] = field(default_factory=list)
    skipped_days: list[date] = field(default_factory=list)


@dataclass
class _MetricResult:
    resource_id: str
    metric: str
    error_code: str
    error_message: str | None
    # (dimension name (lower-cased) -> value, ([bucket timestamps "...Z"], [totals, None for empty buckets]))
    series: list[tuple[dict[str, str], tuple[list[str], list[float | None]]]]


class ExtractionError(RuntimeError):
    """A query failed after retries; nothing from this sync may be landed."""


TOKEN_ERRORS = ("ExpiredAuthenticationToken", "InvalidAuthenticationToken", "AuthenticationFailed")


def _error_code(response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error", body) if isinstance(body, dict) else {}
    return error.get("code") if isinstance(error, dict) else None


class _TokenRejected(Exception):
    """The batch API refused the access token itself (expired or invalid), not the principal's role."""


class _BatchRefused(Exception):
    """getBatch answered 401: the principal lacks Monitoring Reader at subscription scope."""


def oldest_syncable_day(now: datetime) -> date:
    """The oldest UTC day fully inside Azure Monitor's 93-day retention."""
    return (now - timedelta(days=RETENTION_DAYS)).date() + timedelta(days=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource_id_of(metric_id: str) -> str:
    """Recovers the resource id from a metric id: everything before /providers/Microsoft.Insights/metrics/."""
    index = metric_id.lower().rfind(METRICS_PATH.lower())
    return metric_id[:index] if index >= 0 else metric_id


class _Extractor:
    def __init__(self, session: AzureSession, plans: list[AccountPlan], start: datetime, end: datetime, top: int,
                 concurrency: int):
        self.session = session
        self.plans = {p.account.resource_id.lower(): p for p in plans}
        self.start, self.end = start, end
        self.top = top
        self.concurrency = concurrency
        self.result = Extraction(points=pl.DataFrame(schema=POINT_SCHEMA))
        self.frames: list[pl.DataFrame] = []
        self.lock = threading.Lock()

    # ---- calls -------------------------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        with self.lock:
            self.result.calls[kind] += 1

    def _batch(self, subscription: str, region: str, query: FamilyQuery, resource_ids: list[str],
               deployment: str | None = None, split: tuple[str, ...] | None = None,
               top: int | None = None) -> list[_MetricResult]:
        """A batch call, repeated when the answer is partial: per-metric errors, resources or metrics
        missing, or the connection dropped mid-response (the query only reads, so repeating is safe)."""
        expected = {(rid.lower(), metric.lower()) for rid in resource_ids for metric in query.metric_names}
        for attempt in range(1, PARTIAL_ATTEMPTS + 1):
            try:
                results = self._batch_once(subscription, region, query, resource_ids, deployment, split, top)
            except (ServiceResponseError, _TokenRejected) as exc:
                if attempt == PARTIAL_ATTEMPTS:
                    raise ExtractionError(f"batch metrics query for subscription {subscription}, region {region} "
                                          f"failed {attempt} times: {exc}") from exc
                _time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
                continue
            missing = expected - {(r.resource_id.lower(), r.metric.lower()) for r in results}
            failed = [r for r in results if r.error_code != "Success"]
            if not missing and not failed:
                return results
            if attempt < PARTIAL_ATTEMPTS:
                _time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
                continue
            if missing:
                raise ExtractionError(f"batch metrics answer for subscription {subscription}, region {region} "
                                      f"still lacks {len(missing)} (resource, metric) pair(s) after {attempt} tries, "
                                      f"e.g. {sorted(missing)[0]}")
            return results  # persistent per-metric errors: reported by _accept
        raise AssertionError("unreachable")

    def _batch_once(self, subscription: str, region: str, query: FamilyQuery, resource_ids: list[str],
                    deployment: str | None, split: tuple[str, ...] | None, top: int | None) -> list[_MetricResult]:
        query = FamilyQuery(query.family, query.metric_names, split) if split is not None else query
        params = {
            "api-version": BATCH_API_VERSION, "metricnamespace": NAMESPACE, "metricnames": ",".join(query.metric_names),
            "starttime": _iso(self.start), "endtime": _iso(self.end), "interval": "P1D", "aggregation": "total",
            "top": str(top or self.top), "orderby": "total desc",
        }
        if query.split_dimensions:
            params["filter"] = query.filter(deployment)
        request = HttpRequest("POST", f"/subscriptions/{subscription}/metrics:getBatch", params=params,
                              json={"resourceids": resource_ids})
        self._count("batch")
        response = self.session.metrics(region).send_request(request)
        if response.status_code == 401:
            code = _error_code(response)
            if code in TOKEN_ERRORS:
                # A token problem (expired, e.g. after clock skew) is not a missing role: ask again.
                raise _TokenRejected(f"{code}: {response.text()[:200]}")
            raise _BatchRefused(response.text()[:300])
        response.raise_for_status()
        body = response.json()
        results = []
        for item in body.get("values", []):
            for metric in item.get("value", []):
                rid = item.get("resourceid") or resource_id_of(metric["id"])
                series = []
                for ts in metric.get("timeseries") or ():
                    data = ts.get("data") or ()
                    series.append(({md["name"]["value"].lower(): md["value"] for md in ts.get("metadatavalues") or ()},
                                   ([p["timeStamp"] for p in data], [p.get("total") for p in data])))
                results.append(_MetricResult(rid, metric["name"]["value"], metric.get("errorCode") or "Success",
                                             metric.get("errorMessage"), series))
        return results

    def _per_resource(self, resource_id: str, query: FamilyQuery, deployment: str | None = None,
                      split: tuple[str, ...] | None = None, top: int | None = None) -> list[_MetricResult]:
        """A per-resource call (GET: azure-core retries dropped connections), repeated on per-metric errors."""
        for attempt in range(1, PARTIAL_ATTEMPTS + 1):
            results = self._per_resource_once(resource_id, query, deployment, split, top)
            if attempt == PARTIAL_ATTEMPTS or all(r.error_code == "Success" for r in results):
                return results
            _time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
        raise AssertionError("unreachable")

    def _per_resource_once(self, resource_id: str, query: FamilyQuery, deployment: str | None,
                           split: tuple[str, ...] | None, top: int | None) -> list[_MetricResult]:
        query = FamilyQuery(query.family, query.metric_names, split) if split is not None else query
        plan = self.plans[resource_id.lower()]
        self._count("per_resource")
        response = self.session.monitor(plan.account.subscription_id).metrics.list(
            resource_id, timespan=f"{_iso(self.start)}/{_iso(self.end)}", interval="P1D",
            metricnames=",".join(query.metric_names), aggregation="Total", top=top or self.top, orderby="Total desc",
            filter=query.filter(deployment) if query.split_dimensions else None, metricnamespace=NAMESPACE)
        results = []
        for metric in response.value or ():
            series = [
                ({md.name.value.lower(): md.value for md in ts.metadatavalues or ()},
                 ([_iso(p.time_stamp) for p in ts.data or ()], [p.total for p in ts.data or ()]))
                for ts in metric.timeseries or ()
            ]
            results.append(_MetricResult(resource_id, metric.name.value, metric.error_code or "Success",
                                         metric.error_message, series))
        return results

    # ---- results -----------------------------------------------------------------------------------------
    def _event(self, level: str, code: str, message: str, resource_id: str | None = None) -> None:
        with self.lock:
            self.result.events.append(SyncEvent(level, code, message, resource_id))

    def _frame(self, results: list[_MetricResult]) -> pl.DataFrame:
        """One row per series with list columns, exploded to points by polars: per-point work stays native."""
        columns: dict[str, list] = {name: [] for name in POINT_SCHEMA}
        for result in results:
            family = METRIC_FAMILY.get(result.metric.lower())
            for dims, (stamps, totals) in result.series:
                columns["resource_id"].append(result.resource_id)
                columns["family"].append(family)
                columns["metric"].append(result.metric)
                for dim, column in _DIMENSION_COLUMNS.items():
                    columns[column].append(dims.get(dim))
                columns["timestamp"].append(stamps)
                columns["total"].append(totals)
        schema = {**POINT_SCHEMA, "timestamp": pl.List(pl.String), "total": pl.List(pl.Float64)}
        return (
            pl.DataFrame(columns, schema=schema, strict=False)
            .explode(["timestamp", "total"])
            .drop_nulls("total")  # an empty bucket carries only its timestamp
            .with_columns(pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us"))
            .select(list(POINT_SCHEMA))
        )

    def _accept(self, results: list[_MetricResult]) -> list[tuple[str, str]]:
        """Keeps good results; returns the (resource id, metric) pairs that hit `top` (possibly truncated)."""
        good, truncated = [], []
        for result in results:
            if result.error_code != "Success":
                message = f"{result.metric}: {result.error_code}: {result.error_message or 'no message'}"
                with self.lock:
                    self.result.metric_errors[result.resource_id] = message
                self._event("WARN", "metric_error", f"Azure kept answering an error for this metric; its usage is "
                            f"missing from this sync: {message}", result.resource_id)
                continue
            if len(result.series) >= self.top:
                truncated.append((result.resource_id, result.metric))
            good.append(result)
        # A truncated account is re-queried whole (every metric of the family), so none of its results stay.
        truncated_accounts = {rid.lower() for rid, _ in truncated}
        frame = self._frame([r for r in good if r.resource_id.lower() not in truncated_accounts])
        with self.lock:
            self.frames.append(frame)
        return truncated

    # ---- truncation ----------------------------------------------------------------------------------------
    def _narrow(self, resource_id: str, query: FamilyQuery, use_batch: bool) -> None:
        """Re-queries one account deployment by deployment, so no split result can hit `top` unseen."""
        plan = self.plans[resource_id.lower()]
        account = plan.account

        def call(deployment=None, split=None, top=None):
            if use_batch:
                return self._batch(account.subscription_id, account.location, query, [account.resource_id],
                                   deployment, split, top)
            return self._per_resource(account.resource_id, query, deployment, split, top)

        # List the deployments (one series each), raising top for this cheap listing until it is complete.
        listing_top = self.top
        while True:
            listing = call(split=("ModelDeploymentName",), top=listing_top)
            if not any(len(r.series) >= listing_top for r in listing):
                break
            if listing_top >= MAX_LISTING_TOP:
                self._truncated(resource_id, query, f"more than {MAX_LISTING_TOP} deployments")
                return
            listing_top = min(listing_top * 10, MAX_LISTING_TOP)
        names = sorted({dims.get("modeldeploymentname", "") for r in listing for dims, _ in r.series})
        for name in names:
            results = call(deployment=name)
            still = [r.metric for r in results if r.error_code == "Success" and len(r.series) >= self.top]
            if still:
                self._truncated(resource_id, query, f"deployment {name!r} alone has top={self.top} series")
            self._accept([r for r in results if r.metric not in still])

    def _truncated(self, resource_id: str, query: FamilyQuery, why: str) -> None:
        with self.lock:
            self.result.truncated.append(f"{resource_id} {query.family}")
        self._event("ERROR", "truncated", f"{query.family} metrics still reach top after narrowing ({why}); raise "
                    "settings.top", resource_id)

    # ---- orchestration -------------------------------------------------------------------------------------
    def _run_chunk(self, subscription: str, region: str, query: FamilyQuery, ids: list[str]) -> None:
        if self.result.paths.get(subscription) == "per_resource":
            for rid in ids:
                self._run_resource(rid, query)
            return
        try:
            results = self._batch(subscription, region, query, ids)
        except _BatchRefused:
            with self.lock:
                first = self.result.paths.get(subscription) != "per_resource"
                self.result.paths[subscription] = "per_resource"
            if first:
                self._event("INFO", "batch_not_allowed", f"subscription {subscription}: the batch metrics API needs "
                            "Monitoring Reader at subscription scope; using the per-resource API (slower, more calls)")
            for rid in ids:
                self._run_resource(rid, query)
            return
        except HttpResponseError as exc:
            # Retries are exhausted: fail the sync rather than land a day with accounts missing.
            raise ExtractionError(f"batch metrics query failed for subscription {subscription}, region {region}: "
                                  f"{classify(exc)}") from exc
        with self.lock:
            self.result.paths.setdefault(subscription, "batch")
        for rid in sorted({rid.lower() for rid, _ in self._accept(results)}):
            self._narrow(self.plans[rid].account.resource_id, query, use_batch=True)

    def _run_resource(self, resource_id: str, query: FamilyQuery) -> None:
        try:
            results = self._per_resource(resource_id, query)
        except (HttpResponseError, ClientAuthenticationError) as exc:
            problem = classify(exc)
            if problem.code not in ("missing_role", "not_found"):
                raise ExtractionError(f"metrics query failed for {resource_id}: {problem}") from exc
            with self.lock:
                self.result.unreadable[resource_id] = problem.detail
            self._event("WARN", "account_unreadable", f"cannot read metrics: {problem}", resource_id)
            return
        if self._accept(results):
            self._narrow(resource_id, query, use_batch=False)

    def _chunks(self) -> dict[str, list[tuple[str, FamilyQuery, list[str]]]]:
        """Chunks of ≤50 accounts sharing subscription, region and family query, grouped by subscription."""
        groups: dict[tuple, list[str]] = defaultdict(list)
        for plan in self.plans.values():
            for query in plan.queries:
                groups[(plan.account.subscription_id, plan.account.location, query)].append(plan.account.resource_id)
        by_subscription: dict[str, list] = defaultdict(list)
        for (subscription, region, query), ids in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                          kv[0][2].family)):
            ids.sort(key=str.lower)
            for i in range(0, len(ids), BATCH_MAX_RESOURCES):
                by_subscription[subscription].append((region, query, ids[i:i + BATCH_MAX_RESOURCES]))
        return by_subscription

    def run(self) -> Extraction:
        chunks = self._chunks()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="doow-extract") as pool:
            # The first chunk of each subscription decides its path (batch or per-resource) for the whole sync.
            probes = [pool.submit(self._run_chunk, sub, *items[0]) for sub, items in chunks.items()]
            for future in probes:
                future.result()
            rest = [pool.submit(self._run_chunk, sub, *chunk) for sub, items in chunks.items() for chunk in items[1:]]
            for future in rest:
                future.result()
        frames = [f for f in self.frames if f.height]
        # Unsorted (threads finish in any order): landing sorts each day, far cheaper than one global sort.
        self.result.points = pl.concat(frames) if frames else pl.DataFrame(schema=POINT_SCHEMA)
        return self.result


def extract_usage(session: AzureSession, plans: list[AccountPlan], first_day: date, last_day: date, *, now: datetime,
                  top: int = 1000, concurrency: int = 4) -> Extraction:
    """Daily metric points for the accounts in `plans`, for UTC days first_day..last_day (inclusive).

    Days older than the retention window are skipped with one WARN event; days after `now` hold no data.
    """
    oldest = oldest_syncable_day(now)
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    synced = [d for d in days if oldest <= d <= now.date()]
    skipped = [d for d in days if d < oldest]
    if not synced:
        result = Extraction(points=pl.DataFrame(schema=POINT_SCHEMA), synced_days=[], skipped_days=skipped)
    else:
        start = datetime.combine(synced[0], time(0), tzinfo=timezone.utc)
        end = min(datetime.combine(synced[-1] + timedelta(days=1), time(0), tzinfo=timezone.utc),
                  now.replace(second=0, microsecond=0))
        result = _Extractor(session, plans, start, end, top, concurrency).run()
        result.synced_days, result.skipped_days = synced, skipped
    if skipped:
        result.events.insert(0, SyncEvent(
            "WARN", "retention_exceeded",
            f"{len(skipped)} day(s) from {skipped[0]} to {skipped[-1]} are older than Azure Monitor's "
            f"{RETENTION_DAYS}-day metric retention and cannot be synced; "
            + (f"synced {synced[0]} to {synced[-1]}." if synced else "nothing left to sync.")))
    return result
