"""THE Azure Monitor metrics reader: batch (`metrics:getBatch`) and per-resource queries, one parser from
the wire JSON to typed results, and one rule for refusals.

Both APIs are read as raw JSON: the SDK's batch result models drop `resourceid` and the per-metric
`errorCode` that Azure reports inside 200 answers. Batch calls go through `MetricsClient.send_request`
(the client's auth, retry and transport); per-resource calls through azure-mgmt-monitor's `metrics.list`
with the raw body handed back.

Refusals: getBatch answers 401 when the principal lacks Monitoring Reader at subscription scope, and a 401
whose code says the token itself was bad (expired, invalid) is a token problem, not a missing role. A call
whose answer is partial (the connection dropped mid-answer, a token refused, per-metric errors, resources
or metrics missing) is repeated: the query only reads, so repeating is safe.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import ServiceResponseError
from azure.core.rest import HttpRequest

from ..core.clock import format_utc
from ..core.metrics import NAMESPACE
from ..core.problems import AzureError, ExtractionError, ProblemCode
from ..core.scope import Account
from .errors import TOKEN_ERROR_CODES, azure_errors, malformed_answer, one_line, wire_error_code
from .session import AzureSession

BATCH_API_VERSION = "2024-02-01"
METRICS_PATH = "/providers/Microsoft.Insights/metrics/"
PARTIAL_ATTEMPTS = 3
PARTIAL_BACKOFF_SECONDS = 0.5


def quote_filter_value(value: str) -> str:
    """OData string literal: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class MetricQuery:
    """Metrics of one family, split by dimensions (`Dim eq '*'`), optionally pinned to one deployment."""

    metric_names: tuple[str, ...]
    split: tuple[str, ...] = ()
    deployment: str | None = None
    top: int = 1000
    aggregation: str = "Total"  # "Average,Maximum" for percentages; series are ordered by the first

    @property
    def order_by(self) -> str:
        return f"{self.aggregation.split(',')[0]} desc"

    def filter(self) -> str | None:
        clauses = [f"{dim} eq {quote_filter_value(self.deployment)}"
                   if dim == "ModelDeploymentName" and self.deployment is not None else f"{dim} eq '*'"
                   for dim in self.split]
        return " and ".join(clauses) or None


@dataclass(frozen=True)
class TimeWindow:
    """[start, end) with buckets of `interval`; start at 00:00Z for daily totals (Azure aligns buckets to it)."""

    start: datetime
    end: datetime
    interval: str = "P1D"

    @property
    def timespan(self) -> str:
        return f"{format_utc(self.start)}/{format_utc(self.end)}"


@dataclass(frozen=True)
class Series:
    dimensions: dict[str, str]  # dimension name (lower-cased, as Azure returns it) -> value as reported
    timestamps: list[str]  # bucket starts, "...Z"
    totals: list[float | None]  # None for an empty bucket (it carries only its timestamp)
    averages: list[float | None] = field(default_factory=list)  # filled for Average queries
    maximums: list[float | None] = field(default_factory=list)  # filled for Maximum queries


@dataclass(frozen=True)
class MetricResult:
    resource_id: str
    metric: str
    error_code: str  # "Success" or Azure's per-metric errorCode
    error_message: str | None
    series: list[Series]

    @property
    def ok(self) -> bool:
        return self.error_code == "Success"


class BatchRefused(Exception):
    """getBatch refused the call (401/403). `token_problem`: Azure blamed the token, not the role."""

    def __init__(self, status: int, code: str | None, message: str):
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"HTTP {status} {code or 'no code'}: {message}")

    @property
    def token_problem(self) -> bool:
        return self.code in TOKEN_ERROR_CODES


def resource_id_of(metric_id: str) -> str:
    """Recovers the resource id from a metric id: everything before /providers/Microsoft.Insights/metrics/."""
    index = metric_id.lower().rfind(METRICS_PATH.lower())
    return metric_id[:index] if index >= 0 else metric_id


def parse_metric(resource_id: str | None, metric: dict[str, Any]) -> MetricResult:
    """One metric of a metrics answer (either API) as a typed result."""
    series = []
    for ts in metric.get("timeseries") or ():
        data = ts.get("data") or ()
        series.append(Series({md["name"]["value"].lower(): md["value"] for md in ts.get("metadatavalues") or ()},
                             [p["timeStamp"] for p in data], [p.get("total") for p in data],
                             [p.get("average") for p in data], [p.get("maximum") for p in data]))
    return MetricResult(resource_id or resource_id_of(metric["id"]), metric["name"]["value"],
                        metric.get("errorCode") or "Success", metric.get("errorMessage"), series)


def parse_batch_answer(body: dict[str, Any]) -> list[MetricResult]:
    return [parse_metric(item.get("resourceid"), metric)
            for item in body.get("values", []) for metric in item.get("value", [])]


def _is_malformed(exc: AzureError) -> bool:
    return exc.problem.code is ProblemCode.MALFORMED_ANSWER


def read_answer(call: str, status: int, text: str, parse: Any) -> list[MetricResult]:
    """Parses an answer's JSON with `parse`; anything that is not the documented shape (not JSON, truncated, a
    string, a metric without a name) raises AzureError(MALFORMED_ANSWER) naming the call, status and body."""
    try:
        body = json.loads(text)
        if isinstance(body, str):  # the SDK notes Azure sometimes sends the body as a JSON string
            body = json.loads(body)
    except ValueError:
        raise AzureError(malformed_answer(call, status, text, "a body that is not JSON")) from None
    try:
        results: list[MetricResult] = parse(body)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise AzureError(malformed_answer(call, status, text, "JSON that is not a metrics answer")) from None
    return results


