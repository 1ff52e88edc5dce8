"""One connection's sync of a range of UTC days: Azure -> landing zone (no DuckDB, no Dagster).

The Dagster asset and the CLI call `fetch_connection`; `connection_checks` judges its outcome. Nothing
lands unless the credentials work and the scope could be listed, so a failing sync never replaces good
days with empty ones.

Memory stays flat in the size of the estate: each answer is staged in the landing zone as it arrives (one
piece per answer, a record batch per day), and landing merges each day's batches into that day's file, one day
at a time. The outcome keeps only per-day tallies of what was staged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from ..azure.activity import ActivityExtraction, extract_activity
from ..azure.discovery import discover_accounts
from ..azure.extract import Extraction, drop_refused, extract_usage
from ..azure.metric_definitions import AccountPlan, stale_plan
from ..azure.metrics_api import MetricsReader
from ..azure.session import AzureSession
from ..config import Connection, Settings
from ..core.checks import (
    ACCOUNTS_READABLE,
    CREDENTIALS,
    NO_SERIES_TRUNCATED,
    SYNC_NOT_EMPTY,
    CheckOutcome,
)
from ..core.clock import day_start
from ..core.events import Level, SyncEvent
from ..core.memory import tune_allocator
from ..core.metrics import (
    FAMILY_METRICS,
    POINT_SCHEMA,
    REQUEST_POINT_SCHEMA,
    UTILIZATION_POINT_SCHEMA,
    Quantity,
)
from ..core.phases import PhaseHook, phase
from ..core.problems import (
    ROLE_FIX,
    TROUBLESHOOTING,
    AzureError,
    ExtractionError,
    Problem,
    ProblemCode,
    Symptom,
)
from ..core.scope import Account
from ..warehouse.landing import DayManifest, Landing, StagedKind, StagingRun
from .definitions import DefinitionsStore

LOG = logging.getLogger(__name__)
TOTAL_TOKEN_METRICS = [metrics[Quantity.TOTAL_TOKENS] for metrics in FAMILY_METRICS.values()]
ACTIVITY_SCHEMAS = {StagedKind.REQUESTS: REQUEST_POINT_SCHEMA, StagedKind.UTILIZATION: UTILIZATION_POINT_SCHEMA}


@dataclass(frozen=True)
class DayTally:
    """What a day's extracted points add up to (refused account-days left out), landed or not."""

    points: int
    total_tokens: int  # the TotalTokens-type points summed


@dataclass
class SyncOutcome:
    connection: str
    first_day: date
    last_day: date
    synced_at: datetime
    problem: Problem | None = None  # the credential, role or scope problem that stopped the sync
    accounts: list[Account] = field(default_factory=list)
    plans: list[AccountPlan] = field(default_factory=list)
    extraction: Extraction | None = None
    activity: ActivityExtraction | None = None
    events: list[SyncEvent] = field(default_factory=list)
    rows_per_day: dict[str, int] = field(default_factory=dict)
    definitions_unreadable: dict[str, str] = field(default_factory=dict)
    tallies: dict[date, DayTally] = field(default_factory=dict)  # every day the extraction answered points for

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unreadable(self) -> dict[str, str]:
        """Accounts whose definitions or metrics answered 403/404: resource id -> Azure's message."""
        return {**self.definitions_unreadable, **(self.extraction.unreadable if self.extraction else {})}

    @property
    def readable_accounts(self) -> list[Account]:
        return [a for a in self.accounts if a.resource_id not in self.unreadable]

    @property
    def points(self) -> int:
        return sum(t.points for t in self.tallies.values())

    @property
    def metric_errors(self) -> dict[str, str]:
        return self.extraction.metric_errors if self.extraction else {}

    @property
    def truncated(self) -> list[str]:
        return (self.extraction.truncated if self.extraction else []) + (
            self.activity.truncated if self.activity else []
        )

    @property
    def total_tokens(self) -> int:
        return sum(t.total_tokens for t in self.tallies.values())

    def total_tokens_per_day(self) -> dict[date, int]:
        """The raw TotalTokens-type points summed per UTC day (what the day's landing file holds)."""
        return {day: t.total_tokens for day, t in self.tallies.items()}

    @property
    def role_missing_everywhere(self) -> bool:
        """Every account in scope refused its metrics: the principal lacks Monitoring Reader on all of them."""
        return bool(self.accounts) and len(self.unreadable) == len(self.accounts)


