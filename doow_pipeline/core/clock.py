"""The pipeline's notion of "now" (UTC), and the one UTC formatting rule.

Production code never reads the wall clock directly: it asks a `Clock`. A clock is real unless a frozen
instant is given explicitly (`settings.frozen_clock` in connections.yaml, or the CLI's `--frozen-clock`):
replays of a past day, the tests and the benchmarks freeze it to the Azure emulator's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC to the second with a `Z`, as Azure Monitor's timespans and batch times take it."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parses ISO 8601 (`Z` or an offset; naive means UTC) into an aware UTC datetime; ValueError otherwise."""
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def day_start(day: date) -> datetime:
    """00:00Z of a UTC day: where daily buckets must start (Azure aligns buckets to the query start)."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class Clock:
    """The real UTC clock, or one frozen at `frozen_at`."""

    frozen_at: datetime | None = None

    def now(self) -> datetime:
        return as_utc(self.frozen_at) if self.frozen_at is not None else datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None


REAL_CLOCK = Clock()
