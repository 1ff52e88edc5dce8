"""The metrics engine: one resource's metric values for a parsed query, as Azure Monitor returns them.

Bucket values are the generator's exact integers (usage.atom_amount semantics) over each bucket window
clipped to the visible window [now - retention, now - ingestion delay). Instead of calling atom_amount per
bucket (O(days) each), each atom's cumulative usage F(t) is evaluated once per bucket boundary from its
per-day totals, and a bucket is F(end) - F(start): the same telescoping sum, in O(days + buckets).
test_emulator_engine.py checks the equality against atom_amount.
"""

from __future__ import annotations

import json
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from . import usage as _usage
from .catalogue import ALL_METRICS_BY_LOWER_NAME, METRICS_BY_LOWER_NAME, MetricSpec, metrics_for_families
from .query import Filter, QueryError, trace_suffix
from .quirks import Quirks
from .scenario import Account, Deployment, Scenario
from .timeutil import format_duration, format_ts, from_minutes, to_minutes

MINUTES_PER_DAY = 1440
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_RAW_DAILY_FACTORS = getattr(_usage.daily_totals, "__wrapped__", _usage.daily_totals)
_CUMULATIVE = _usage._CUMULATIVE
NAMESPACE_LOWER = "microsoft.cognitiveservices/accounts"


@dataclass
class MetricsRequest:
    names: list[str]
    start: datetime
    end: datetime
    grain: timedelta | None  # None = FULL
    aggregations: list[str] | None
    filter: Filter | None
    top: int
    order_desc: bool
    metadata_only: bool = False
    validate_dimensions: bool = True
    rollupby: frozenset[str] = frozenset()


@dataclass
class Window:
    """Bucket layout of a query plus the visible part of it, in minutes since the epoch."""

    b0: int
    grain: int
    n: int
    qlo: int
    qhi: int
    timestamps: list[str]
    bounds: list[int]
    interval: str
    timespan: str
    cost: int

    @property
    def json_total(self) -> list[str]:
        cached = getattr(self, "_json_total", None)
        if cached is None:
            cached = self._json_total = [f'{{"timeStamp":"{ts}","total":' for ts in self.timestamps]
        return cached

    @property
    def json_empty(self) -> list[str]:
        cached = getattr(self, "_json_empty", None)
        if cached is None:
            cached = self._json_empty = [f'{{"timeStamp":"{ts}"}}' for ts in self.timestamps]
        return cached


def account_metrics(account: Account) -> tuple[MetricSpec, ...]:
    return metrics_for_families(account.families, any(d.provisioned is not None for d in account.deployments))


def _resolve(names: list[str], available, known=None) -> list[MetricSpec]:
    """Canonical specs for requested names (case-insensitive), each once; the flat 400 for an unknown one
    (`known`: also accepted, not listed)."""
    by_lower = {m.name.lower(): m for m in list(known or ()) + list(available)}
    specs = []
    for name in names:
        spec = by_lower.get(name.lower())
        if spec is None:
            raise QueryError(
                "Failed to find metric configuration for provider: Microsoft.CognitiveServices, resource Type: "
                f"accounts, metric: {name}, Valid metrics: {','.join(m.name for m in available)}"
            )
        if spec not in specs:
            specs.append(spec)
    return specs


def resolve_metrics(account: Account, names: list[str]) -> list[MetricSpec]:
    """Validation against the metrics the account defines."""
    return _resolve(names, account_metrics(account))


def resolve_namespace_metrics(names: list[str]) -> list[MetricSpec]:
    """For getBatch: validation against the namespace's catalogue (resource independent)."""
    return _resolve(names, list(METRICS_BY_LOWER_NAME.values()), ALL_METRICS_BY_LOWER_NAME.values())


def effective_filter(specs: list[MetricSpec], query_filter: Filter | None, validate: bool) -> dict[str, Filter | None]:
    """Per metric, the filter restricted to its dimensions (ValidateDimensions=false) or a 400."""
    out: dict[str, Filter | None] = {}
    for spec in specs:
        if query_filter is None:
            out[spec.name] = None
            continue
        supported = {d.lower() for d in spec.dimensions}
        unknown = [c.dimension for c in query_filter.constraints.values() if c.dimension.lower() not in supported]
        if unknown and validate:
            requested = ",".join(c.dimension.lower() for c in query_filter.constraints.values())
            raise QueryError(
                f"Metric: {spec.name} does not support requested dimension combination: {requested}, "
                f"supported ones are: {','.join(spec.dimensions)}{trace_suffix()}"
            )
        kept = {k: c for k, c in query_filter.constraints.items() if k in supported}
        out[spec.name] = Filter(kept) if kept else None
    return out