def is_final(day: date, synced_at: datetime, settle_hours: int) -> bool:
    """A day is final once `settle_hours` have passed since its end: late metrics have arrived by then."""
    return synced_at >= day_start(day + timedelta(days=1)) + timedelta(hours=settle_hours)


def _plan_accounts(
    session: AzureSession,
    outcome: SyncOutcome,
    concurrency: int,
    store: DefinitionsStore,
    accounts: list[Account] | None = None,
    refresh: bool = False,
) -> list[AccountPlan]:
    """Each account's plan (default: every account in scope): from its stored definitions, or read from Azure
    (new, due, or `refresh`), `concurrency` at a time."""
    accounts = outcome.accounts if accounts is None else accounts
    results = store.plan_all(session, accounts, concurrency, refresh=refresh)
    plans = []
    for account, plan in zip(accounts, results, strict=True):
        if isinstance(plan, Problem):
            outcome.events.append(
                SyncEvent(
                    Level.WARN,
                    ProblemCode.ACCOUNT_UNREADABLE,
                    f"cannot read metric definitions: {plan}",
                    account.resource_id,
                )
            )
            outcome.definitions_unreadable[account.resource_id] = plan.detail
            continue
        if not plan.queries:
            outcome.events.append(
                SyncEvent(
                    Level.WARN,
                    ProblemCode.NO_TOKEN_METRICS,
                    "the account defines no Azure OpenAI or Models token metrics",
                    account.resource_id,
                )
            )
        plans.append(plan)
    return plans


def _extract(
    session: AzureSession,
    outcome: SyncOutcome,
    settings: Settings,
    store: DefinitionsStore,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    landing: Landing,
    staging: StagingRun,
) -> Extraction:
    """Extracts the outcome's plans, each answer staged as it arrives; when Azure answers that a metric or
    dimension of a stored plan is not defined (the account's definitions changed since they were stored),
    re-reads the definitions of the accounts of that query and extracts again (each account re-read at most
    once per sync), from an empty staging so no answer is staged twice."""

    def extract() -> Extraction:
        landing.discard_staged(staging, StagedKind.POINTS)
        return extract_usage(
            MetricsReader(session),
            outcome.plans,
            outcome.first_day,
            outcome.last_day,
            now=outcome.synced_at,
            top=settings.top,
            concurrency=settings.concurrency,
            log=log.info,
            sink=lambda points: landing.stage(staging, StagedKind.POINTS, points),
        )

    refreshed: set[str] = set()
    while True:
        try:
            return extract()
        except ExtractionError as exc:
            cause = exc.__cause__
            asked = {rid.lower() for rid in exc.resource_ids}
            stale = [
                a
                for a in outcome.accounts
                if a.resource_id.lower() in asked and a.resource_id.lower() not in store.read | refreshed
            ]
            if not (isinstance(cause, AzureError) and stale_plan(cause.problem) and stale):
                raise
            log.warning(
                f"definitions: Azure no longer defines a metric or dimension of the stored plan of "
                f"{len(stale)} account(s) ({cause.problem.detail[:200]}); reading their definitions again"
            )
            again = {a.resource_id.lower() for a in stale}
            refreshed |= again
            kept = [p for p in outcome.plans if p.account.resource_id.lower() not in again]
            outcome.plans = kept + _plan_accounts(session, outcome, settings.concurrency, store, stale, refresh=True)


def _extraction_problem(exc: ExtractionError) -> Problem:
    cause = exc.__cause__
    if isinstance(cause, AzureError):
        return cause.problem.with_detail(str(exc))
    return Problem(
        ProblemCode.EXTRACTION_FAILED,
        f"{exc}.",
        "Re-sync these days later; if it persists, check the Azure status page and `doow-azure doctor <connection>`.",
    )


