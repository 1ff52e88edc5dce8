"""Parsing of Azure Monitor metrics query parameters: timespan, interval, aggregation, top, orderby, $filter.

Shared by the per-resource ARM API and getBatch. Every problem raises QueryError with Azure's text where
it is known (Azure Monitor's documented error texts); the caller decides whether the body is flat or wrapped.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .timeutil import format_timespan_dotnet, parse_datetime, parse_duration

SUPPORTED_GRAINS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
)
MAX_METRIC_NAMES = 20
MAX_TOP = 2147483647
AGGREGATIONS = {
    "average": "average",
    "avg": "average",
    "minimum": "minimum",
    "min": "minimum",
    "maximum": "maximum",
    "max": "maximum",
    "total": "total",
    "sum": "total",
    "count": "count",
}


class QueryError(Exception):
    def __init__(self, message: str, code: str = "BadRequest", status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def trace_suffix() -> str:
    return f", TraceId: {{{uuid.uuid4()}}}"


# ---- time ------------------------------------------------------------------------------------------------


def _invalid_timespan(raw: str) -> QueryError:
    return QueryError(
        f"Detected invalid time interval input: {raw}, supported Iso 8601 time interval format: "
        "(Datetime/Datetime, Datetime/Duration, Duration/Datetime, Duration)"
    )


def parse_timespan(raw: str | None, now: datetime) -> tuple[datetime, datetime]:
    """ARM `timespan`: Datetime/Datetime, Datetime/Duration, Duration/Datetime or Duration (ending now)."""
    if raw is None or raw == "":
        return now - timedelta(hours=1), now
    parts = raw.split("/")
    if len(parts) == 1:
        duration = parse_duration(parts[0])
        if duration is None:
            raise _invalid_timespan(raw)
        start, end = now - duration, now
    elif len(parts) == 2:
        a_dt, b_dt = parse_datetime(parts[0]), parse_datetime(parts[1])
        a_du, b_du = parse_duration(parts[0]), parse_duration(parts[1])
        if a_dt and b_dt:
            start, end = a_dt, b_dt
        elif a_dt and b_du:
            start, end = a_dt, a_dt + b_du
        elif a_du and b_dt:
            start, end = b_dt - a_du, b_dt
        else:
            raise _invalid_timespan(raw)
    else:
        raise _invalid_timespan(raw)
    if end <= start:
        raise _invalid_timespan(raw)
    return start, end


def parse_batch_times(starttime: str | None, endtime: str | None, now: datetime) -> tuple[datetime, datetime]:
    """getBatch `starttime`/`endtime`: endtime defaults to now; neither means the last hour."""
    if not starttime and not endtime:
        return now - timedelta(hours=1), now
    if not starttime:
        raise QueryError("Detected invalid time range parameters: starttime is required when endtime is specified.")
    start = parse_datetime(starttime)
    if start is None:
        raise QueryError(f"Detected invalid starttime input: {starttime}, expected format: yyyy-MM-ddTHH:mm:ss.fffZ")
    end = now
    if endtime:
        end = parse_datetime(endtime)
        if end is None:
            raise QueryError(f"Detected invalid endtime input: {endtime}, expected format: yyyy-MM-ddTHH:mm:ss.fffZ")
    if end <= start:
        raise QueryError(
            f"Detected invalid time range: starttime {starttime} must be earlier than endtime {endtime or 'now'}."
        )
    return start, end


def _grain_error(raw: str) -> QueryError:
    supported = ",".join(format_timespan_dotnet(g) for g in SUPPORTED_GRAINS)
    return QueryError(f"Invalid time grain duration: {raw}, supported ones are: {supported}")


def parse_interval(raw: str | None, auto_adjust: bool) -> timedelta | None:
    """None means FULL. Unsupported grains are a 400 unless AutoAdjustTimegrain picks the closest one."""
    if raw is None or raw == "":
        return SUPPORTED_GRAINS[0]
    if raw.strip().upper() == "FULL":
        return None
    grain = parse_duration(raw)
    if grain is None:
        raise _grain_error(raw)
    if grain in SUPPORTED_GRAINS:
        return grain
    if auto_adjust:
        return min(SUPPORTED_GRAINS, key=lambda g: (abs((g - grain).total_seconds()), -g.total_seconds()))
    raise _grain_error(raw)


# ---- simple parameters -----------------------------------------------------------------------------------


def parse_metric_names(raw: str | None) -> list[str]:
    if raw is None or raw.strip() == "":
        raise QueryError("Metric names must be specified (metricnames).")
    # A literal comma inside a name is sent as %2 by the SDKs.
    names = [n.strip().replace("%2", ",") for n in raw.split(",") if n.strip()]
    if len(names) > MAX_METRIC_NAMES:
        raise QueryError(f"Requested metrics count: {len(names)} bigger than allowed max: {MAX_METRIC_NAMES}")
    return names


def parse_aggregations(raw: str | None) -> list[str] | None:
    """Canonical lower-case aggregation names; None when the parameter is absent (primary aggregation)."""
    if raw is None or raw.strip() == "":
        return None
    out = []
    for item in raw.split(","):
        key = item.strip().lower()
        if not key:
            continue
        if key == "none":
            continue
        if key not in AGGREGATIONS:
            raise QueryError(
                f"Invalid aggregation type: {item.strip()}, supported ones are: "
                "None,Average,Count,Minimum,Maximum,Total"
            )
        if AGGREGATIONS[key] not in out:
            out.append(AGGREGATIONS[key])
    return out or None


def parse_top(raw: str | None) -> int:
    if raw is None or raw == "":
        return 10
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 1 or value > MAX_TOP:
        raise QueryError(f"Detected invalid TopN value: {raw}, should be Int value between 1 and {MAX_TOP}")
    return value


def parse_orderby(raw: str | None, default: str) -> tuple[str, bool]:
    """(aggregation, descending)."""
    text = (raw if raw not in (None, "") else default).strip()
    parts = text.split()
    if not parts or len(parts) > 2 or parts[0].lower() not in AGGREGATIONS:
        raise QueryError(f"Invalid orderby value: {raw}. Expected '<aggregation> [asc|desc]', e.g. 'sum asc'.")
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if direction not in ("asc", "desc"):
        raise QueryError(f"Invalid orderby value: {raw}. Expected '<aggregation> [asc|desc]', e.g. 'sum asc'.")
    return AGGREGATIONS[parts[0].lower()], direction == "desc"


def parse_bool(raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise QueryError(f"Invalid boolean value: {raw}")


# ---- $filter ---------------------------------------------------------------------------------------------


@dataclass
class Condition:
    dimension: str  # as written (decoded)
    op: str  # eq | ne | sw
    value: str  # '*' means every value

    @property
    def key(self) -> str:
        return self.dimension.lower()


@dataclass
class DimensionConstraint:
    """The OR-group(s) on one dimension; several AND-ed groups on the same dimension intersect."""

    dimension: str
    groups: list[list[Condition]] = field(default_factory=list)

    def matches(self, value: str) -> bool:
        folded = value.casefold()
        for group in self.groups:
            if not any(_cond_matches(c, folded) for c in group):
                return False
        return True


def _cond_matches(cond: Condition, folded: str) -> bool:
    if cond.value == "*":
        return cond.op != "ne"
    target = cond.value.casefold()
    if cond.op == "eq":
        return folded == target
    if cond.op == "ne":
        return folded != target
    return folded.startswith(target)


@dataclass
class Filter:
    constraints: dict[str, DimensionConstraint]  # lower-cased dimension name -> constraint, in filter order

    @property
    def dimensions(self) -> list[str]:
        return [c.dimension for c in self.constraints.values()]


def _decode_brackets(text: str) -> str:
    for encoded, char in (("%2528", "("), ("%2529", ")"), ("%28", "("), ("%29", ")")):
        text = text.replace(encoded, char)
    return text


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append((ch, ch))
            i += 1
        elif ch in "'\u2018\u2019":
            close = "'" if ch == "'" else "\u2019"
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise QueryError(f"Invalid filter: unterminated string literal in '{text}'")
                if text[i] == close or (close == "'" and text[i] == "\u2019"):
                    if close == "'" and i + 1 < n and text[i + 1] == "'":
                        buf.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(text[i])
                i += 1
            tokens.append(("str", "".join(buf)))
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "()'":
                j += 1
            tokens.append(("word", text[i:j]))
            i = j
    return tokens


_OPS = ("eq", "ne", "sw")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def error(self, detail: str) -> QueryError:
        return QueryError(f"Invalid filter: {detail}. Filter: {self.text}")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def is_word(self, word: str) -> bool:
        kind, value = self.peek()
        return kind == "word" and value.lower() == word

    def parse(self) -> list[list[Condition]]:
        groups = self.and_expr()
        if self.pos != len(self.tokens):
            raise self.error(f"unexpected '{self.peek()[1]}'")
        return groups

    def and_expr(self) -> list[list[Condition]]:
        groups = self.or_group()
        while self.is_word("and"):
            self.take()
            groups.extend(self.or_group())
        return groups

    def or_group(self) -> list[list[Condition]]:
        items = [self.primary()]
        while self.is_word("or"):
            self.take()
            items.append(self.primary())
        if len(items) == 1:
            return items[0]
        merged: list[Condition] = []
        for groups in items:
            if len(groups) != 1:
                raise self.error("the logical 'or' operator cannot separate two different metadata names")
            merged.extend(groups[0])
        names = {c.key for c in merged}
        if len(names) > 1:
            raise self.error("the logical 'or' operator cannot separate two different metadata names")
        if any(c.op != "eq" for c in merged):
            raise QueryError("Only 'eq' operator are supported for 'or' clause")
        return [merged]

    def primary(self) -> list[list[Condition]]:
        kind, _ = self.peek()
        if kind == "(":
            self.take()
            groups = self.and_expr()
            if self.take()[0] != ")":
                raise self.error("missing ')'")
            return groups
        return [[self.condition()]]

    def condition(self) -> Condition:
        name_parts = []
        while True:
            kind, value = self.peek()
            if kind is None:
                raise self.error("expected '<dimension> eq <value>'")
            if kind == "word" and value.lower() in _OPS and name_parts:
                break
            if kind != "word":
                raise self.error("expected a dimension name")
            name_parts.append(value)
            self.take()
        op = self.take()[1].lower()
        kind, value = self.take()
        if kind == "str":
            literal = value
        elif kind == "word" and value.lower() not in ("and", "or"):
            literal = value
        else:
            raise self.error(f"expected a value after '{op}'")
        return Condition(_decode_brackets(" ".join(name_parts)), op, _decode_brackets(literal))


def parse_filter(raw: str | None) -> Filter | None:
    if raw is None or raw.strip() == "":
        return None
    groups = _Parser(raw).parse()
    constraints: dict[str, DimensionConstraint] = {}
    for group in groups:
        key = group[0].key
        constraint = constraints.setdefault(key, DimensionConstraint(group[0].dimension))
        constraint.groups.append(group)
    for constraint in constraints.values():
        # `D sw 'a' and D sw 'b'`: Azure answers 400 with this text (grafana/grafana#128316, verified live);
        # `D sw 'a' or D sw 'b'` is refused earlier as an 'or' of a non-eq operator.
        if sum(1 for group in constraint.groups for c in group if c.op == "sw") > 1:
            raise QueryError("Dimension name detected in multiple 'sw' values")
    return Filter(constraints)


def buckets_count(start_minute: int, end_minute: int, grain_minutes: int) -> int:
    return max(0, math.ceil((end_minute - start_minute) / grain_minutes))
