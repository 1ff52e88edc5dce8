"""Extraction planning: daily token and request metric points for a range of UTC days.

Cost model (what the API allows): one `metrics:getBatch` call per (subscription, region, family query)
and chunk of at most 50 accounts, covering the whole range with P1D buckets aligned to 00:00Z, whatever
the number of days. When a subscription refuses the batch API (401 or 403 of any code, also with a fresh
token: typically no Monitoring Reader at subscription scope, or Microsoft.Insights not registered), that
subscription falls back to the per-resource ARM API for the rest of the sync, with an event quoting Azure's
code and message. A result that reaches `top` may be silently truncated: that account is re-queried
deployment by deployment. Days Azure still did not answer after the reader asked again (a trimmed window,
another grain, buckets left out) are ERROR events and are not landed.

Memory: each answer's screened points go to a sink as soon as they are accepted (the sync stages them in the
landing zone), so the extraction holds one answer per thread, whatever the number of accounts and days.
Without a sink they are collected into `Extraction.points` (tests, small callers).
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
from ..core.metrics import METRIC_FAMILY, POINT_SCHEMA, RETENTION_DAYS, oldest_syncable_day
from ..core.problems import UNREADABLE_CODES, AzureError, ExtractionError, ProblemCode
from ..core.workers import worker_pool
from .metric_definitions import AccountPlan, FamilyQuery
from .metrics_api import AnswerSlots, BatchRefused, MetricResult, MetricsReader, TimeWindow, rows_of

BATCH_MAX_RESOURCES = 50
MAX_LISTING_TOP = 100_000
# The largest daily total one series may carry: a quadrillion tokens or requests a day from one deployment is
# far beyond any real usage, and far inside BIGINT, so anything above it is a mangled answer.
MAX_POINT_VALUE = 1e15
# Answers decoded, turned into points and staged at a time (see AnswerSlots). Decoding and conversion hold a core
# (and mostly the GIL), so more would not be faster, only hold more answers' frames at once; the other extraction
# threads wait on Azure, or hold an answer's text in a temporary file.
CONVERSION_SLOTS = 1
# An answer's points are converted, checked and staged this many accounts at a time: one answer holds 50 accounts,
# and its points frames and screening (up to ~80 MiB above the decoded columns for a whole answer) need not all be
# alive at once. The 1,000-account backfill peaked at 343 MiB instead of 518-539 (benchmarks/README.md, "Sixth pass").
ACCOUNTS_PER_SLICE = 10
SERIES_KEY = ["resource_id", "metric", "deployment", "model_name", "model_version", "metric_region", "timestamp"]


class MetricsPath:
    BATCH = "batch"
    PER_RESOURCE = "per_resource"


PointSink = Callable[[pl.DataFrame], None]  # takes one answer's accepted points (POINT_SCHEMA); thread-safe


@dataclass
class Extraction:
    points: pl.DataFrame  # every point, when extracted without a sink; empty when they went to the sink
    points_answered: int = 0  # points accepted from the answers (before account-days refused by a later answer)
    events: list[SyncEvent] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # resource id -> reason
    truncated: list[str] = field(default_factory=list)  # "resource_id family" that stayed truncated
    metric_errors: dict[str, str] = field(default_factory=dict)  # resource id -> persistent per-metric error
    paths: dict[str, str] = field(default_factory=dict)  # subscription -> MetricsPath
    calls: Counter[str] = field(default_factory=Counter)
    synced_days: list[date] = field(default_factory=list)
    skipped_days: list[date] = field(default_factory=list)
    refused: dict[tuple[str, date], str] = field(default_factory=dict)  # (resource id, day) -> why its values
    unfetched_days: dict[date, set[str]] = field(default_factory=dict)  # day -> resource ids Azure left out


def _points_frame(results: list[MetricResult]) -> pl.DataFrame:
    """The results' token points (POINT_SCHEMA), in the results' order."""
    return (
        rows_of(results)
        .drop_nulls("total")  # an empty bucket carries only its timestamp
        .with_columns(
            pl.col("metric")
            .str.to_lowercase()
            .replace_strict(METRIC_FAMILY, default=None, return_dtype=pl.String)
            .alias("family"),
            pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us"),
        )
        .select(list(POINT_SCHEMA))
    )


def _describe(value: float) -> str:
    return repr(value) if value != value or value in (float("inf"), float("-inf")) else f"{value:g}"


@dataclass(frozen=True)
class Screened:
    """An answer's points after the value checks: what may be stored, what was refused and why."""

    points: pl.DataFrame
    refused: dict[tuple[str, date], str]  # (resource id, day) -> the first reason
    deduplicated: list[tuple[str, str, date]]  # (resource id, metric, day) with identical duplicate series


