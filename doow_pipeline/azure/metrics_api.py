"""THE Azure Monitor metrics reader: batch (`metrics:getBatch`) and per-resource queries, one parser from
the wire JSON to typed results, and one rule for refusals.

Both APIs are read as raw JSON: the SDK's batch result models drop `resourceid` and the per-metric
`errorCode` that Azure reports inside 200 answers. Batch calls go through `MetricsClient.send_request`
(the client's auth, retry and transport); per-resource calls through azure-mgmt-monitor's `metrics.list`
with the raw body handed back.

Refusals are judged by behaviour, not by Azure's code (its code for "no Monitoring Reader at subscription
scope" is undocumented): a getBatch 401 or 403 of any code is asked once more with a token never sent before
(a new credential and client: no cached token); refused again, it raises `BatchRefused` and the caller uses
the per-resource API. A call whose answer is partial (the connection dropped mid-answer, per-metric errors,
resources or metrics missing) is repeated: the query only reads, so repeating is safe.

Answers are checked against the request: Azure may answer 200 with a shorter window than asked (the spec:
the timespan "may be adjusted ... and returned back from what was originally requested"), another grain,
or buckets left out. Only buckets of the asked grain, inside the asked window and present in every series
count as answered; the rest of the window is asked again (the unanswered stretches, halved when an answer
brought nothing), and what still is not answered is returned as the result's `gaps`.
"""

from __future__ import annotations

import codecs
import io
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import repeat
from operator import itemgetter
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.core.rest import HttpRequest

from ..core import json_read
from ..core.clock import format_utc, parse_utc
from ..core.metrics import ACTIVITY_COLUMNS, DIMENSION_COLUMNS, NAMESPACE
from ..core.problems import AzureError, ExtractionError, ProblemCode
from ..core.scope import Account
from .errors import azure_errors, malformed_answer, one_line, wire_error_code
from .session import AzureSession

BATCH_API_VERSION = "2024-02-01"
METRICS_PATH = "/providers/Microsoft.Insights/metrics/"
PARTIAL_ATTEMPTS = 3
PARTIAL_BACKOFF_SECONDS = 0.5
# A getBatch answer waiting for its decode slot waits in a temporary file once it is larger than this (a 90-day answer
# for 50 accounts is 15-30 MiB; a daily run's stay in memory).
SPOOL_IN_MEMORY = 1 << 20
MAX_EXTRA_CALLS = 8  # beyond two per bucket: what one window may take when Azure keeps answering less
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


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
        clauses = [
            f"{dim} eq {quote_filter_value(self.deployment)}"
            if dim == "ModelDeploymentName" and self.deployment is not None
            else f"{dim} eq '*'"
            for dim in self.split
        ]
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

    @property
    def step(self) -> timedelta:
        step = duration(self.interval)
        if step is None or step <= timedelta(0):
            raise ValueError(f"unsupported interval {self.interval!r}")
        return step

    def buckets(self) -> list[datetime]:
        """Bucket starts: from `start`, every `interval`, before `end`."""
        step, moment, out = self.step, self.start, []
        while moment < self.end:
            out.append(moment)
            moment += step
        return out

    def __str__(self) -> str:
        return f"{self.timespan} ({self.interval})"


def duration(text: str | None) -> timedelta | None:
    """An ISO 8601 duration of days, hours, minutes, seconds (P1D, PT24H, PT1M); None if not of that form."""
    match = _DURATION.match((text or "").strip().upper())
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Answered:
    """The window and grain an answer says it covers (None: Azure did not say; taken as asked)."""

    start: datetime | None
    end: datetime | None
    interval: str | None


