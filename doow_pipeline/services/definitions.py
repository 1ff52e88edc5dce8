"""Each account's metricDefinitions, read once and kept in the landing zone, not read again on every run.

metricDefinitions change rarely (a new model family, PTU utilisation when a provisioned deployment is added) and
Azure throttles them (about 400 per 5 minutes per principal): reading them for every account on every run made
1,000 of the 1,072 calls of a 1,000-account backfill. So a fetch keeps, per connection, the facts each plan is
made of ({metric name: its dimensions}, filtered to the token, request and utilisation metrics; no secret) in
`definitions/connection=<c>.json` (`Landing.definitions`), and reads an account's definitions only when:
- the account is new (not in the file),
- its entry is older than its refresh age: `settings.definitions_max_age_days`, shortened per account by up to
  half, by a fraction fixed by its resource id, so the accounts of one backfill do not all expire on the same
  day (0: read every run),
- Azure answers that a metric or dimension of the stored plan is not defined (the definitions changed before
  the refresh age): the fetch re-reads the accounts of that query and asks again, once,
- or the metrics API answered 404 for it (a moved or re-created account): its entry is dropped, so the next
  fetch reads it as new.
A corrupt file is ignored with a WARN event (every account is read, and the file rewritten). Concurrent fetches of
one connection both write the file: the entry read last wins, and nothing worse than a re-read can follow.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..azure.metric_definitions import AccountPlan, plan_from, read_definitions
from ..azure.session import AzureSession
from ..core.events import Level, SyncEvent
from ..core.problems import UNREADABLE_CODES, AzureError, Problem
from ..core.scope import Account
from ..core.workers import worker_pool
from ..warehouse.landing import CorruptLandingFile, Landing

FORMAT_VERSION = 1
JITTER_SHARE = 0.5  # an entry is refreshed after between (1 - JITTER_SHARE) and 1 x the maximum age
CORRUPT_DEFINITIONS = "corrupt_landing_file"


@dataclass(frozen=True)
class StoredDefinitions:
    """One account's definitions as metricDefinitions listed them, and when they were read."""

    resource_id: str
    read_at: datetime
    metrics: dict[str, frozenset[str]]  # metric name -> dimension names

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "read_at": self.read_at.isoformat(),
            "metrics": {name: sorted(dims) for name, dims in sorted(self.metrics.items())},
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> StoredDefinitions:
        metrics = entry["metrics"]
        if not isinstance(metrics, dict) or not all(isinstance(d, list) for d in metrics.values()):
            raise ValueError("metrics must map each metric name to a list of dimensions")
        read_at = datetime.fromisoformat(entry["read_at"])
        if read_at.tzinfo is None:
            raise ValueError("read_at must carry its time zone")
        return cls(str(entry["resource_id"]), read_at, {str(n): frozenset(map(str, d)) for n, d in metrics.items()})