def screen_points(points: pl.DataFrame) -> Screened:
    """Values are checked before they are trusted. A negative, NaN, infinite or out-of-range total, or two
    different series for the same dimensions, refuses that account's whole day (never stored, never summed);
    identical duplicates are kept once. Other accounts and days of the answer are untouched."""
    refused: dict[tuple[str, date], str] = {}
    total = pl.col("total")
    bad = points.filter(total.is_nan() | total.is_infinite() | (total < 0) | (total > MAX_POINT_VALUE))
    for row in bad.iter_rows(named=True):
        why = (
            "not a number"
            if row["total"] != row["total"]
            else "infinite"
            if abs(row["total"]) == float("inf")
            else "negative"
            if row["total"] < 0
            else f"above {MAX_POINT_VALUE:g}"
        )
        refused.setdefault(
            (row["resource_id"], row["timestamp"].date()), f"{row['metric']} = {_describe(row['total'])} ({why})"
        )
    # Candidates by a hash of the key first (8 bytes a point; the exact check encodes whole rows), then exactly.
    candidates = points.filter(pl.struct(SERIES_KEY).hash().is_duplicated())
    duplicated = candidates.filter(pl.struct(SERIES_KEY).is_duplicated())
    deduplicated: list[tuple[str, str, date]] = []
    if duplicated.height:
        groups = duplicated.group_by(SERIES_KEY).agg(
            pl.col("total").n_unique().alias("values"), pl.col("total").first().alias("first")
        )
        for row in groups.sort(SERIES_KEY, nulls_last=True).iter_rows(named=True):
            key = (row["resource_id"], row["timestamp"].date())
            if row["values"] > 1:
                refused.setdefault(
                    key,
                    f"{row['metric']} answered twice for deployment {row['deployment']!r} "
                    "with different values (duplicate series)",
                )
            elif (row["resource_id"], row["metric"], key[1]) not in deduplicated:
                deduplicated.append((row["resource_id"], row["metric"], key[1]))
        points = points.unique(SERIES_KEY, keep="first", maintain_order=True)
    return Screened(drop_refused(points, refused), refused, deduplicated)


def drop_refused(points: pl.DataFrame, refused: dict[tuple[str, date], str]) -> pl.DataFrame:
    """`points` without the account-days some answer refused: a refused account-day is left out whole, the
    points of its other metric families (other answers) included."""
    if not refused or points.is_empty():
        return points
    keys = pl.DataFrame(
        [{"resource_id": r, "_day": d} for r, d in refused], schema={"resource_id": pl.String, "_day": pl.Date}
    )
    return (
        points.with_columns(pl.col("timestamp").dt.date().alias("_day"))
        .join(keys, on=["resource_id", "_day"], how="anti")
        .drop("_day")
    )


def _account_slices(results: list[MetricResult]) -> list[list[MetricResult]]:
    """`results` grouped by account (every result of an account in one group, as the value checks need), in
    groups of ACCOUNTS_PER_SLICE accounts."""
    by_account: dict[str, list[MetricResult]] = {}
    for result in results:
        by_account.setdefault(result.resource_id.lower(), []).append(result)
    groups = list(by_account.values())
    return [
        [r for group in groups[start : start + ACCOUNTS_PER_SLICE] for r in group]
        for start in range(0, len(groups), ACCOUNTS_PER_SLICE)
    ]


class _Collector:
    """The sink of an extraction without one: every answer's points, kept in memory."""

    def __init__(self) -> None:
        self.frames: list[pl.DataFrame] = []
        self.lock = threading.Lock()

    def __call__(self, points: pl.DataFrame) -> None:
        with self.lock:
            self.frames.append(points)

    def points(self, refused: dict[tuple[str, date], str]) -> pl.DataFrame:
        frames = [drop_refused(f, refused) for f in self.frames]
        # Unsorted (threads finish in any order): landing sorts each day, far cheaper than one global sort.
        return pl.concat(frames) if frames else pl.DataFrame(schema=POINT_SCHEMA)