class MetricsReader:
    """Reads metrics for one session; `calls` counts every call made, by kind ("batch" / "per_resource")."""

    def __init__(self, session: AzureSession):
        self.session = session
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    # ---- batch ---------------------------------------------------------------------------------------------
    def batch(self, subscription: str, region: str, query: MetricQuery, resource_ids: list[str],
              window: TimeWindow) -> list[MetricResult]:
        """A getBatch call, repeated while its answer is partial. Persistent per-metric errors are returned
        (the caller reports them); resources or metrics still missing raise ExtractionError."""
        expected = {(rid.lower(), metric.lower()) for rid in resource_ids for metric in query.metric_names}
        for attempt in range(1, PARTIAL_ATTEMPTS + 1):
            try:
                results = self._batch_once(subscription, region, query, resource_ids, window)
            except ServiceResponseError as exc:  # the connection dropped mid-answer
                if attempt == PARTIAL_ATTEMPTS:
                    raise ExtractionError(f"batch metrics query for subscription {subscription}, region {region} "
                                          f"failed {attempt} times: {one_line(str(exc))}") from exc
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
                continue
            except AzureError as exc:
                if not _is_malformed(exc):
                    raise
                if attempt == PARTIAL_ATTEMPTS:
                    raise ExtractionError(f"batch metrics query for subscription {subscription}, region {region} "
                                          f"failed {attempt} times: {exc.problem.cause}") from None
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)  # a mangled answer: ask again
                continue
            except BatchRefused as refused:
                if not refused.token_problem:
                    raise
                if attempt == PARTIAL_ATTEMPTS:
                    raise ExtractionError(f"batch metrics query for subscription {subscription}, region {region} "
                                          f"failed {attempt} times: {refused}") from refused
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)  # a token problem (e.g. clock skew): ask again
                continue
            missing = expected - {(r.resource_id.lower(), r.metric.lower()) for r in results}
            if not missing and all(r.ok for r in results):
                return results
            if attempt < PARTIAL_ATTEMPTS:
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
                continue
            if missing:
                raise ExtractionError(f"batch metrics answer for subscription {subscription}, region {region} "
                                      f"still lacks {len(missing)} (resource, metric) pair(s) after {attempt} tries, "
                                      f"e.g. {sorted(missing)[0]}")
            return results
        raise AssertionError("unreachable")

    def _batch_once(self, subscription: str, region: str, query: MetricQuery, resource_ids: list[str],
                    window: TimeWindow) -> list[MetricResult]:
        params = {
            "api-version": BATCH_API_VERSION, "metricnamespace": NAMESPACE, "metricnames": ",".join(query.metric_names),
            "starttime": format_utc(window.start), "endtime": format_utc(window.end), "interval": window.interval,
            "aggregation": query.aggregation.lower(), "top": str(query.top), "orderby": query.order_by.lower(),
        }
        filter_ = query.filter()
        if filter_:
            params["filter"] = filter_
        request = HttpRequest("POST", f"/subscriptions/{subscription}/metrics:getBatch", params=params,
                              json={"resourceids": resource_ids})
        self._count("batch")
        with azure_errors(keep=(ServiceResponseError,)):  # a dropped answer is repeated by `batch`
            response = self.session.metrics(region).send_request(request)
            if response.status_code in (401, 403):
                text = response.text()
                raise BatchRefused(response.status_code, wire_error_code(text), one_line(text, 300))
            response.raise_for_status()
            text = response.text()
        return read_answer(f"metrics batch API (getBatch, subscription {subscription}, region {region})",
                           response.status_code, text, parse_batch_answer)

    # ---- per resource --------------------------------------------------------------------------------------
    def per_resource(self, account: Account, query: MetricQuery, window: TimeWindow) -> list[MetricResult]:
        """A per-resource call (GET: azure-core retries dropped connections), repeated on per-metric errors."""
        for attempt in range(1, PARTIAL_ATTEMPTS + 1):
            try:
                results = self._per_resource_once(account, query, window)
            except AzureError as exc:
                if not _is_malformed(exc) or attempt == PARTIAL_ATTEMPTS:
                    raise
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)  # a mangled answer: ask again
                continue
            if attempt == PARTIAL_ATTEMPTS or all(r.ok for r in results):
                return results
            time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
        raise AssertionError("unreachable")

    def _per_resource_once(self, account: Account, query: MetricQuery, window: TimeWindow) -> list[MetricResult]:
        self._count("per_resource")
        with azure_errors():
            answer: Any = self.session.monitor(account.subscription_id).metrics.list(
                account.resource_id, timespan=window.timespan, interval=window.interval,
                metricnames=",".join(query.metric_names), aggregation=query.aggregation, top=query.top,
                orderby=query.order_by,
                filter=query.filter(), metricnamespace=NAMESPACE,
                cls=lambda pipeline_response, _deserialized, _headers: pipeline_response.http_response)
        return read_answer(f"per-resource metrics API (GET {account.resource_id}/providers/Microsoft.Insights/"
                           "metrics)", answer.status_code, answer.text(),
                           lambda answer: [parse_metric(account.resource_id, metric)
                                           for metric in answer.get("value") or ()])