def refresh_age(resource_id: str, max_age: timedelta) -> timedelta:
    """How long an account's stored definitions are used: `max_age` shortened by a fraction (up to JITTER_SHARE)
    fixed by the resource id, so entries read together expire over several days."""
    digest = hashlib.sha256(resource_id.lower().encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return max_age * (1 - JITTER_SHARE * fraction)


class DefinitionsStore:
    """One connection's stored definitions for one fetch: loaded at its start, saved at its end."""

    def __init__(self, landing: Landing, connection: str, now: datetime, max_age_days: int):
        self.landing = landing
        self.connection = connection
        self.now = now
        self.max_age = timedelta(days=max_age_days)
        self.events: list[SyncEvent] = []
        self.read: set[str] = set()  # accounts (lower-case ids) whose definitions this fetch read from Azure
        self._entries: dict[str, StoredDefinitions] = {}
        self._forgotten: set[str] = set()
        self._lock = threading.Lock()
        self._entries = self._load()

    def _load(self) -> dict[str, StoredDefinitions]:
        try:
            payload = self.landing.definitions(self.connection)
            if payload is None:
                return {}
            if payload.get("version") != FORMAT_VERSION or not isinstance(payload.get("accounts"), dict):
                raise CorruptLandingFile(self.landing.definitions_path(self.connection), "not a definitions file")
            entries = {}
            for key, entry in payload["accounts"].items():
                try:
                    entries[key.lower()] = StoredDefinitions.from_json(entry)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise CorruptLandingFile(
                        self.landing.definitions_path(self.connection), f"entry {key}: {exc}"
                    ) from None
            return entries
        except CorruptLandingFile as exc:
            self.events.append(
                SyncEvent(
                    Level.WARN,
                    CORRUPT_DEFINITIONS,
                    f"corrupt definitions file {exc.path}: {exc.reason}; ignored: every account's metric "
                    "definitions are read again and the file is rewritten.",
                )
            )
            return {}

    def stored(self, account: Account) -> StoredDefinitions | None:
        return self._entries.get(account.resource_id.lower())

    def due(self, account: Account) -> bool:
        """Whether the account's definitions must be read: new, or past its refresh age."""
        entry = self.stored(account)
        return entry is None or self.now - entry.read_at >= refresh_age(account.resource_id, self.max_age)

    def plan(self, session: AzureSession, account: Account, *, refresh: bool = False) -> AccountPlan | Problem:
        """The account's plan from its stored definitions, or read from Azure when due (or `refresh`); the
        Problem when Azure refuses its definitions (403/404)."""
        entry = None if refresh else self.stored(account)
        if entry is not None and not self.due(account):
            return plan_from(account, {name: set(dims) for name, dims in entry.metrics.items()})
        try:
            definitions = read_definitions(session, account)
        except AzureError as exc:
            if exc.problem.code not in UNREADABLE_CODES:
                raise
            self.forget([account.resource_id])
            return exc.problem
        key = account.resource_id.lower()
        with self._lock:
            self.read.add(key)
            self._forgotten.discard(key)
            self._entries[key] = StoredDefinitions(
                account.resource_id, self.now, {name: frozenset(dims) for name, dims in definitions.items()}
            )
        return plan_from(account, definitions)

    def plan_all(
        self, session: AzureSession, accounts: list[Account], concurrency: int, *, refresh: bool = False
    ) -> list[AccountPlan | Problem]:
        with worker_pool(concurrency, "doow-definitions") as pool:
            return list(pool.map(lambda account: self.plan(session, account, refresh=refresh), accounts))

    def forget(self, resource_ids: Iterable[str]) -> None:
        """Drops the entries of these accounts: the next fetch reads their definitions again."""
        with self._lock:
            for resource_id in resource_ids:
                self._entries.pop(resource_id.lower(), None)
                self._forgotten.add(resource_id.lower())

    def save(self, accounts: list[Account]) -> None:
        """Writes the entries of the accounts in scope (atomically), merged with what another fetch of the
        connection wrote meanwhile (the entry read last wins)."""
        in_scope = {a.resource_id.lower() for a in accounts}
        merged: dict[str, StoredDefinitions] = {}
        try:
            on_disk = self.landing.definitions(self.connection)
        except CorruptLandingFile:
            on_disk = None
        if on_disk is not None and on_disk.get("version") == FORMAT_VERSION:
            for key, entry in (on_disk.get("accounts") or {}).items():
                try:
                    merged[key.lower()] = StoredDefinitions.from_json(entry)
                except (KeyError, TypeError, ValueError, AttributeError):
                    continue
        with self._lock:
            for key, entry in self._entries.items():
                kept = merged.get(key)
                if kept is None or kept.read_at <= entry.read_at:
                    merged[key] = entry
            for key in self._forgotten:
                merged.pop(key, None)
        accounts_json = {key: entry.to_json() for key, entry in sorted(merged.items()) if key in in_scope}
        self.landing.write_definitions(self.connection, {"version": FORMAT_VERSION, "accounts": accounts_json})