class _Extractor:
    def __init__(
        self,
        reader: MetricsReader,
        plans: list[AccountPlan],
        window: TimeWindow,
        top: int,
        concurrency: int,
        sink: PointSink,
    ):
        self.reader = reader
        self.plans = {p.account.resource_id.lower(): p for p in plans}
        self.window = window
        self.top = top
        self.concurrency = concurrency
        self.sink = sink
        # Handed to the reader with each batch call: it takes a thread's slot before decoding an answer, _accept
        # gives it back once the answer's points are staged.
        self.slots = AnswerSlots(CONVERSION_SLOTS)
        self.result = Extraction(points=pl.DataFrame(schema=POINT_SCHEMA))
        self.lock = threading.Lock()

    def _event(self, level: Level, code: ProblemCode, message: str, resource_id: str | None = None) -> None:
        with self.lock:
            self.result.events.append(SyncEvent(level, code, message, resource_id))

    # ---- calls -------------------------------------------------------------------------------------------
    def _batch(
        self,
        plan_ids: list[str],
        query: FamilyQuery,
        deployment: str | None = None,
        split: tuple[str, ...] | None = None,
        top: int | None = None,
    ) -> list[MetricResult]:
        account = self.plans[plan_ids[0].lower()].account
        return self.reader.batch(
            account.subscription_id,
            account.location,
            query.metric_query(top or self.top, deployment=deployment, split=split),
            plan_ids,
            self.window,
            self.slots,
        )

    def _per_resource(
        self,
        resource_id: str,
        query: FamilyQuery,
        deployment: str | None = None,
        split: tuple[str, ...] | None = None,
        top: int | None = None,
    ) -> list[MetricResult]:
        return self.reader.per_resource(
            self.plans[resource_id.lower()].account,
            query.metric_query(top or self.top, deployment=deployment, split=split),
            self.window,
        )

    # ---- results -----------------------------------------------------------------------------------------
    def _unanswered(self, result: MetricResult) -> None:
        """Days of `result` Azure did not answer even when asked again: an ERROR event, and not landed."""
        days = sorted(
            {
                d
                for gap in result.gaps
                for d in days_between(gap.start.date(), (gap.end - timedelta(microseconds=1)).date())
            }
        )
        with self.lock:
            for day in days:
                self.result.unfetched_days.setdefault(day, set()).add(result.resource_id)
        gaps = ", ".join(str(g) for g in result.gaps)
        self._event(
            Level.ERROR,
            ProblemCode.DAYS_UNANSWERED,
            f"{result.metric}: Azure did not answer {len(days)} "
            f"day(s) ({days[0]} to {days[-1]}) of the asked window {self.window} even when asked again for "
            f"them (unanswered: {gaps}; it answered {result.answered.start}..{result.answered.end}, interval "
            f"{result.answered.interval}); these days are not landed for this connection. Re-sync them "
            "later.",
            result.resource_id,
        )

    def _accept(self, results: list[MetricResult]) -> list[tuple[str, str]]:
        """Keeps good results; returns the (resource id, metric) pairs that hit `top` (possibly truncated)."""
        good, truncated = [], []
        for result in results:
            if result.gaps:
                self._unanswered(result)
            if not result.ok:
                message = f"{result.metric}: {result.error_code}: {result.error_message or 'no message'}"
                with self.lock:
                    self.result.metric_errors[result.resource_id] = message
                self._event(
                    Level.WARN,
                    ProblemCode.METRIC_ERROR,
                    f"Azure kept answering an error for this metric; its usage is missing from this sync: {message}",
                    result.resource_id,
                )
                continue
            if len(result.series) >= self.top:
                truncated.append((result.resource_id, result.metric))
            good.append(result)
        # A truncated account is re-queried whole (every metric of the family), so none of its results stay.
        truncated_accounts = {rid.lower() for rid, _ in truncated}
        kept = [r for r in good if r.resource_id.lower() not in truncated_accounts]
        # Held already when the reader decoded these results; per-resource answers take it here.
        with self.slots.held():
            for accounts in _account_slices(kept):
                self._screen_and_stage(accounts)
        return truncated

    def _screen_and_stage(self, results: list[MetricResult]) -> None:
        """Some accounts' results, whole: their points checked (refused and duplicate values reported), the rest
        staged."""
        screened = screen_points(_points_frame(results))
        for (resource_id, day), why in screened.refused.items():
            with self.lock:
                self.result.refused.setdefault((resource_id, day), why)
                self.result.metric_errors.setdefault(resource_id, f"refused values on {day}: {why}")
            self._event(
                Level.ERROR,
                ProblemCode.BAD_VALUE,
                f"Azure answered an invalid value for account "
                f"{resource_id.rsplit('/', 1)[-1]} on {day}: {why}; that account's usage for {day} is left "
                "out of this sync (nothing of it is stored). Re-sync the day later; if it persists, report "
                "it to Azure support.",
                resource_id,
            )
        for resource_id, metric, day in screened.deduplicated:
            self._event(
                Level.WARN,
                ProblemCode.DUPLICATE_SERIES,
                f"Azure answered the same {metric} series twice "
                f"for account {resource_id.rsplit('/', 1)[-1]} on {day}; counted once.",
                resource_id,
            )
        if screened.points.height:
            self.sink(screened.points)  # outside the lock: staging writes files
            with self.lock:
                self.result.points_answered += screened.points.height

    # ---- truncation ----------------------------------------------------------------------------------------
    def _narrow(self, resource_id: str, query: FamilyQuery, use_batch: bool) -> None:
        """Re-queries one account deployment by deployment, so no split result can hit `top` unseen."""
        account = self.plans[resource_id.lower()].account

        def call(
            deployment: str | None = None, split: tuple[str, ...] | None = None, top: int | None = None
        ) -> list[MetricResult]:
            if use_batch:
                return self._batch([account.resource_id], query, deployment, split, top)
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
        names = sorted({s.dimensions.get("modeldeploymentname", "") for r in listing for s in r.series})
        for name in names:
            results = call(deployment=name)
            still = [r.metric for r in results if r.ok and len(r.series) >= self.top]
            if still:
                self._truncated(resource_id, query, f"deployment {name!r} alone has top={self.top} series")
            self._accept([r for r in results if r.metric not in still])

    def _truncated(self, resource_id: str, query: FamilyQuery, why: str) -> None:
        with self.lock:
            self.result.truncated.append(f"{resource_id} {query.family}")
        self._event(
            Level.ERROR,
            ProblemCode.TRUNCATED,
            f"{query.family} metrics still reach top after narrowing ({why}); raise settings.top",
            resource_id,
        )

    # ---- orchestration -------------------------------------------------------------------------------------
    def _run_chunk(self, subscription: str, region: str, query: FamilyQuery, ids: list[str]) -> None:
        if self.result.paths.get(subscription) == MetricsPath.PER_RESOURCE:
            for rid in ids:
                self._run_resource(rid, query)
            return
        try:
            results = self._batch(ids, query)
        except BatchRefused as refused:
            with self.lock:
                first = self.result.paths.get(subscription) != MetricsPath.PER_RESOURCE
                self.result.paths[subscription] = MetricsPath.PER_RESOURCE
            if first:
                self._event(Level.INFO, ProblemCode.BATCH_NOT_ALLOWED, batch_refused_message(subscription, refused))
            for rid in ids:
                self._run_resource(rid, query)
            return
        except AzureError as exc:
            # Retries are exhausted: fail the sync rather than land a day with accounts missing.
            raise ExtractionError(
                f"batch metrics query failed for subscription {subscription}, region {region}: {exc.problem}",
                tuple(ids),
            ) from exc
        with self.lock:
            self.result.paths.setdefault(subscription, MetricsPath.BATCH)
        for rid in sorted({rid.lower() for rid, _ in self._accept(results)}):
            self._narrow(self.plans[rid].account.resource_id, query, use_batch=True)

    def _chunk_task(self, subscription: str, region: str, query: FamilyQuery, ids: list[str]) -> None:
        try:
            self._run_chunk(subscription, region, query, ids)
        finally:
            self.slots.release()  # a chunk that failed between decoding and _accept still gives its slot back

    def _run_resource(self, resource_id: str, query: FamilyQuery) -> None:
        try:
            results = self._per_resource(resource_id, query)
        except AzureError as exc:
            if exc.problem.code not in UNREADABLE_CODES:
                raise ExtractionError(f"metrics query failed for {resource_id}: {exc.problem}", (resource_id,)) from exc
            with self.lock:
                self.result.unreadable[resource_id] = exc.problem.detail
            self._event(Level.WARN, ProblemCode.ACCOUNT_UNREADABLE, f"cannot read metrics: {exc.problem}", resource_id)
            return
        if self._accept(results):
            self._narrow(resource_id, query, use_batch=False)

    def _chunks(self) -> dict[str, list[tuple[str, FamilyQuery, list[str]]]]:
        """Chunks of ≤50 accounts sharing subscription, region and family query, grouped by subscription."""
        groups: dict[tuple[str, str, FamilyQuery], list[str]] = defaultdict(list)
        for plan in self.plans.values():
            for query in plan.queries:
                groups[(plan.account.subscription_id, plan.account.location, query)].append(plan.account.resource_id)
        by_subscription: dict[str, list[tuple[str, FamilyQuery, list[str]]]] = defaultdict(list)
        for (subscription, region, query), ids in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].family)
        ):
            ids.sort(key=str.lower)
            for i in range(0, len(ids), BATCH_MAX_RESOURCES):
                by_subscription[subscription].append((region, query, ids[i : i + BATCH_MAX_RESOURCES]))
        return by_subscription

    def run(self) -> Extraction:
        calls_before = Counter(self.reader.calls)
        chunks = self._chunks()
        with worker_pool(self.concurrency, "doow-extract") as pool:
            # The first chunk of each subscription decides its path (batch or per-resource) for the whole sync.
            probes = [pool.submit(self._chunk_task, sub, *items[0]) for sub, items in chunks.items()]
            for future in probes:
                future.result()
            rest = [pool.submit(self._chunk_task, sub, *chunk) for sub, items in chunks.items() for chunk in items[1:]]
            for future in rest:
                future.result()
        self.result.calls = self.reader.calls - calls_before
        return self.result