class Series:
    """One time series of a metric: its dimensions and its points (bucket starts as Azure writes them, values).

    Read from a batch answer's columns (`rows`), the point lists are made only when asked for: the extraction reads
    the columns (`MetricResult.rows`), and a Python object per point is what made parsing slow and memory-hungry."""

    __slots__ = ("_averages", "_maximums", "_rows", "_timestamps", "_totals", "dimensions")

    def __init__(
        self,
        dimensions: dict[str, str],
        timestamps: list[str] | None = None,
        totals: list[float | None] | None = None,
        averages: list[float | None] | None = None,
        maximums: list[float | None] | None = None,
        *,
        rows: pl.DataFrame | None = None,
    ):
        self.dimensions = dimensions  # dimension name (lower-cased, as Azure returns it) -> value as reported
        self._rows = rows  # this series' points as columns (timestamp, total, average, maximum), or None
        self._timestamps = timestamps if timestamps is not None or rows is not None else []
        self._totals = totals if totals is not None or rows is not None else []
        self._averages = averages if averages is not None or rows is not None else []
        self._maximums = maximums if maximums is not None or rows is not None else []

    def _column(self, name: str) -> list[Any]:
        assert self._rows is not None
        if name not in self._rows.columns:
            return [None] * self._rows.height  # a value the answer left empty everywhere
        return self._rows.get_column(name).to_list()

    @property
    def points(self) -> int:
        return self._rows.height if self._rows is not None else len(self.timestamps)

    @property
    def timestamps(self) -> list[str]:  # bucket starts, "...Z"
        if self._timestamps is None:
            self._timestamps = self._column("timestamp")
        return self._timestamps

    @property
    def totals(self) -> list[float | None]:  # None for an empty bucket (it carries only its timestamp)
        if self._totals is None:
            self._totals = self._column("total")
        return self._totals

    @property
    def averages(self) -> list[float | None]:  # filled for Average queries
        if self._averages is None:
            self._averages = self._column("average")
        return self._averages

    @property
    def maximums(self) -> list[float | None]:  # filled for Maximum queries
        if self._maximums is None:
            self._maximums = self._column("maximum")
        return self._maximums

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Series):
            return NotImplemented
        return (self.dimensions, self.timestamps, self.totals, self.averages, self.maximums) == (
            other.dimensions,
            other.timestamps,
            other.totals,
            other.averages,
            other.maximums,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside, as the dataclass it replaced

    def __repr__(self) -> str:
        return f"Series({self.dimensions!r}, {self.timestamps!r}, {self.totals!r})"


@dataclass(frozen=True)
class MetricResult:
    resource_id: str
    metric: str
    error_code: str  # "Success" or Azure's per-metric errorCode
    error_message: str | None
    series: list[Series]
    answered: Answered = Answered(None, None, None)
    gaps: tuple[TimeWindow, ...] = ()  # stretches of the asked window Azure did not answer, after asking again
    # The result's points as columns (those of ROW_COLUMNS the answer filled, without resource_id and metric), when
    # read from a batch answer's columns; else None and the points are the series' lists. Read them with rows_of.
    rows: pl.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return self.error_code == "Success"

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_id.lower(), self.metric.lower()


# The dimensions a result's rows carry as columns, and the columns of `MetricResult.rows`.
ROW_DIMENSIONS = {**DIMENSION_COLUMNS, **ACTIVITY_COLUMNS}
ROW_COLUMNS = ["resource_id", "metric", *ROW_DIMENSIONS.values(), "timestamp", "total", "average", "maximum"]


def rows_of(results: Iterable[MetricResult]) -> pl.DataFrame:
    """Every point of `results` as ROW_COLUMNS (timestamps as Azure wrote them), in the results' order: an answer
    read as columns gives its rows as they are; results with point lists (per-resource answers, windows merged
    from several answers) become one row per series with list columns, exploded by polars."""
    frames: list[pl.DataFrame] = []
    listed: list[MetricResult] = []
    for result in results:
        if result.rows is None:
            listed.append(result)
            continue
        if listed:
            frames.append(_listed_rows(listed))
            listed = []
        # The answer's rows carry only the columns it filled; the result's own values are added here, at use.
        frames.append(
            result.rows.with_columns(
                pl.lit(result.resource_id, pl.String).alias("resource_id"),
                pl.lit(result.metric, pl.String).alias("metric"),
            )
        )
    if listed or not frames:
        frames.append(_listed_rows(listed))
    rows = pl.concat(frames, how="diagonal")
    return rows.select(
        pl.col(name) if name in rows.columns else pl.lit(None, dtype).alias(name) for name, dtype in _ROW_SCHEMA.items()
    )


_ROW_SCHEMA = {
    **{name: pl.String() for name in ROW_COLUMNS},
    "total": pl.Float64(),
    "average": pl.Float64(),
    "maximum": pl.Float64(),
}


def _listed_rows(results: list[MetricResult]) -> pl.DataFrame:
    columns: dict[str, list[object]] = {name: [] for name in ROW_COLUMNS}
    for result in results:
        for series in result.series:
            columns["resource_id"].append(result.resource_id)
            columns["metric"].append(result.metric)
            for dim, column in ROW_DIMENSIONS.items():
                columns[column].append(series.dimensions.get(dim))
            count = len(series.timestamps)
            columns["timestamp"].append(series.timestamps)
            # A series may lack a value list (a Total query has no averages): nulls of the series' length.
            for name, values in (("total", series.totals), ("average", series.averages), ("maximum", series.maximums)):
                columns[name].append(values if len(values) == count else [None] * count)
    lists = {
        **_ROW_SCHEMA,
        "timestamp": pl.List(pl.String),
        **{name: pl.List(pl.Float64) for name in ("total", "average", "maximum")},
    }
    return pl.DataFrame(columns, schema=lists, strict=False).explode(["timestamp", "total", "average", "maximum"])


class BatchRefused(Exception):
    """getBatch refused the call (401/403, any code), also when asked again with a fresh token."""

    def __init__(self, status: int, code: str | None, message: str):
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"HTTP {status} {code or 'no code'}: {message}")


