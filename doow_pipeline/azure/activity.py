"""Extraction of deployment activity beyond tokens (issue 13): requests by status code, spillover and service
tier (P1D totals), and provisioned (PTU) utilisation (PT1H Average and Maximum).

Same cost model as the token extraction (extract.py): one call per (subscription, region, metric group, family)
and chunk of at most 50 accounts, over the whole range; the subscription's path (batch or per-resource) is the
one the token extraction chose. Extra calls per sync: one per chunk and family for the request splits, and one
per chunk and family for utilisation where an account defines it. A result that reaches `top` is re-queried
deployment by deployment (the deployments named in the result), and reported when it still reaches it.

As for tokens (extract.py), each answer's rows go to a sink as they arrive when one is given (the sync stages
them in the landing zone); without one they are collected into `requests` and `utilization`.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from ..core.clock import day_start, days_between
from ..core.events import Level, SyncEvent
from ..core.metrics import (
    REQUEST_POINT_SCHEMA,
    UTILIZATION_POINT_SCHEMA,
    oldest_syncable_day,
)
from ..core.problems import UNREADABLE_CODES, AzureError, ExtractionError, ProblemCode
from ..core.workers import worker_pool
from .extract import BATCH_MAX_RESOURCES, CONVERSION_SLOTS, MetricsPath
from .metric_definitions import AccountPlan, ActivityKind, ActivityQuery
from .metrics_api import AnswerSlots, MetricResult, MetricsReader, TimeWindow, rows_of

# Takes one answer's rows of an ActivityKind (REQUEST_POINT_SCHEMA or UTILIZATION_POINT_SCHEMA); thread-safe.
ActivitySink = Callable[[str, pl.DataFrame], None]


@dataclass
class ActivityExtraction:
    requests: pl.DataFrame  # every request point, when extracted without a sink; empty when they went to it
    utilization: pl.DataFrame  # likewise for utilisation points
    events: list[SyncEvent] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)  # ActivityKind -> rows answered


def _frame(results: list[MetricResult], query: ActivityQuery) -> pl.DataFrame:
    """The results' points in the schema of the query's kind, in the results' order."""
    utilization = query.kind == ActivityKind.UTILIZATION
    schema = UTILIZATION_POINT_SCHEMA if utilization else REQUEST_POINT_SCHEMA
    return (
        rows_of(results)
        .drop_nulls("average" if utilization else "total")  # an empty bucket carries only its timestamp
        .with_columns(
            pl.lit(str(query.family), dtype=pl.String).alias("family"),
            pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us"),
        )
        .select(list(schema))
    )