def fetch_connection(
    session: AzureSession,
    connection: Connection,
    settings: Settings,
    landing: Landing,
    first_day: date,
    last_day: date,
    now: datetime,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = LOG,
    on_phase: PhaseHook | None = None,
    record_extraction_failure: bool = False,
) -> SyncOutcome:
    """Token, discovery, definitions, extraction, then the landed days and the run's events.

    A metrics query that still fails after the SDK's retries raises `ExtractionError` (so the caller may retry
    the step), unless `record_extraction_failure`: then it becomes the outcome's problem, like a credential
    problem, and nothing lands (the connection's previous days stay)."""
    tune_allocator()  # before this sync's threads exist: freed answers go back to the system (core/memory.py)
    outcome = SyncOutcome(connection.name, first_day, last_day, synced_at=now)
    landing.check_access(connection.name)
    try:
        with phase(on_phase, "discovery"):
            session.token()
            outcome.accounts = discover_accounts(session, connection.parsed_scope)
    except AzureError as exc:
        outcome.problem = exc.problem
        outcome.events.append(SyncEvent(Level.ERROR, exc.problem.code, str(exc.problem)))
        log.error(f"connection {connection.name}: {exc.problem}")
        _land_events(landing, outcome)
        return outcome
    log.info(f"discovery: {len(outcome.accounts)} Azure OpenAI account(s) in scope {connection.scope}")

    store = DefinitionsStore(landing, connection.name, now, settings.definitions_max_age_days)
    outcome.events.extend(store.events)
    for event in store.events:
        log.warning(event.message)
    with phase(on_phase, "definitions"):
        outcome.plans = _plan_accounts(session, outcome, settings.concurrency, store)
        store.save(outcome.accounts)  # kept even when the extraction fails: a retried step reads none again
    log.info(
        f"definitions: {len(outcome.plans)} account(s) planned ({len(store.read)} read from Azure, the others "
        f"stored), {len(outcome.definitions_unreadable)} unreadable"
    )
    # The run's answers are staged as they arrive; the staging goes when the run ends, landed or not.
    with landing.staging(connection.name) as staging:
        return _extract_and_land(
            session, connection, settings, landing, staging, store, outcome, log, on_phase, record_extraction_failure
        )


def _extract_and_land(
    session: AzureSession,
    connection: Connection,
    settings: Settings,
    landing: Landing,
    staging: StagingRun,
    store: DefinitionsStore,
    outcome: SyncOutcome,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    on_phase: PhaseHook | None,
    record_extraction_failure: bool,
) -> SyncOutcome:
    first_day, last_day, now = outcome.first_day, outcome.last_day, outcome.synced_at
    with phase(on_phase, "extraction"):
        try:
            extraction = _extract(session, outcome, settings, store, log, landing, staging)
        except ExtractionError as exc:
            if not record_extraction_failure:
                raise
            outcome.problem = _extraction_problem(exc)
            outcome.events.append(SyncEvent(Level.ERROR, outcome.problem.code, str(outcome.problem)))
            log.error(f"connection {connection.name}: {outcome.problem}")
            _land_events(landing, outcome)
            return outcome
    outcome.extraction = extraction
    outcome.events.extend(extraction.events)
    # A 404 for an account's metrics: its stored definitions may describe a deleted or re-created account.
    store.forget(extraction.unreadable)
    store.save(outcome.accounts)
    for event in extraction.events:
        if event.level is not Level.INFO:
            log.warning(f"{event.code}: {event.message}" + (f" ({event.resource_id})" if event.resource_id else ""))
    if outcome.role_missing_everywhere:
        outcome.problem = Problem(
            ProblemCode.MISSING_ROLE,
            f"The service principal cannot read Azure Monitor data of any of the "
            f"{len(outcome.accounts)} account(s) in scope.",
            ROLE_FIX,
        )
        outcome.events.append(SyncEvent(Level.ERROR, ProblemCode.MISSING_ROLE, str(outcome.problem)))
        log.error(f"connection {connection.name}: {outcome.problem}")
        _land_events(landing, outcome)
        return outcome
    with phase(on_phase, "activity"):
        readable = [p for p in outcome.plans if p.account.resource_id not in extraction.unreadable]
        outcome.activity = extract_activity(
            MetricsReader(session),
            readable,
            first_day,
            last_day,
            now=now,
            paths=extraction.paths,
            top=settings.top,
            concurrency=settings.concurrency,
            sink=lambda kind, rows: landing.stage(staging, kind, rows),
        )
        outcome.events.extend(outcome.activity.events)
        log.info(
            f"activity: {sum(outcome.activity.calls.values())} extra metrics call(s) "
            f"({dict(outcome.activity.calls)}), {outcome.activity.rows[StagedKind.REQUESTS]:,} request and "
            f"{outcome.activity.rows[StagedKind.UTILIZATION]:,} utilisation point(s)"
        )
    with phase(on_phase, "landing"):
        _land_days(landing, staging, outcome, connection, settings)
        _land_events(landing, outcome)
    log.info(f"landing: {len(outcome.rows_per_day)} day(s), {outcome.points:,} point(s) under {landing.location}")
    return outcome