def resource_id_of(metric_id: str) -> str:
    """Recovers the resource id from a metric id: everything before /providers/Microsoft.Insights/metrics/."""
    index = metric_id.lower().rfind(METRICS_PATH.lower())
    return metric_id[:index] if index >= 0 else metric_id


def _moment(text: object) -> datetime | None:
    try:
        return parse_utc(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def answered_timespan(timespan: object, interval: object) -> Answered:
    """The per-resource API's `timespan` ("start/end") and `interval`."""
    start, _, end = (timespan if isinstance(timespan, str) else "").partition("/")
    return Answered(_moment(start), _moment(end), interval if isinstance(interval, str) else None)


_TIME_STAMP = itemgetter("timeStamp")


def _field(data: Iterable[dict[str, Any]], name: str) -> list[Any]:
    """`name` of every point, None where absent (map over C-level calls: millions of points per sync)."""
    return list(map(dict.get, data, repeat(name)))


def parse_metric(resource_id: str | None, metric: dict[str, Any], answered: Answered | None = None) -> MetricResult:
    """One metric of a metrics answer (either API) as a typed result."""
    series = []
    for ts in metric.get("timeseries") or ():
        data = ts.get("data") or ()
        series.append(
            Series(
                {md["name"]["value"].lower(): md["value"] for md in ts.get("metadatavalues") or ()},
                list(map(_TIME_STAMP, data)),
                _field(data, "total"),
                _field(data, "average"),
                _field(data, "maximum"),
            )
        )
    return MetricResult(
        resource_id or resource_id_of(metric["id"]),
        metric["name"]["value"],
        metric.get("errorCode") or "Success",
        metric.get("errorMessage"),
        series,
        answered or Answered(None, None, None),
    )


def parse_batch_answer(body: dict[str, Any]) -> list[MetricResult]:
    results: list[MetricResult] = []
    for item in body.get("values", []):
        answered = Answered(_moment(item.get("starttime")), _moment(item.get("endtime")), item.get("interval"))
        results.extend(parse_metric(item.get("resourceid"), metric, answered) for metric in item.get("value", []))
    return results


# ---- batch answers read as columns -----------------------------------------------------------------------
# A getBatch answer runs to ~10 MB and ~200,000 points. Read natively into columns by pyarrow's JSON reader, it
# costs less than half the CPU of decoding it into Python objects (a dict per point) and about a third of the
# memory (polars' own JSON reader is as fast but needs ~150 MiB of scratch for a 12 MB answer); pyarrow's reader
# also refuses a wrongly typed value instead of coercing it. `parse_batch_answer` stays the reference, and reads
# every answer that is not plainly the documented shape.

_NAME = pa.struct([("value", pa.string())])
_POINT = pa.struct([("timeStamp", pa.string()), *((name, pa.float64()) for name in ("total", "average", "maximum"))])
_TIMESERIES = pa.struct(
    [("metadatavalues", pa.list_(pa.struct([("name", _NAME), ("value", pa.string())]))), ("data", pa.list_(_POINT))]
)
_METRIC = pa.struct(
    [
        ("id", pa.string()),
        ("name", _NAME),
        ("errorCode", pa.string()),
        ("errorMessage", pa.string()),
        ("timeseries", pa.list_(_TIMESERIES)),
    ]
)
_ITEM = pa.struct(
    [
        ("resourceid", pa.string()),
        ("starttime", pa.string()),
        ("endtime", pa.string()),
        ("interval", pa.string()),
        ("value", pa.list_(_METRIC)),
    ]
)
_BATCH_ANSWER = pa.schema([("values", pa.list_(_ITEM))])
_JSON_OPTIONS = pa_json.ParseOptions(
    explicit_schema=_BATCH_ANSWER, unexpected_field_behavior="ignore", newlines_in_values=True
)


class _Irregular(Exception):
    """Not plainly the documented shape (a null where a value belongs, ...): the reference parser reads it."""


def _children(parents: pl.Series, parent: str) -> pl.DataFrame:
    """The elements of a list column, each with its parent's index (`parent`); a null list has none, a null element
    is irregular (the reference parser fails on it)."""
    frame = (
        pl.DataFrame({parent: pl.int_range(parents.len(), dtype=pl.UInt32, eager=True), "child": parents})
        .filter(parents.list.len().fill_null(0) > 0)
        .explode("child")
    )
    if frame.get_column("child").null_count():
        raise _Irregular
    return frame.select(parent, pl.col("child").struct.unnest())


def parse_batch_columns(body: bytes) -> list[MetricResult] | None:
    """A getBatch answer as results whose points are columns (`MetricResult.rows`); None when the answer is not
    plainly the documented shape (not an object, NaN literals, a wrongly typed field, a null where a value
    belongs): `parse_batch_answer` reads those, so what an answer means never depends on the parser."""
    if body.lstrip()[:1] != b"{":
        return None  # a JSON string (Azure sometimes sends one), a list, not JSON: the reference decides
    try:
        # One block holds the whole answer (the reader splits blocks at newlines, an answer may be pretty-printed);
        # threads off: the extraction already reads several answers at once.
        table = pa_json.read_json(
            io.BytesIO(body),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(body) + 1),
            parse_options=_JSON_OPTIONS,
            # The C allocator hands an answer's scratch back at once; pyarrow's default pool keeps it.
            memory_pool=pa.system_memory_pool(),
        )
    except (pa.ArrowException, ValueError):  # a wrongly typed field, a repeated key, more than JSON
        return None
    if table.num_rows != 1:
        return None  # several JSON documents: not one answer
    answer = pl.from_arrow(table)
    assert isinstance(answer, pl.DataFrame)
    try:
        return _column_results(answer)
    except _Irregular:
        return None


