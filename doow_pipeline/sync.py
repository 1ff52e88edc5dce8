"""One connection's sync of a range of UTC days: Azure -> landing zone (no DuckDB, no Dagster).

The Dagster asset and the CLI call this; it returns everything the asset checks need to judge the sync.
Nothing lands unless the credentials work and the scope could be listed, so a failing sync never
replaces good days with empty ones.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from .azure.definitions import DEFINITIONS, AccountPlan
from .azure.discovery import AccountInfo, ScopeResolutionError, discover_accounts
from .azure.errors import AzureProblem, classify
from .azure.extract import Extraction, SyncEvent, extract_usage
from .azure.session import AzureSession
from .config import Connection, Settings
from .warehouse.landing import DayManifest, Landing


@dataclass
class SyncOutcome:
    connection: str
    first_day: date
    last_day: date
    synced_at: datetime
    credential_problem: AzureProblem | None = None
    scope_problem: str | None = None
    accounts: list[AccountInfo] = field(default_factory=list)
    plans: list[AccountPlan] = field(default_factory=list)
    extraction: Extraction | None = None
    events: list[SyncEvent] = field(default_factory=list)
    rows_per_day: dict[str, int] = field(default_factory=dict)
    definitions_unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.credential_problem is None and self.scope_problem is None

    @property
    def unreadable(self) -> dict[str, str]:
        """Accounts whose definitions or metrics answered 403/404: resource id -> Azure's message."""
        return {**self.definitions_unreadable, **(self.extraction.unreadable if self.extraction else {})}

    @property
    def readable_accounts(self) -> list[AccountInfo]:
        return [a for a in self.accounts if a.resource_id not in self.unreadable]

    @property
    def points(self) -> int:
        return self.extraction.points.height if self.extraction else 0

    @property
    def role_missing_everywhere(self) -> bool:
        """Every account in scope refused its metrics: the principal lacks Monitoring Reader on all of them."""
        return bool(self.accounts) and len(self.unreadable) == len(self.accounts)


def is_final(day: date, synced_at: datetime, settle_hours: int) -> bool:
    """A day is final once `settle_hours` have passed since its end: late metrics have arrived by then."""
    day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)
    return synced_at >= day_end + timedelta(hours=settle_hours)


def _plan_or_problem(session: AzureSession, account: AccountInfo) -> AccountPlan | AzureProblem:
    try:
        return DEFINITIONS.plan(session, account)
    except (HttpResponseError, ClientAuthenticationError) as exc:
        problem = classify(exc)
        if problem.code not in ("missing_role", "not_found"):
            raise
        return problem


def _plan_accounts(session: AzureSession, accounts: list[AccountInfo], outcome: SyncOutcome,
                   concurrency: int) -> list[AccountPlan]:
    """Reads each account's metric definitions (cached), `concurrency` at a time."""
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="doow-definitions") as pool:
        results = list(pool.map(lambda account: _plan_or_problem(session, account), accounts))
    plans = []
    for account, plan in zip(accounts, results):
        if isinstance(plan, AzureProblem):
            outcome.events.append(SyncEvent("WARN", "account_unreadable",
                                            f"cannot read metric definitions: {plan}", account.resource_id))
            outcome.definitions_unreadable[account.resource_id] = plan.detail
            continue
        if not plan.queries:
            outcome.events.append(SyncEvent("WARN", "no_token_metrics", "the account defines no Azure OpenAI or "
                                            "Models token metrics", account.resource_id))
        plans.append(plan)
    return plans


def sync_connection(session: AzureSession, connection: Connection, settings: Settings, landing: Landing,
                    first_day: date, last_day: date, now: datetime) -> SyncOutcome:
    outcome = SyncOutcome(connection.name, first_day, last_day, synced_at=now)
    try:
        session.token()
        outcome.accounts = discover_accounts(session, connection.parsed_scope)
    except ScopeResolutionError as exc:
        outcome.scope_problem = str(exc)
    except (ClientAuthenticationError, HttpResponseError, ValueError) as exc:
        outcome.credential_problem = classify(exc)
    if not outcome.ok:
        message = outcome.scope_problem or str(outcome.credential_problem)
        code = "scope_unresolved" if outcome.scope_problem else outcome.credential_problem.code
        outcome.events.append(SyncEvent("ERROR", code, message))
        _land_events(landing, outcome)
        return outcome

    outcome.plans = _plan_accounts(session, outcome.accounts, outcome, settings.concurrency)
    extraction = extract_usage(session, outcome.plans, first_day, last_day, now=now, top=settings.top,
                               concurrency=settings.concurrency)
    outcome.extraction = extraction
    outcome.events.extend(extraction.events)
    if outcome.role_missing_everywhere:
        outcome.credential_problem = AzureProblem(
            "missing_role", f"The service principal cannot read Azure Monitor data of any of the "
            f"{len(outcome.accounts)} account(s) in scope.",
            "Assign Monitoring Reader on the subscription, resource group or each account.")
        outcome.events.append(SyncEvent("ERROR", "missing_role", str(outcome.credential_problem)))
        _land_events(landing, outcome)
        return outcome
    _land_days(landing, outcome, connection, settings)
    _land_events(landing, outcome)
    return outcome


def _account_rows(outcome: SyncOutcome, tenant_id: str) -> list[dict]:
    extraction = outcome.extraction
    families = {p.account.resource_id: ",".join(q.family for q in p.queries) for p in outcome.plans}
    return [{
        "tenant_id": tenant_id, "subscription_id": a.subscription_id, "resource_group": a.resource_group,
        "resource_name": a.name, "resource_id": a.resource_id, "resource_kind": a.kind, "resource_region": a.location,
        "readable": a.resource_id not in outcome.unreadable,
        "metrics_api": extraction.paths.get(a.subscription_id), "metric_families": families.get(a.resource_id),
    } for a in outcome.accounts]


def _land_days(landing: Landing, outcome: SyncOutcome, connection: Connection, settings: Settings) -> None:
    extraction = outcome.extraction
    by_day = extraction.points.with_columns(pl.col("timestamp").dt.date().alias("_day")).partition_by(
        "_day", as_dict=True, include_key=False)
    empty = extraction.points.clear()
    accounts = _account_rows(outcome, connection.tenant_id)
    for day in extraction.synced_days:
        day_points = by_day.get((day,), empty)
        manifest = DayManifest(connection=connection.name, day=day.isoformat(), synced_at=outcome.synced_at.isoformat(),
                               is_final=is_final(day, outcome.synced_at, settings.settle_hours), accounts=accounts)
        landing.write_day(manifest, day_points)
        outcome.rows_per_day[day.isoformat()] = day_points.height


def _land_events(landing: Landing, outcome: SyncOutcome) -> None:
    partition = (outcome.first_day.isoformat() if outcome.first_day == outcome.last_day
                 else f"{outcome.first_day}..{outcome.last_day}")
    run_key = f"{outcome.synced_at.strftime('%Y%m%dT%H%M%S%f')}_{outcome.first_day}_{outcome.last_day}"
    landing.write_events(outcome.connection, run_key, partition, outcome.synced_at, outcome.events)