def _account_rows(outcome: SyncOutcome, tenant_id: str) -> list[dict[str, object]]:
    paths = outcome.extraction.paths if outcome.extraction else {}
    families = {p.account.resource_id: ",".join(q.family for q in p.queries) for p in outcome.plans}
    return [
        {
            "tenant_id": tenant_id,
            "subscription_id": a.subscription_id,
            "resource_group": a.resource_group,
            "resource_name": a.name,
            "resource_id": a.resource_id,
            "resource_kind": a.kind,
            "resource_region": a.location,
            "readable": a.resource_id not in outcome.unreadable,
            "metrics_api": paths.get(a.subscription_id),
            "metric_families": families.get(a.resource_id),
            "tags": a.tag_map,
        }
        for a in outcome.accounts
    ]


def _tally(points: pl.DataFrame) -> DayTally:
    tokens = points.filter(pl.col("metric").is_in(TOTAL_TOKEN_METRICS))["total"].sum()
    return DayTally(points.height, int(tokens or 0))


def _land_days(
    landing: Landing, staging: StagingRun, outcome: SyncOutcome, connection: Connection, settings: Settings
) -> None:
    """Merges each day's staged batches into that day's files, one day at a time (activity files first, the
    manifest last: it marks the day complete). Staged days that are not landed (an account's answer left them
    out) are tallied only."""
    extraction = outcome.extraction
    assert extraction is not None
    accounts = _account_rows(outcome, connection.tenant_id)
    synced = set(extraction.synced_days)
    for day in sorted(synced | set(landing.staged_days(staging, StagedKind.POINTS))):
        # A later answer may refuse an account-day whose other families' points were staged already.
        day_points = drop_refused(landing.staged(staging, StagedKind.POINTS, day, POINT_SCHEMA), extraction.refused)
        if day_points.height:
            outcome.tallies[day] = _tally(day_points)
        if day not in synced:
            continue
        manifest = DayManifest(
            connection=connection.name,
            day=day.isoformat(),
            synced_at=outcome.synced_at.isoformat(),
            is_final=is_final(day, outcome.synced_at, settings.settle_hours),
            accounts=accounts,
        )
        # The day's data files, merged from its staged batches, then its manifest naming them (written last: the
        # commit marker).
        activity = {}
        if outcome.activity is not None:
            activity = {kind: landing.staged(staging, kind, day, schema) for kind, schema in ACTIVITY_SCHEMAS.items()}
        landing.write_day(manifest, day_points, activity)
        outcome.rows_per_day[day.isoformat()] = day_points.height


def _land_events(landing: Landing, outcome: SyncOutcome) -> None:
    partition = (
        outcome.first_day.isoformat()
        if outcome.first_day == outcome.last_day
        else f"{outcome.first_day}..{outcome.last_day}"
    )
    run_key = f"{outcome.synced_at.strftime('%Y%m%dT%H%M%S%f')}_{outcome.first_day}_{outcome.last_day}"
    landing.write_events(outcome.connection, run_key, partition, outcome.synced_at, outcome.events)


# ---- judging the sync: the connection's checks ------------------------------------------------------------------