def _column_results(answer: pl.DataFrame) -> list[MetricResult]:
    values = answer.get_column("values")
    if values.null_count():
        raise _Irregular
    items = _children(values, "answer")
    if items.get_column("value").null_count():
        raise _Irregular
    metrics = _children(items.get_column("value"), "item")
    names = metrics.get_column("name").struct.field("value")
    if names.null_count():
        raise _Irregular
    series = _children(metrics.get_column("timeseries"), "metric")
    dims = _children(series.get_column("metadatavalues"), "series")
    dim_names = dims.get_column("name").struct.field("value")
    if dim_names.null_count() or dims.get_column("value").null_count():
        raise _Irregular
    points = _children(series.get_column("data"), "series")
    if points.get_column("timeStamp").null_count():
        raise _Irregular

    # Dimensions per series, as the reference builds them (names lower-cased, the last of a repeated name wins).
    dimensions: list[dict[str, str]] = [{} for _ in range(series.height)]
    for index, name, value in zip(
        dims.get_column("series").to_list(), dim_names.to_list(), dims.get_column("value").to_list(), strict=True
    ):
        dimensions[index][name.lower()] = value

    resource_ids = []
    for resource_id, metric_id in zip(
        items.get_column("resourceid").gather(metrics.get_column("item")).to_list(),
        metrics.get_column("id").to_list(),
        strict=True,
    ):
        if resource_id is None and metric_id is None:
            raise _Irregular
        resource_ids.append(resource_id or resource_id_of(metric_id))
    metric_names = names.to_list()

    point_series = points.get_column("series")
    # Only the columns the answer fills (a token answer has no status codes, a Total query no averages): the rows
    # of a decoded answer are held until its points are staged. rows_of adds the rest, and each result's own
    # resource id and metric.
    present = {name for d in dimensions for name in d}
    columns = {
        column: pl.Series([d.get(name) for d in dimensions], dtype=pl.String).gather(point_series)
        for name, column in ROW_DIMENSIONS.items()
        if name in present
    }
    columns["timestamp"] = points.get_column("timeStamp")
    for value in ("total", "average", "maximum"):
        if points.get_column(value).null_count() < points.height:
            columns[value] = points.get_column(value)
    rows = pl.DataFrame(columns)

    answered = [
        Answered(_moment(start), _moment(end), interval)
        for start, end, interval in items.select("starttime", "endtime", "interval").iter_rows()
    ]
    series_of: list[list[Series]] = [[] for _ in range(metrics.height)]
    starts = [0] * metrics.height
    ends = [0] * metrics.height
    offset = 0
    seen: set[int] = set()
    for index, (metric, count) in enumerate(
        zip(
            series.get_column("metric").to_list(),
            series.get_column("data").list.len().fill_null(0).to_list(),
            strict=True,
        )
    ):
        if metric not in seen:
            seen.add(metric)
            starts[metric] = offset
        series_of[metric].append(Series(dimensions[index], rows=rows.slice(offset, count)))
        offset += count
        ends[metric] = offset
    return [
        MetricResult(
            resource_ids[m],
            metric_names[m],
            code or "Success",
            message,
            series_of[m],
            answered[item],
            rows=rows.slice(starts[m], ends[m] - starts[m]),
        )
        for m, (item, code, message) in enumerate(metrics.select("item", "errorCode", "errorMessage").iter_rows())
    ]