def trimmed_start(request: MetricsRequest, quirks: Quirks) -> datetime:
    """The start of the window Azure answers for, after the (switchable) per-call limits: the end is kept
    and the start moves forward (see Quirks.trim_max_buckets / trim_max_span)."""
    start, end = request.start, request.end
    if quirks.trim_max_span is not None:
        from .timeutil import parse_duration

        span = parse_duration(quirks.trim_max_span)
        if span is not None and end - start > span:
            start = end - span
    if quirks.trim_max_buckets is not None and request.grain is not None:
        limit = max(1, int(quirks.trim_max_buckets))
        if end - start > request.grain * limit:
            start = end - request.grain * limit
    return start


def make_window(request: MetricsRequest, now: datetime, scenario: Scenario) -> Window:
    b0 = to_minutes(request.start)
    end_m = to_minutes(request.end)
    if request.grain is None:
        span = max(end_m - b0, 1)
        grain, n = span, 1
        interval = format_duration(request.end - request.start)
    else:
        grain = int(request.grain.total_seconds() // 60)
        n = max(0, -(-(end_m - b0) // grain))
        interval = format_duration(request.grain)
    vis0 = to_minutes(now - timedelta(days=scenario.retention_days))
    vis1 = to_minutes(now - timedelta(minutes=scenario.ingestion_delay_minutes))
    qlo, qhi = max(b0, vis0), min(end_m, vis1)

    def clamp(x: int) -> int:
        return qlo if x < qlo else (qhi if x > qhi else x)

    bounds = [clamp(b0 + i * grain) for i in range(n + 1)]
    if n:
        bounds[-1] = clamp(min(b0 + n * grain, end_m))
    timestamps = [format_ts(from_minutes(b0 + i * grain)) for i in range(n)]
    span_minutes = max(0, end_m - b0)
    return Window(
        b0,
        grain,
        n,
        qlo,
        qhi,
        timestamps,
        bounds,
        interval,
        f"{format_ts(request.start)}/{format_ts(request.end)}",
        max(0, span_minutes - 1),
    )


class _DeploymentDays:
    """Per-day usage components (input, output, requests) and model version of one deployment over the
    visible days of a query; `distinct` lists the versions seen, in order (as usage.metric_atoms does)."""

    __slots__ = ("components", "versions", "distinct")

    def __init__(self, seed: int, account: Account, deployment: Deployment, d0: int, ndays: int):
        ins, outs, reqs = array("q"), array("q"), array("q")
        versions: list[str | None] = []
        distinct: list[str] = []
        for k in range(ndays):
            day = date.fromordinal(_EPOCH_ORDINAL + d0 + k)
            if not deployment.active_on(day):
                ins.append(0)
                outs.append(0)
                reqs.append(0)
                versions.append(None)
                continue
            f_in, f_out, f_req = _RAW_DAILY_FACTORS(seed, account.id, deployment.name, day)
            means = deployment.means_on(day)
            ins.append(means.input_tokens * f_in // 1000)
            outs.append(means.output_tokens * f_out // 1000)
            reqs.append(means.requests * f_req // 1000)
            version = deployment.version_on(day)
            versions.append(version)
            if version not in distinct:
                distinct.append(version)
        self.components = (ins, outs, reqs)
        self.versions = versions
        self.distinct = distinct


class _DaysCache:
    """Bounded LRU of _DeploymentDays shared by requests (a sync asks each family over the same days)."""

    def __init__(self, size: int = 16384):
        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict = OrderedDict()

    def get(self, seed: int, account: Account, deployment: Deployment, d0: int, ndays: int) -> _DeploymentDays:
        key = (account.id, deployment.name, d0, ndays)
        with self.lock:
            days = self.items.get(key)
            if days is not None:
                self.items.move_to_end(key)
                return days
        days = _DeploymentDays(seed, account, deployment, d0, ndays)
        with self.lock:
            self.items[key] = days
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return days


_QUANTITY_INDEX = {"input_tokens": (0,), "output_tokens": (1,), "total_tokens": (0, 1), "requests": (2,)}


def _day_totals(days: _DeploymentDays, version: str, quantity: str) -> list:
    """Per-day totals of the atom's version, one sequence per component windowed separately: total tokens
    are windowed as input + output (as usage.atom_amount does), everything else as itself."""
    if len(days.distinct) == 1:  # inactive days are already zero
        return [days.components[i] for i in _QUANTITY_INDEX[quantity]]
    return [
        [u if v == version else 0 for u, v in zip(days.components[i], days.versions, strict=False)]
        for i in _QUANTITY_INDEX[quantity]
    ]


def _bucket_positions(d0: int, bounds: list[int]) -> list[tuple[int, int]]:
    base = d0 * MINUTES_PER_DAY
    return [divmod(b - base, MINUTES_PER_DAY) for b in bounds]


def _bucket_values(totals, positions: list[tuple[int, int]]) -> list[int]:
    prefix = [0]
    running = 0
    for t in totals:
        running += t
        prefix.append(running)
    cumulative = _CUMULATIVE
    at = [prefix[k] if m == 0 else prefix[k] + int(totals[k] * cumulative[m]) for k, m in positions]
    return [at[i + 1] - at[i] for i in range(len(at) - 1)]


class MetricsEngine:
    def __init__(self, scenario: Scenario, quirks: Quirks):
        self.scenario = scenario
        self.quirks = quirks
        self.days_cache = _DaysCache()
        self.metric_errors = {}
        for err in scenario.metric_errors:
            self.metric_errors[(err.account.lower(), err.metric.lower())] = err

    def _metric_error(self, account: Account, spec: MetricSpec):
        for key in (account.name.lower(), account.id.lower()):
            err = self.metric_errors.get((key, spec.name.lower()))
            if err is not None:
                return err
        return None

    def resource_values(
        self,
        account: Account,
        specs: list[MetricSpec],
        request: MetricsRequest,
        filters: dict[str, Filter | None],
        window: Window,
    ) -> list[dict]:
        """The `value` array (one Metric object per requested metric) for one resource, as dicts."""
        return [r.to_dict() for r in self.resource_results(account, specs, request, filters, window)]

    def resource_results(
        self,
        account: Account,
        specs: list[MetricSpec],
        request: MetricsRequest,
        filters: dict[str, Filter | None],
        window: Window,
    ) -> list[MetricResult]:
        """One MetricResult per requested metric for one resource (rendered as dicts or JSON text)."""
        seed = self.scenario.seed
        qlo, qhi = window.qlo, window.qhi
        visible = qhi > qlo and window.n > 0
        d0 = qlo // MINUTES_PER_DAY if visible else 0
        ndays = ((qhi - 1) // MINUTES_PER_DAY - d0 + 1) if visible else 0
        day_cache: dict[str, _DeploymentDays] = {}
        positions = _bucket_positions(d0, window.bounds) if visible else []
        requested_aggs = request.aggregations or ["total"]
        unsupported = [a for a in requested_aggs if a != "total"]
        want_total = "total" in requested_aggs
        fill_zero = self.scenario.fill_gaps_with_zero and want_total
        out = []
        for spec in specs:
            item = MetricResult(account.id, spec, window, request.metadata_only, want_total, fill_zero)
            err = self._metric_error(account, spec)
            if err is not None:
                item.error_code, item.error_message = err.code, err.message
                out.append(item)
                continue
            if spec.is_percentage:
                out.append(self._utilization_result(account, spec, request, filters.get(spec.name), window))
                continue
            if unsupported and self.quirks.unsupported_aggregation == "error":
                agg = unsupported[0]
                item.error_code = "InvalidSamplingType"
                item.error_message = (
                    f"Sampling type is not found. Metric:{spec.name}, SamplingType:Nullable{agg.capitalize()}."
                )
                out.append(item)
                continue
            flt = filters.get(spec.name)
            # A dimension the metric defines but that yields nothing when split or filtered on (switch).
            silent = flt is not None and bool(self.quirks.empty_split(spec.name) & set(flt.constraints))
            split_dims = []
            if flt is not None:
                split_dims = [c.dimension for k, c in flt.constraints.items() if k not in request.rollupby]
            split_lower = [d.lower() for d in split_dims]
            groups: dict[tuple, list[int]] = {}
            if visible and not silent:
                for dep in account.deployments:
                    if spec.family not in account.families_for(dep):
                        continue
                    days = day_cache.get(dep.name)
                    if days is None:
                        days = day_cache[dep.name] = self.days_cache.get(seed, account, dep, d0, ndays)
                    mixed = spec.quantity == "requests" and dep.requests_mix is not None
                    for version, request_class in (
                        [(v, c) for v in days.distinct for c in _usage.MIX_CLASSES]
                        if mixed
                        else [(v, None) for v in days.distinct]
                    ):
                        atom = _usage.Atom(
                            dep, version, _usage._dimension_values(spec, dep, version, request_class), request_class
                        )
                        if flt is not None and not all(c.matches(atom.value_of(k)) for k, c in flt.constraints.items()):
                            continue
                        if request_class is not None:
                            components = [
                                t for t in [self._class_days(account, dep, days, d0, version, request_class)] if any(t)
                            ]
                        else:
                            components = [t for t in _day_totals(days, version, spec.quantity) if any(t)]
                        if not components:
                            continue
                        values = _bucket_values(components[0], positions)
                        for extra in components[1:]:
                            values = [a + b for a, b in zip(values, _bucket_values(extra, positions), strict=False)]
                        key = tuple(atom.value_of(k) for k in split_lower)
                        acc = groups.get(key)
                        if acc is None:
                            groups[key] = values
                        else:
                            groups[key] = [a + b for a, b in zip(acc, values, strict=False)]
            series = [(key, values, sum(values)) for key, values in groups.items() if any(values)]
            if flt is None and not series and self.quirks.unfiltered_without_data == "series" and window.n:
                series = [((), [0] * window.n, 0)]
            if request.order_desc:
                series.sort(key=lambda s: (-s[2], s[0]))
            else:
                series.sort(key=lambda s: (s[2], s[0]))
            if flt is not None:
                series = series[: request.top]
            if self.quirks.max_datapoints is not None and len(series) * window.n > self.quirks.max_datapoints:
                raise QueryError(
                    f"The query would return {len(series) * window.n} data points, more than the "
                    f"allowed {self.quirks.max_datapoints}. Reduce the timespan or use a larger "
                    f"interval{trace_suffix()}"
                )
            item.dimensions = split_lower
            item.series = [(key, values) for key, values, _total in series]
            out.append(item)
        return out

    def _class_days(
        self,
        account: Account,
        deployment: Deployment,
        days: _DeploymentDays,
        d0: int,
        version: str,
        request_class: _usage.RequestClass,
    ) -> list[int]:
        """Per-day requests of one class (0 on days of another version)."""
        seed = self.scenario.seed
        out = []
        for k, day_version in enumerate(days.versions):
            if day_version != version:
                out.append(0)
                continue
            day = date.fromordinal(_EPOCH_ORDINAL + d0 + k)
            out.append(dict(_usage.request_classes(seed, account, deployment, day)).get(request_class, 0))
        return out

    def _utilization_result(
        self, account: Account, spec: MetricSpec, request: MetricsRequest, flt: Filter | None, window: Window
    ) -> PercentResult:
        """A utilisation metric: each minute reports its hour's average and maximum (usage.hourly_utilization),
        so a bucket's Average is the minute-weighted mean over the visible minutes and its Maximum the largest."""
        wanted = [a for a in (request.aggregations or ["average"])]
        item = PercentResult(account.id, spec, window, request.metadata_only, wanted)
        unsupported = [a for a in wanted if a not in ("average", "maximum", "minimum")]
        if unsupported and self.quirks.unsupported_aggregation == "error":
            item.error_code = "InvalidSamplingType"
            item.error_message = (
                f"Sampling type is not found. Metric:{spec.name}, SamplingType:Nullable{unsupported[0].capitalize()}."
            )
            return item
        split = [c.dimension for k, c in flt.constraints.items() if k not in request.rollupby] if flt else []
        split_lower = [d.lower() for d in split]
        groups: dict[tuple, list[list[tuple[int, float, float]]]] = {}
        if window.qhi > window.qlo and window.n:
            for dep in account.deployments:
                if dep.provisioned is None or spec.family not in account.families_for(dep):
                    continue
                per_version: dict[str, list[list[tuple[int, float, float]]]] = {}
                for i in range(window.n):
                    lo, hi = window.bounds[i], window.bounds[i + 1]
                    for minute_hour in range(lo // 60, (hi - 1) // 60 + 1 if hi > lo else lo // 60):
                        day = date.fromordinal(_EPOCH_ORDINAL + (minute_hour * 60) // MINUTES_PER_DAY)
                        hours = _usage.hourly_utilization(self.scenario.seed, account, dep, day)
                        if not hours:
                            continue
                        overlap = min(hi, (minute_hour + 1) * 60) - max(lo, minute_hour * 60)
                        average, maximum = hours[minute_hour % 24]
                        buckets = per_version.setdefault(dep.version_on(day), [[] for _ in range(window.n)])
                        buckets[i].append((overlap, average, maximum))
                for version, buckets in per_version.items():
                    atom = _usage.Atom(dep, version, _usage._dimension_values(spec, dep, version))
                    if flt is not None and not all(c.matches(atom.value_of(k)) for k, c in flt.constraints.items()):
                        continue
                    key = tuple(atom.value_of(k) for k in split_lower)
                    acc = groups.setdefault(key, [[] for _ in range(window.n)])
                    for i, bucket in enumerate(buckets):
                        acc[i].extend(bucket)
        series = [
            (key, [_percent_point(bucket) for bucket in buckets]) for key, buckets in groups.items() if any(buckets)
        ]
        first = wanted[0] if wanted else "average"
        series.sort(
            key=lambda s: (
                -sum(p.get(first, 0.0) for p in s[1] if p)
                if request.order_desc
                else sum(p.get(first, 0.0) for p in s[1] if p),
                s[0],
            )
        )
        if flt is not None:
            series = series[: request.top]
        item.dimensions = split_lower
        item.series = series
        return item


def _percent_point(bucket: list[tuple[int, float, float]]) -> dict[str, float] | None:
    minutes = sum(m for m, _a, _x in bucket)
    if not minutes:
        return None
    return {
        "average": sum(m * a for m, a, _x in bucket) / minutes,
        "maximum": max(x for _m, _a, x in bucket),
        "minimum": min(a for _m, a, _x in bucket),
    }


class PercentResult:
    """A percentage metric of one resource (Average / Maximum / Minimum per point)."""

    def __init__(self, resource_id: str, spec: MetricSpec, window: Window, metadata_only: bool, wanted: list[str]):
        self.resource_id = resource_id
        self.spec = spec
        self.window = window
        self.metadata_only = metadata_only
        self.wanted = wanted
        self.error_code = "Success"
        self.error_message: str | None = None
        self.dimensions: list[str] = []
        self.series: list[tuple[tuple, list[dict[str, float] | None]]] = []

    def to_dict(self, sample: bool = False) -> dict:
        item = {
            "id": f"{self.resource_id}/providers/Microsoft.Insights/metrics/{self.spec.name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": self.spec.name, "localizedValue": self.spec.display_name},
            "displayDescription": self.spec.description,
            "unit": self.spec.unit,
        }
        series = self.series[:3] + self.series[-2:] if sample and len(self.series) > 5 else self.series
        timeseries = []
        for key, points in series:
            element: dict = {
                "metadatavalues": [
                    {"name": {"value": d, "localizedValue": d}, "value": v}
                    for d, v in zip(self.dimensions, key, strict=False)
                ]
            }
            if not self.metadata_only:
                pairs = list(zip(self.window.timestamps, points, strict=False))
                if sample and len(pairs) > 6:
                    pairs = pairs[:3] + pairs[-3:]
                element["data"] = [
                    {"timeStamp": ts, **({a: p[a] for a in self.wanted if a in p} if p else {})} for ts, p in pairs
                ]
            timeseries.append(element)
        item["timeseries"] = timeseries
        item["errorCode"] = self.error_code
        if self.error_message is not None:
            item["errorMessage"] = self.error_message
        return item

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


def _number(v: int) -> str:
    """json.dumps(float(v)) for an int, without the float round trip when it is exact."""
    return f"{v}.0" if -(10**15) < v < 10**15 else json.dumps(float(v))


class MetricResult:
    """One metric of one resource: rendered either as a dict (tests, validation) or straight to JSON text
    (the server: a 50-resource, 90-day batch answer is ~10 MB, too slow through dicts and json.dumps)."""

    __slots__ = (
        "resource_id",
        "spec",
        "window",
        "metadata_only",
        "want_total",
        "fill_zero",
        "error_code",
        "error_message",
        "dimensions",
        "series",
    )

    def __init__(
        self, resource_id: str, spec: MetricSpec, window: Window, metadata_only: bool, want_total: bool, fill_zero: bool
    ):
        self.resource_id = resource_id
        self.spec = spec
        self.window = window
        self.metadata_only = metadata_only
        self.want_total = want_total
        self.fill_zero = fill_zero
        self.error_code = "Success"
        self.error_message: str | None = None
        self.dimensions: list[str] = []
        self.series: list[tuple[tuple, list[int]]] = []

    def _head(self) -> dict:
        return {
            "id": f"{self.resource_id}/providers/Microsoft.Insights/metrics/{self.spec.name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": self.spec.name, "localizedValue": self.spec.display_name},
            "displayDescription": self.spec.description,
            "unit": "Count",
        }

    def _metadata(self, key: tuple) -> list[dict]:
        return [
            {"name": {"value": d, "localizedValue": d}, "value": v} for d, v in zip(self.dimensions, key, strict=False)
        ]

    def to_dict(self, sample: bool = False) -> dict:
        item = self._head()
        series = self.series
        if sample and len(series) > 5:
            series = series[:3] + series[-2:]
        stamps = self.window.timestamps
        timeseries = []
        for key, values in series:
            element = {"metadatavalues": self._metadata(key)}
            if not self.metadata_only:
                pairs = list(zip(stamps, values, strict=False))
                if sample and len(pairs) > 6:
                    pairs = pairs[:3] + pairs[-3:]
                if not self.want_total:
                    element["data"] = [{"timeStamp": ts} for ts, _v in pairs]
                elif self.fill_zero:
                    element["data"] = [{"timeStamp": ts, "total": float(v)} for ts, v in pairs]
                else:
                    element["data"] = [
                        {"timeStamp": ts, "total": float(v)} if v else {"timeStamp": ts} for ts, v in pairs
                    ]
            timeseries.append(element)
        item["timeseries"] = timeseries
        item["errorCode"] = self.error_code
        if self.error_message is not None:
            item["errorMessage"] = self.error_message
        return item

    def to_json(self) -> str:
        head = json.dumps(self._head(), ensure_ascii=False, separators=(",", ":"))[:-1]
        window = self.window
        parts = []
        for key, values in self.series:
            meta = json.dumps(self._metadata(key), ensure_ascii=False, separators=(",", ":"))
            if self.metadata_only:
                parts.append(f'{{"metadatavalues":{meta}}}')
                continue
            if not self.want_total:
                data = ",".join(window.json_empty)
            elif self.fill_zero:
                data = ",".join([f + _number(v) + "}" for f, v in zip(window.json_total, values, strict=False)])
            else:
                data = ",".join(
                    [
                        f + _number(v) + "}" if v else e
                        for f, e, v in zip(window.json_total, window.json_empty, values, strict=False)
                    ]
                )
            parts.append(f'{{"metadatavalues":{meta},"data":[{data}]}}')
        tail = ',"errorCode":' + json.dumps(self.error_code, ensure_ascii=False)
        if self.error_message is not None:
            tail += ',"errorMessage":' + json.dumps(self.error_message, ensure_ascii=False)
        return f'{head},"timeseries":[{",".join(parts)}]{tail}}}'


class JsonDoc:
    """A response body holding MetricResults inside plain JSON structure; renders to text fast and to a
    dict on demand (full, or a structural sample for spec validation)."""

    def __init__(self, obj):
        self.obj = obj
        self._full = None

    def render(self) -> str:
        return _render(self.obj)

    def to_obj(self, sample: bool = False):
        if not sample:
            if self._full is None:
                self._full = _to_obj(self.obj, False)
            return self._full
        return _to_obj(self.obj, True)

    def points(self) -> int:
        return _points(self.obj)

    def __getitem__(self, key):
        return self.to_obj()[key]

    def __contains__(self, key) -> bool:
        return key in self.to_obj()

    def get(self, key, default=None):
        return self.to_obj().get(key, default)


def _render(value) -> str:
    if isinstance(value, (MetricResult, PercentResult)):
        return value.to_json()
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _render(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _points(value) -> int:
    if isinstance(value, (MetricResult, PercentResult)):
        return len(value.series) * (0 if value.metadata_only else value.window.n)
    if isinstance(value, dict):
        return sum(_points(v) for v in value.values())
    if isinstance(value, list):
        return sum(_points(v) for v in value)
    return 0


def _to_obj(value, sample: bool):
    if isinstance(value, (MetricResult, PercentResult)):
        return value.to_dict(sample)
    if isinstance(value, dict):
        return {k: _to_obj(v, sample) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_obj(v, sample) for v in value]
    return value