class _ActivityExtractor:
    def __init__(
        self,
        reader: MetricsReader,
        plans: list[AccountPlan],
        start: datetime,
        end: datetime,
        top: int,
        concurrency: int,
        paths: dict[str, str],
        sink: ActivitySink | None,
    ):
        self.reader = reader
        self.sink = sink
        # Handed to the reader with each batch call (see extract._Extractor): taken before decoding, given back once
        # staged.
        self.slots = AnswerSlots(CONVERSION_SLOTS)
        self.plans = {p.account.resource_id.lower(): p for p in plans}
        self.start, self.end = start, end
        self.top = top
        self.concurrency = concurrency
        self.paths = paths
        self.result = ActivityExtraction(
            pl.DataFrame(schema=REQUEST_POINT_SCHEMA), pl.DataFrame(schema=UTILIZATION_POINT_SCHEMA)
        )
        self.frames: dict[str, list[pl.DataFrame]] = {ActivityKind.REQUESTS: [], ActivityKind.UTILIZATION: []}
        self.lock = threading.Lock()

    def _call(self, ids: list[str], query: ActivityQuery, deployment: str | None = None) -> list[MetricResult]:
        account = self.plans[ids[0].lower()].account
        window = TimeWindow(self.start, self.end, query.interval)
        metric_query = query.metric_query(self.top, deployment=deployment)
        if self.paths.get(account.subscription_id) == MetricsPath.PER_RESOURCE:
            return self.reader.per_resource(account, metric_query, window)
        return self.reader.batch(account.subscription_id, account.location, metric_query, ids, window, self.slots)

    def _keep(self, results: list[MetricResult], query: ActivityQuery) -> list[str]:
        """Keeps good results; returns the resource ids whose result reached `top`."""
        good, truncated = [], []
        for result in results:
            if not result.ok:
                self._event(
                    Level.WARN,
                    ProblemCode.METRIC_ERROR,
                    f"{result.metric}: {result.error_code}: "
                    f"{result.error_message or 'no message'}; this signal is missing from this sync",
                    result.resource_id,
                )
            elif len(result.series) >= self.top:
                truncated.append(result.resource_id)
            else:
                good.append(result)
        # Held already when the reader decoded these results; per-resource answers take it here.
        with self.slots.held():
            frame = _frame(good, query)
            if frame.height and self.sink is not None:
                self.sink(query.kind, frame)  # outside the lock: staging writes files
            with self.lock:
                self.result.rows[query.kind] += frame.height
                if self.sink is None:
                    self.frames[query.kind].append(frame)
        return truncated

    def _event(self, level: Level, code: ProblemCode, message: str, resource_id: str | None = None) -> None:
        with self.lock:
            self.result.events.append(SyncEvent(level, code, message, resource_id))

    def _narrow(self, result_ids: list[str], results: list[MetricResult], query: ActivityQuery) -> None:
        for resource_id in result_ids:
            names = sorted(
                {
                    s.dimensions.get("modeldeploymentname", "")
                    for r in results
                    if r.resource_id.lower() == resource_id.lower()
                    for s in r.series
                }
            )
            for name in names:
                still = self._keep(self._call([resource_id], query, deployment=name), query)
                if still:
                    with self.lock:
                        self.result.truncated.append(f"{resource_id} {query.metric}")
                    self._event(
                        Level.ERROR,
                        ProblemCode.TRUNCATED,
                        f"{query.metric} still reaches top for deployment {name!r} after narrowing; raise settings.top",
                        resource_id,
                    )

    def _run_chunk(self, query: ActivityQuery, ids: list[str]) -> None:
        account = self.plans[ids[0].lower()].account
        per_resource = self.paths.get(account.subscription_id) == MetricsPath.PER_RESOURCE
        groups = [[rid] for rid in ids] if per_resource else [ids]
        for group in groups:
            try:
                results = self._call(group, query)
            except AzureError as exc:
                if per_resource and exc.problem.code in UNREADABLE_CODES:
                    continue  # the token extraction already reported this account as unreadable
                raise ExtractionError(
                    f"{query.metric} query failed for {group[0]}"
                    f"{' and others' if len(group) > 1 else ''}: {exc.problem}"
                ) from exc
            truncated = self._keep(results, query)
            if truncated:
                self._narrow(truncated, results, query)

    def _chunk_task(self, query: ActivityQuery, ids: list[str]) -> None:
        try:
            self._run_chunk(query, ids)
        finally:
            self.slots.release()  # a chunk that failed between decoding and _keep still gives its slot back

    def run(self) -> ActivityExtraction:
        calls_before = Counter(self.reader.calls)
        groups: dict[tuple[str, str, ActivityQuery], list[str]] = defaultdict(list)
        for plan in self.plans.values():
            for query in plan.activity:
                groups[(plan.account.subscription_id, plan.account.location, query)].append(plan.account.resource_id)
        chunks = []
        for (_sub, _region, query), ids in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].kind, kv[0][2].family)
        ):
            ids.sort(key=str.lower)
            chunks += [(query, ids[i : i + BATCH_MAX_RESOURCES]) for i in range(0, len(ids), BATCH_MAX_RESOURCES)]
        with worker_pool(self.concurrency, "doow-activity") as pool:
            for future in [pool.submit(self._chunk_task, query, ids) for query, ids in chunks]:
                future.result()
        self.result.calls = self.reader.calls - calls_before
        for kind, attribute in ((ActivityKind.REQUESTS, "requests"), (ActivityKind.UTILIZATION, "utilization")):
            frames = [f for f in self.frames[kind] if f.height]
            if frames:
                setattr(self.result, attribute, pl.concat(frames))
        return self.result


def extract_activity(
    reader: MetricsReader,
    plans: list[AccountPlan],
    first_day: date,
    last_day: date,
    *,
    now: datetime,
    paths: dict[str, str],
    top: int = 1000,
    concurrency: int = 4,
    sink: ActivitySink | None = None,
) -> ActivityExtraction:
    """Request splits and PTU utilisation for the planned accounts and the syncable days of the range; with a
    `sink`, each answer's rows go to it as they arrive (at most `concurrency` answers in flight)."""
    oldest = oldest_syncable_day(now)
    synced = [d for d in days_between(first_day, last_day) if oldest <= d <= now.date()]
    readable = [p for p in plans if p.activity]
    if not synced or not readable:
        return ActivityExtraction(
            pl.DataFrame(schema=REQUEST_POINT_SCHEMA), pl.DataFrame(schema=UTILIZATION_POINT_SCHEMA)
        )
    end = min(day_start(synced[-1] + timedelta(days=1)), now.replace(second=0, microsecond=0))
    return _ActivityExtractor(reader, readable, day_start(synced[0]), end, top, concurrency, paths, sink).run()
