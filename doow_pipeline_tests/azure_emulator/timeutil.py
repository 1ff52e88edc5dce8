"""Time parsing and formatting the way Azure Monitor writes it: ISO 8601 datetimes and durations, UTC 'Z'."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta | None:
    """ISO 8601 duration (no years or months, like .NET TimeSpan); None when it is not one."""
    text = text.strip()
    match = _DURATION.match(text)
    if not match or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    if not parts:
        return None
    return timedelta(**parts)


def parse_datetime(text: str) -> datetime | None:
    """ISO 8601 datetime; naive values are UTC. None when it is not one."""
    text = text.strip()
    if not text or text[0] in "Pp":
        return None
    candidate = text.replace("z", "Z")
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    # .NET writes 7 fractional digits; Python accepts at most 6.
    candidate = re.sub(r"(\.\d{6})\d+", r"\1", candidate)
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_ts(value: datetime) -> str:
    """'2025-01-01T00:00:00Z' (seconds precision), as bucket timestamps and ARM timespans are written."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_ts_ms(value: datetime) -> str:
    """Seconds precision, plus milliseconds when the value has any (batch starttime/endtime echo)."""
    value = value.astimezone(UTC)
    if value.microsecond // 1000:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return format_ts(value)


def format_duration(delta: timedelta) -> str:
    """ISO 8601 as .NET XmlConvert writes a TimeSpan: P1D, PT1H, PT4H, P1DT2H, PT30M, PT0S."""
    total = int(delta.total_seconds())
    if total <= 0:
        return "PT0S"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{days}D"
    if hours or minutes or seconds:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if seconds:
            out += f"{seconds}S"
    return out


def format_timespan_dotnet(delta: timedelta) -> str:
    """.NET TimeSpan.ToString(): 00:01:00, 1.00:00:00 (used in Azure's time grain error texts)."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    body = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{body}" if days else body


def to_minutes(value: datetime) -> int:
    """Whole minutes since the Unix epoch (floor)."""
    return int((value - EPOCH).total_seconds() // 60)


def from_minutes(minutes: int) -> datetime:
    return EPOCH + timedelta(minutes=minutes)


def utc_now() -> datetime:
    return datetime.now(UTC)