def _short(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def _credentials_check(outcome: SyncOutcome) -> CheckOutcome:
    if outcome.problem is not None:
        return CheckOutcome(CREDENTIALS, False, str(outcome.problem), {"code": str(outcome.problem.code)})
    return CheckOutcome(
        CREDENTIALS,
        True,
        f"Token acquired; {len(outcome.readable_accounts)} of {len(outcome.accounts)} account(s) readable.",
    )


def _readable_check(outcome: SyncOutcome) -> CheckOutcome:
    unreadable, metric_errors = outcome.unreadable, outcome.metric_errors
    parts = []
    if unreadable:
        row = TROUBLESHOOTING[Symptom.NO_USAGE]
        parts.append(
            f"{len(unreadable)} of {len(outcome.accounts)} account(s) refused their metrics: "
            + ", ".join(sorted(_short(r) for r in unreadable))
            + f". Likely cause: {row.cause}. Next action: assign Monitoring Reader on each account, or on "
            "its resource group or subscription."
        )
    if metric_errors:
        parts.append(
            f"{len(metric_errors)} account(s) kept answering per-metric errors, so some usage is missing: "
            + "; ".join(f"{_short(r)} ({m})" for r, m in sorted(metric_errors.items())[:5])
            + ". Next action: re-sync these days later; if it persists, check the Azure status page."
        )
    return CheckOutcome(
        ACCOUNTS_READABLE,
        not unreadable and not metric_errors,
        " ".join(parts) or "All accounts in scope are readable.",
        {
            "unreadable_accounts": sorted(unreadable),
            "metric_errors": metric_errors,
            "accounts_in_scope": len(outcome.accounts),
            "accounts_readable": len(outcome.readable_accounts),
        },
    )


def _not_empty_check(outcome: SyncOutcome) -> CheckOutcome:
    row = TROUBLESHOOTING[Symptom.EMPTY_SYNC]
    metadata = {"metric_points": outcome.points}
    if not outcome.accounts:
        return CheckOutcome(
            SYNC_NOT_EMPTY,
            False,
            "No Azure OpenAI accounts (kind OpenAI or AIServices) in scope "
            f"{outcome.connection!r}. Likely cause: {row.cause.lower()}. Next action: "
            f"{row.action.lower()}.",
            metadata,
        )
    if not outcome.readable_accounts:
        return CheckOutcome(
            SYNC_NOT_EMPTY, False, "No account in scope is readable; see the credentials check.", metadata
        )
    if outcome.points == 0 and outcome.extraction and outcome.extraction.synced_days:
        names = ", ".join(a.name for a in outcome.readable_accounts[:10])
        return CheckOutcome(
            SYNC_NOT_EMPTY,
            False,
            (
                f"{len(outcome.readable_accounts)} readable account(s) ({names}) returned no token usage for "
                f"{outcome.first_day}..{outcome.last_day}. Likely causes: no traffic in this range; "
                f"{row.cause.lower()}; or Azure Monitor's provider delay for the latest hours. Next action: "
                f"{row.action.lower()}, and re-sync recent days later."
            ),
            metadata,
        )
    return CheckOutcome(
        SYNC_NOT_EMPTY,
        True,
        f"{outcome.points} metric points from {len(outcome.readable_accounts)} readable account(s).",
        metadata,
    )


def _truncation_check(outcome: SyncOutcome) -> CheckOutcome:
    truncated = outcome.truncated
    return CheckOutcome(
        NO_SERIES_TRUNCATED,
        not truncated,
        "No split result reached `top`, or narrowing resolved it."
        if not truncated
        else f"{len(truncated)} result(s) still reach top after narrowing: {', '.join(truncated[:5])}. "
        "Raise settings.top.",
        {"truncated": truncated},
    )


def connection_checks(outcome: SyncOutcome) -> list[CheckOutcome]:
    """The connection's checks for a sync: credentials (always), and the others once the sync got data."""
    credentials = _credentials_check(outcome)
    if not credentials.passed:
        return [credentials]
    return [credentials, _readable_check(outcome), _not_empty_check(outcome), _truncation_check(outcome)]