# ---- answers checked against the request --------------------------------------------------------------------


class _Asked:
    """A window's bucket starts, as datetimes and as Azure writes them, computed once per window."""

    def __init__(self, window: TimeWindow):
        self.window = window
        self.step = window.step
        self.buckets = window.buckets()
        self.stamps = [format_utc(b) for b in self.buckets]
        self.all = set(self.buckets)

    def _every_series_whole(self, result: MetricResult) -> bool:
        """Every series carries exactly the window's buckets, in order (the usual answer)."""
        if result.rows is None:
            return all(s.timestamps == self.stamps for s in result.series)
        count = len(self.stamps)
        if any(s.points != count for s in result.series):
            return False
        stamps = result.rows.get_column("timestamp")
        return stamps.is_empty() or bool((stamps == pl.Series(self.stamps * len(result.series))).all())

    def answered(self, result: MetricResult) -> set[datetime]:
        """The buckets `result` really answers: same grain, inside the window Azure says it answered (and the
        asked one), and present in every series (a series carries every bucket of its window, empty ones with
        only a timestamp). The last bucket may be partial (a window ending now)."""
        answered, window = result.answered, self.window
        if answered.interval is not None and duration(answered.interval) != self.step:
            return set()  # another grain: these totals are not daily totals
        start = max(window.start, answered.start or window.start)
        end = min(window.end, answered.end or window.end)
        if start == window.start and end == window.end and self._every_series_whole(result):
            return self.all
        last = self.buckets[-1] if self.buckets else None
        present = {
            b for b in self.buckets if b >= start and (b + self.step <= end or (b == last and end == window.end))
        }
        for s in result.series:
            present &= {stamp for stamp in (_moment(t) for t in s.timestamps) if stamp is not None}
        return present


def _runs(buckets: Iterable[datetime], step: timedelta, interval: str, end: datetime) -> list[TimeWindow]:
    """Contiguous runs of bucket starts as windows (the last bucket may end at `end`, a partial day)."""
    windows: list[TimeWindow] = []
    for bucket in sorted(buckets):
        stop = min(bucket + step, end)
        if windows and windows[-1].end == bucket:
            windows[-1] = replace(windows[-1], end=stop)
        else:
            windows.append(TimeWindow(bucket, stop, interval))
    return windows