def batch_refused_message(subscription: str, refused: BatchRefused) -> str:
    return (
        f"subscription {subscription}: the batch metrics API refused the call, also with a fresh token "
        f"(HTTP {refused.status}, Azure's code {refused.code or '(none)'}: {refused.message}); using the "
        "per-resource API for this subscription for the rest of the sync (slower, more calls). The batch API "
        "needs Monitoring Reader at subscription scope and the Microsoft.Insights resource provider "
        "registered in the subscription."
    )


def extract_usage(
    reader: MetricsReader,
    plans: list[AccountPlan],
    first_day: date,
    last_day: date,
    *,
    now: datetime,
    top: int = 1000,
    concurrency: int = 4,
    log: Callable[[str], None] | None = None,
    sink: PointSink | None = None,
) -> Extraction:
    """Daily metric points for the accounts in `plans`, for UTC days first_day..last_day (inclusive).

    Days older than the retention window are skipped with one WARN event; days after `now` hold no data.
    With a `sink`, each answer's accepted points go to it as they arrive (at most `concurrency` answers are
    in flight) and the caller drops `refused` account-days from them (`drop_refused`); without one, they are
    collected, refused account-days dropped, in `points`.
    """
    oldest = oldest_syncable_day(now)
    days = days_between(first_day, last_day)
    synced = [d for d in days if oldest <= d <= now.date()]
    skipped = [d for d in days if d < oldest]
    if not synced:
        result = Extraction(points=pl.DataFrame(schema=POINT_SCHEMA), synced_days=[], skipped_days=skipped)
    else:
        window = TimeWindow(
            day_start(synced[0]), min(day_start(synced[-1] + timedelta(days=1)), now.replace(second=0, microsecond=0))
        )
        collector = _Collector()
        result = _Extractor(reader, plans, window, top, concurrency, sink or collector).run()
        if sink is None:
            result.points = collector.points(result.refused)
        # A day some account's answer left out is not landed: landing it would replace good data with less.
        result.synced_days = [d for d in synced if d not in result.unfetched_days]
        result.skipped_days = skipped
    if skipped:
        result.events.insert(
            0,
            SyncEvent(
                Level.WARN,
                ProblemCode.RETENTION_EXCEEDED,
                f"{len(skipped)} day(s) from {skipped[0]} to {skipped[-1]} are older than Azure Monitor's "
                f"{RETENTION_DAYS}-day metric retention and cannot be synced; "
                + (f"synced {synced[0]} to {synced[-1]}." if synced else "nothing left to sync."),
            ),
        )
    if log and result.unfetched_days:
        log(
            f"extraction: {len(result.unfetched_days)} day(s) not answered by Azure, not landed: "
            f"{', '.join(str(d) for d in sorted(result.unfetched_days))}"
        )
    if log:
        log(
            f"extraction: {sum(result.calls.values())} metrics call(s) ({dict(result.calls)}), "
            f"{result.points_answered:,} point(s) answered for {len(result.synced_days)} day(s)"
        )
    return result