def _halves(window: TimeWindow) -> list[TimeWindow]:
    buckets = window.buckets()
    if len(buckets) < 2:
        return []
    middle = buckets[len(buckets) // 2]
    return [replace(window, end=middle), replace(window, start=middle)]


@dataclass
class _Coverage:
    """What is known of one (resource, metric) while a window is asked piece by piece."""

    first: MetricResult
    have: set[datetime] = field(default_factory=set)
    series: dict[tuple[tuple[str, str], ...], Series] = field(default_factory=dict)

    def add(self, result: MetricResult, buckets: set[datetime]) -> bool:
        new = buckets - self.have
        if not new:
            return False
        self.have |= new
        stamps = {format_utc(b) for b in new}
        for s in result.series:
            key = tuple(sorted(s.dimensions.items()))
            merged = self.series.setdefault(key, Series(s.dimensions, [], [], [], []))
            for i, stamp in enumerate(s.timestamps):
                if stamp in stamps or _moment(stamp) in new:
                    merged.timestamps.append(stamp)
                    merged.totals.append(s.totals[i] if i < len(s.totals) else None)
                    merged.averages.append(s.averages[i] if i < len(s.averages) else None)
                    merged.maximums.append(s.maximums[i] if i < len(s.maximums) else None)
        return True


def cover_window(ask: Callable[[TimeWindow], list[MetricResult]], window: TimeWindow) -> list[MetricResult]:
    """Asks `window`, checks each answer against it, and asks again for what was not answered, until every
    (resource, metric) holds every bucket or the call budget (two per bucket, plus a few) is spent. Results that are
    not ok (per-metric errors) are returned as Azure gave them."""
    whole = _Asked(window)
    first = ask(window)
    if all(not r.ok or whole.answered(r) == whole.all for r in first):
        return first  # the usual case: the answer is what was asked
    coverage: dict[tuple[str, str], _Coverage] = {}
    errors: dict[tuple[str, str], MetricResult] = {}

    def take(asked: _Asked, results: list[MetricResult]) -> bool:
        progress = False
        for r in results:
            if not r.ok:
                errors.setdefault(r.key, r)
                continue
            progress |= coverage.setdefault(r.key, _Coverage(r)).add(r, asked.answered(r))
        return progress

    def missing(within: TimeWindow) -> list[TimeWindow]:
        lacking = set().union(*(whole.all - c.have for c in coverage.values()))
        return _runs({b for b in lacking if within.start <= b < within.end}, whole.step, window.interval, window.end)

    take(whole, first)
    pending, calls, budget = missing(window), 1, 2 * len(whole.buckets) + MAX_EXTRA_CALLS
    while pending and calls < budget:
        asked = pending.pop(0)
        calls += 1
        if take(_Asked(asked), ask(asked)):
            pending[:0] = missing(asked)
        else:
            pending[:0] = _halves(asked)  # nothing new: a smaller window may be answered in full
    out = [
        MetricResult(
            c.first.resource_id,
            c.first.metric,
            "Success",
            None,
            list(c.series.values()),
            Answered(window.start, window.end, window.interval),
            tuple(_runs(whole.all - c.have, whole.step, window.interval, window.end)),
        )
        for c in coverage.values()
    ]
    out.extend(r for key, r in errors.items() if key not in coverage)
    return out


def _is_malformed(exc: AzureError) -> bool:
    return exc.problem.code is ProblemCode.MALFORMED_ANSWER


def read_answer(call: str, status: int, text: str, parse: Any) -> list[MetricResult]:
    """Parses an answer's JSON with `parse`; anything that is not the documented shape (not JSON, truncated, a
    string, a metric without a name) raises AzureError(MALFORMED_ANSWER) naming the call, status and body."""
    try:
        body = json_read.loads(text)
        if isinstance(body, str):  # the SDK notes Azure sometimes sends the body as a JSON string
            body = json_read.loads(body)
    except ValueError:
        raise AzureError(malformed_answer(call, status, text, "a body that is not JSON")) from None
    try:
        results: list[MetricResult] = parse(body)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise AzureError(malformed_answer(call, status, text, "JSON that is not a metrics answer")) from None
    return results


@contextmanager
def dropped_body_asked_again() -> Iterator[None]:
    """A connection that drops while an answer's body is read raises what `_batch_window` asks again on
    (ServiceResponseError). azure-core's requests transport names the drop `IncompleteReadError` when the body
    ended before its Content-Length, and a plain `HttpResponseError` ("Unable to stream download") when the read
    broke otherwise (a reset while bytes were still unread, say): the status line had arrived by then, so neither
    is Azure's answer, and asking again is safe (a getBatch POST only reads)."""
    try:
        yield
    except HttpResponseError as exc:  # IncompleteReadError and DecodeError are HttpResponseErrors
        raise ServiceResponseError(str(exc), error=exc) from exc


def _spooled_body(response: Any) -> IO[bytes]:
    """The answer's body read off the connection into a temporary file (memory up to SPOOL_IN_MEMORY), rewound.
    A thread then waits for its decode slot holding a file, not the answer's text (15-30 MiB for 50 accounts x
    90 days), so answers that arrive faster than they are decoded no longer add to the peak (benchmarks/README.md,
    "Fourth pass"). The file has no name (it is gone when closed, or when the process dies) and holds metric
    values only."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        with dropped_body_asked_again():
            for block in response.iter_bytes():
                spool.write(block)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _decoded(body: bytes, encoding: str | None) -> str:
    """The body as text, decoded as azure-core's `HttpResponse.text()` decodes it (its charset, a BOM dropped)."""
    if encoding == "utf-8":
        encoding = "utf-8-sig"
    if encoding:
        return body.decode(encoding)
    return codecs.getincrementaldecoder("utf-8-sig")(errors="replace").decode(body, final=True)


class AnswerSlots:
    """Bounds how many threads hold a decoded batch answer at once. A decoded answer holds several times its
    text in memory until its caller has used it (converted and staged its points), so the reader takes a slot
    before it decodes one (`take`; a thread that holds one keeps it for the answers it decodes next) and the
    caller gives it back when it is done with them (`release`). Threads waiting for a slot hold only an answer's
    text; the HTTP calls themselves are not bounded."""

    def __init__(self, slots: int):
        self._free = threading.BoundedSemaphore(slots)
        self._holder = threading.local()

    def take(self) -> None:
        if not getattr(self._holder, "holds", False):
            self._free.acquire()
            self._holder.holds = True

    def release(self) -> None:
        if getattr(self._holder, "holds", False):
            self._holder.holds = False
            self._free.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """The thread's slot (taken when the reader has not already) while the caller uses what it decoded; given
        back at the end."""
        self.take()
        try:
            yield
        finally:
            self.release()


@dataclass(frozen=True)
class _BatchAsk:
    """What one getBatch call asks for, whatever window it covers."""

    subscription: str
    region: str
    query: MetricQuery
    resource_ids: list[str]
    slots: AnswerSlots | None  # see MetricsReader.batch


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
    def batch(
        self,
        subscription: str,
        region: str,
        query: MetricQuery,
        resource_ids: list[str],
        window: TimeWindow,
        slots: AnswerSlots | None = None,
    ) -> list[MetricResult]:
        """getBatch over `window`, asked again for whatever the answers leave out (see `cover_window`). `slots`, from
        a caller that consumes answers as they arrive: the thread takes one before it decodes an answer, and the
        caller gives it back once it has used the results (see AnswerSlots)."""
        ask = _BatchAsk(subscription, region, query, resource_ids, slots)
        return cover_window(lambda w: self._batch_window(ask, w), window)

    def _batch_window(self, ask: _BatchAsk, window: TimeWindow) -> list[MetricResult]:
        """A getBatch call, repeated while its answer is partial. A refusal is asked once more with a fresh
        token, then raised (BatchRefused). Persistent per-metric errors are returned (the caller reports
        them); resources or metrics still missing raise ExtractionError."""
        subscription, region = ask.subscription, ask.region
        expected = {(rid.lower(), metric.lower()) for rid in ask.resource_ids for metric in ask.query.metric_names}
        fresh = False
        attempt = 0
        while True:
            attempt += 1
            try:
                results = self._batch_once(ask, window, fresh)
            except ServiceResponseError as exc:  # the connection dropped mid-answer
                if attempt >= PARTIAL_ATTEMPTS:
                    raise ExtractionError(
                        f"batch metrics query for subscription {subscription}, region {region} "
                        f"failed {attempt} times: {one_line(str(exc))}"
                    ) from exc
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
                continue
            except AzureError as exc:
                if not _is_malformed(exc):
                    raise
                if attempt >= PARTIAL_ATTEMPTS:
                    raise ExtractionError(
                        f"batch metrics query for subscription {subscription}, region {region} "
                        f"failed {attempt} times: {exc.problem.cause}"
                    ) from None
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)  # a mangled answer: ask again
                continue
            except BatchRefused:
                if fresh:
                    raise  # refused with a token never sent before: not a stale token
                fresh = True  # a stale or bad cached token (clock skew, revoked): once more with a new one
                attempt -= 1
                continue
            fresh = False
            missing = expected - {r.key for r in results}
            if not missing and all(r.ok for r in results):
                return results
            if attempt < PARTIAL_ATTEMPTS:
                time.sleep(PARTIAL_BACKOFF_SECONDS * attempt)
                continue
            if missing:
                raise ExtractionError(
                    f"batch metrics answer for subscription {subscription}, region {region} "
                    f"still lacks {len(missing)} (resource, metric) pair(s) after {attempt} tries, "
                    f"e.g. {sorted(missing)[0]}"
                )
            return results

    def _batch_once(self, ask: _BatchAsk, window: TimeWindow, fresh: bool = False) -> list[MetricResult]:
        query = ask.query
        params = {
            "api-version": BATCH_API_VERSION,
            "metricnamespace": NAMESPACE,
            "metricnames": ",".join(query.metric_names),
            "starttime": format_utc(window.start),
            "endtime": format_utc(window.end),
            "interval": window.interval,
            "aggregation": query.aggregation.lower(),
            "top": str(query.top),
            "orderby": query.order_by.lower(),
        }
        filter_ = query.filter()
        if filter_:
            params["filter"] = filter_
        request = HttpRequest(
            "POST",
            f"/subscriptions/{ask.subscription}/metrics:getBatch",
            params=params,
            json={"resourceids": ask.resource_ids},
        )
        self._count("batch")
        endpoint = self.session.endpoints.metrics_template.format(region=ask.region)
        with azure_errors(keep=(ServiceResponseError,), endpoint=endpoint):  # a dropped answer is asked again
            client = self.session.renew_metrics(ask.region) if fresh else self.session.metrics(ask.region)
            # Streamed: without it the SDK's ContentDecodePolicy parses every answer's JSON once more, for nothing.
            response = client.send_request(request, stream=True)
            try:
                if response.status_code >= 400:  # an error's body is small: read as the SDK reads it
                    with dropped_body_asked_again():
                        response.read()
                    if response.status_code in (401, 403):
                        text = response.text()
                        raise BatchRefused(response.status_code, wire_error_code(text), one_line(text, 300))
                    response.raise_for_status()
                spool = _spooled_body(response)
            finally:
                response.close()
            with spool:
                if ask.slots is not None:
                    ask.slots.take()
                body = spool.read()
            results = parse_batch_columns(body)
            if results is not None:
                return results
            text = _decoded(body, response.encoding)
            del body  # the reference parser reads the text: not both alive while it does
        # Named as the SDK names a call whose body it cannot decode (the caller's message names subscription and
        # region): the answer is decoded here now, the SDK no longer sees it.
        return read_answer(
            f"POST {response.request.url.split('?', 1)[0]} call",
            response.status_code,
            text,
            parse_batch_answer,
        )

    # ---- per resource --------------------------------------------------------------------------------------
    def per_resource(self, account: Account, query: MetricQuery, window: TimeWindow) -> list[MetricResult]:
        """Per-resource metrics over `window`, asked again for whatever the answers leave out."""
        return cover_window(lambda w: self._per_resource_window(account, query, w), window)

    def _per_resource_window(self, account: Account, query: MetricQuery, window: TimeWindow) -> list[MetricResult]:
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
        with azure_errors(endpoint=self.session.endpoints.arm):
            answer: Any = self.session.monitor(account.subscription_id).metrics.list(
                account.resource_id,
                timespan=window.timespan,
                interval=window.interval,
                metricnames=",".join(query.metric_names),
                aggregation=query.aggregation,
                top=query.top,
                orderby=query.order_by,
                filter=query.filter(),
                metricnamespace=NAMESPACE,
                cls=lambda pipeline_response, _deserialized, _headers: pipeline_response.http_response,
            )

        def parse(body: Any) -> list[MetricResult]:
            answered = answered_timespan(body.get("timespan"), body.get("interval"))
            return [parse_metric(account.resource_id, metric, answered) for metric in body.get("value") or ()]

        return read_answer(
            f"per-resource metrics API (GET {account.resource_id}/providers/Microsoft.Insights/metrics)",
            answer.status_code,
            answer.text(),
            parse,
        )
