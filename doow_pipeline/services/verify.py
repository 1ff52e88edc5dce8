"""Verification of a connection against Azure, step by step (used by `doow-azure connect` and `doctor`).

Steps, each yielding a `StepResult` as soon as it is known, so the CLI can show progress:

1. token       a token is acquired for ARM (the secret, the app and the tenant are right)
2. scope       the scope's subscription exists and is visible to the principal (in the intended tenant)
3. accounts    the Azure OpenAI accounts in scope (name, kind, region, subscription, resource group)
4. metrics     per account: its metric definitions and one small metrics query (the last complete days)
5. batch       per subscription: one `metrics:getBatch` call for one readable account, with the sync's rule:
               a 401 or 403 (any code) is asked once more with a fresh token; refused again, the sync will
               use the per-resource API (typically no Monitoring Reader at subscription scope)
6. coverage    the verdict on what the principal can read in the scope

A failed step with `blocking=True` ends the verification; `Verification.problem` then names the cause
and the fix (from `azure.errors.classify`). No Dagster, no printing, no writes. The secret is never part
of a result: texts are scrubbed of it before they leave this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..azure.discovery import Subscription, discover_accounts, list_subscriptions
from ..azure.metric_definitions import FamilyQuery, plan_from_definitions, read_definitions
from ..azure.metrics_api import BatchRefused, MetricQuery, MetricsReader, TimeWindow
from ..azure.session import INTERACTIVE_RETRY, AzureSession
from ..config import Connection, Endpoints
from ..core.clock import REAL_CLOCK, day_start, parse_utc
from ..core.metrics import reported
from ..core.problems import (
    ROLE_FIX,
    TROUBLESHOOTING,
    UNREADABLE_CODES,
    AzureError,
    ExtractionError,
    Problem,
    ProblemCode,
    Symptom,
)
from ..core.scope import Account, Scope, ScopeKind
from .sessions import open_session

PROBE_TOP = 1000

# The troubleshooting table's rows, with what connect adds for its two cases.
NO_ACCOUNTS_FIX = (
    f"{TROUBLESHOOTING[Symptom.EMPTY_SYNC].action}: the accounts may be in another subscription or "
    "resource group, or the principal's Monitoring Reader assignment does not cover them."
)
ONE_ACCOUNT_FIX = (
    f"{TROUBLESHOOTING[Symptom.ONE_RESOURCE].action}; or connect only this account (--scope with its ARM id)."
)


class Step:
    TOKEN = "token"
    SCOPE = "scope"
    ACCOUNTS = "accounts"
    METRICS = "metrics"
    BATCH = "batch"
    COVERAGE = "coverage"


@dataclass
class StepResult:
    name: str  # a Step
    ok: bool
    detail: str
    problem: Problem | None = None
    blocking: bool = False  # a failed blocking step ends the verification: the connection is unusable
    subject: str | None = None  # the account (metrics) or subscription (batch) the step is about
    data: dict[str, object] = field(default_factory=dict)

    @property
    def warning(self) -> bool:
        return self.ok and self.problem is not None


@dataclass(frozen=True)
class UsageKey:
    """A probe's usage grain: (day, family, deployment, model name, model version, region)."""

    day: date
    family: str
    deployment: str | None
    model_name: str | None
    model_version: str | None
    region: str | None


@dataclass
class AccountCheck:
    account: Account
    readable: bool
    families: tuple[str, ...] = ()
    queries: tuple[FamilyQuery, ...] = ()
    tokens: int | None = None  # total tokens over the probe window (None: not readable or no token metric)
    problem: Problem | None = None
    usage: dict[UsageKey, float] = field(default_factory=dict)  # only with split=True


@dataclass
class Verification:
    connection: Connection
    steps: list[StepResult] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # visible to the principal
    accounts: list[Account] = field(default_factory=list)
    checks: dict[str, AccountCheck] = field(default_factory=dict)  # resource id -> check
    paths: dict[str, str] = field(default_factory=dict)  # subscription -> batch | per_resource
    problem: Problem | None = None  # the blocking problem, if any
    probe_days: list[date] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def warnings(self) -> list[StepResult]:
        return [s for s in self.steps if not s.blocking and (s.warning or not s.ok)]

    @property
    def readable(self) -> list[Account]:
        return [a for a in self.accounts if a.resource_id in self.checks and self.checks[a.resource_id].readable]

    @property
    def unreadable(self) -> list[Account]:
        return [a for a in self.accounts if a.resource_id in self.checks and not self.checks[a.resource_id].readable]

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)


def scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret and secret in text else text


def _scrub_problem(problem: Problem | None, secret: str) -> Problem | None:
    if problem is None:
        return None
    return Problem(
        problem.code, scrub(problem.cause, secret), scrub(problem.fix, secret), scrub(problem.detail, secret)
    )


def no_accounts_problem(scope: str) -> Problem:
    return Problem(
        ProblemCode.NO_ACCOUNTS,
        f"No Azure OpenAI accounts (kind OpenAI or AIServices) are in scope {scope} or visible to this principal.",
        NO_ACCOUNTS_FIX,
    )


def role_on_one_account_problem(account: Account, subscription: str) -> Problem:
    return Problem(
        ProblemCode.ROLE_ON_ONE_ACCOUNT,
        f"Only one account ({account.name}) is visible in subscription {subscription}, and the principal "
        "has no Monitoring Reader at subscription scope: the role assignment covers only that account, "
        "so every other account of the subscription would be missed.",
        ONE_ACCOUNT_FIX,
    )


def all_unreadable_problem(count: int) -> Problem:
    return Problem(
        ProblemCode.MISSING_ROLE,
        f"The service principal cannot read the Azure Monitor data of any of the "
        f"{count} account(s) in scope (AuthorizationFailed).",
        ROLE_FIX,
    )


def probe_window(now: datetime, days: int) -> tuple[TimeWindow, list[date]]:
    """The last `days` complete UTC days before `now`: [start, end) aligned to 00:00Z."""
    end = day_start(now.date())
    start = end - timedelta(days=days)
    return TimeWindow(start, end), [start.date() + timedelta(days=i) for i in range(days)]


class ConnectionVerifier:
    """Runs the verification steps for one connection; iterate `run()` for progress, then read `result`."""

    def __init__(
        self,
        connection: Connection,
        secret: str,
        endpoints: Endpoints | None = None,
        *,
        now: datetime | None = None,
        probe_days: int = 1,
        split: bool = False,
        on_start: Callable[[str, str | None], None] | None = None,
    ):
        self.connection = connection
        self.secret = secret
        self.endpoints = endpoints
        self.now = now or REAL_CLOCK.now()
        self.probe_days = probe_days
        self.split = split  # doctor: split the probe by the usage dimensions (deployments, models, regions)
        self.on_start = on_start
        self.result = Verification(connection)

    # ---- plumbing --------------------------------------------------------------------------------------------
    def _started(self, name: str, subject: str | None = None) -> None:
        if self.on_start:
            self.on_start(name, subject)

    def _emit(self, step: StepResult) -> StepResult:
        step.detail = scrub(step.detail, self.secret)
        step.problem = _scrub_problem(step.problem, self.secret)
        self.result.steps.append(step)
        if not step.ok and step.blocking and self.result.problem is None:
            self.result.problem = step.problem
        return step

    def _fail(self, name: str, problem: Problem) -> StepResult:
        return self._emit(StepResult(name, False, problem.cause, problem, blocking=True))

    # ---- steps -------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[StepResult]:
        with open_session(self.connection, self.secret, self.endpoints, INTERACTIVE_RETRY) as session:
            for step in self._steps(session):
                yield step
                if not step.ok and step.blocking:
                    return

    def _steps(self, session: AzureSession) -> Iterator[StepResult]:
        scope = self.connection.parsed_scope
        self._started(Step.TOKEN)
        try:
            session.token()
        except AzureError as exc:
            yield self._fail(Step.TOKEN, exc.problem)
            return
        yield self._emit(
            StepResult(
                Step.TOKEN,
                True,
                f"token acquired from tenant {self.connection.tenant_id} for app {self.connection.client_id}",
            )
        )

        self._started(Step.SCOPE)
        try:
            self.result.subscriptions = {s.subscription_id: s for s in list_subscriptions(session)}
        except AzureError as exc:
            yield self._fail(Step.SCOPE, exc.problem)
            return
        yield from self._scope_step(session, scope)
        if not self.result.ok:
            return

        self._started(Step.ACCOUNTS)
        try:
            accounts = discover_accounts(session, scope)
        except AzureError as exc:
            yield self._fail(Step.ACCOUNTS, exc.problem)
            return
        self.result.accounts = accounts
        if not accounts:
            yield self._fail(Step.ACCOUNTS, no_accounts_problem(self.connection.scope))
            return
        yield self._emit(
            StepResult(
                Step.ACCOUNTS,
                True,
                f"{len(accounts)} Azure OpenAI account(s) discovered",
                data={"accounts": [a.__dict__ for a in accounts]},
            )
        )

        window, days = probe_window(self.now, self.probe_days)
        self.result.probe_days = days
        reader = MetricsReader(session)
        for account in accounts:
            self._started(Step.METRICS, account.name)
            yield self._emit(self._account_step(session, reader, account, window))

        by_subscription: dict[str, AccountCheck] = {}
        for account in accounts:
            check = self.result.checks[account.resource_id]
            if check.readable and check.queries:
                by_subscription.setdefault(account.subscription_id, check)
        for subscription, check in by_subscription.items():
            self._started(Step.BATCH, subscription)
            yield self._emit(self._batch_step(reader, subscription, check, window))

        yield self._emit(self._coverage(scope))

    def _scope_step(self, session: AzureSession, scope: Scope) -> Iterator[StepResult]:
        visible = self.result.subscriptions
        if scope.kind is ScopeKind.ACCOUNT_NAME:
            yield self._emit(
                StepResult(
                    Step.SCOPE, True, f"{len(visible)} subscription(s) visible; the account name is resolved among them"
                )
            )
            return
        assert scope.subscription_id is not None
        sub = visible.get(scope.subscription_id)
        if sub is not None:
            if sub.tenant_id and sub.tenant_id != self.connection.tenant_id.lower():
                yield self._fail(
                    Step.SCOPE,
                    Problem(
                        ProblemCode.WRONG_TENANT,
                        f"Subscription {sub.subscription_id} belongs to tenant {sub.tenant_id}, "
                        f"not to the connection's tenant {self.connection.tenant_id}.",
                        "Use the subscription's Directory (tenant) ID and a service principal registered there.",
                    ),
                )
                return
            yield self._emit(
                StepResult(
                    Step.SCOPE,
                    True,
                    f"subscription {sub.display_name} ({sub.subscription_id}) "
                    f"is visible in tenant {sub.tenant_id or self.connection.tenant_id}",
                    subject=sub.subscription_id,
                )
            )
            return
        # Not listed: ask the scope itself, so Azure says why (no role, not found, other tenant).
        try:
            discover_accounts(session, scope)
        except AzureError as exc:
            problem = exc.problem
            if problem.code is ProblemCode.MISSING_ROLE:
                problem = Problem(
                    ProblemCode.MISSING_ROLE,
                    f"The service principal holds no role in subscription "
                    f"{scope.subscription_id}: it is not visible to it (AuthorizationFailed).",
                    ROLE_FIX,
                    problem.detail,
                )
            yield self._fail(Step.SCOPE, problem)
            return
        yield self._emit(
            StepResult(
                Step.SCOPE,
                True,
                f"subscription {scope.subscription_id} is not listed for the principal, but the scope is readable",
                subject=scope.subscription_id,
            )
        )

    def _account_step(
        self, session: AzureSession, reader: MetricsReader, account: Account, window: TimeWindow
    ) -> StepResult:
        check = AccountCheck(account, readable=False)
        self.result.checks[account.resource_id] = check
        try:
            check.queries = plan_from_definitions(read_definitions(session, account))
            check.families = tuple(q.family for q in check.queries)
            check.readable = True
            if check.queries:
                check.tokens = 0
            token_queries = [q for q in check.queries if not q.model_names_only]
            for query in token_queries if self.split else token_queries[:1]:
                split = query.split_dimensions if self.split else ()
                results = reader.per_resource(
                    account, MetricQuery((query.total_metric,), split, None, PROBE_TOP), window
                )
                family_tokens = 0.0
                for result in results:
                    if not result.ok:
                        continue
                    for series in result.series:
                        dims = series.dimensions
                        for stamp, total in zip(series.timestamps, series.totals, strict=True):
                            if not total:
                                continue
                            family_tokens += total
                            key = UsageKey(
                                parse_utc(stamp).date(),
                                query.family,
                                reported(dims.get("modeldeploymentname")),
                                reported(dims.get("modelname")),
                                reported(dims.get("modelversion")),
                                reported(dims.get("region")),
                            )
                            check.usage[key] = check.usage.get(key, 0.0) + total
                # Families are alternatives, never added: keep the larger total (the pipeline's family choice).
                check.tokens = max(check.tokens or 0, int(family_tokens))
        except AzureError as exc:
            problem = exc.problem
            check.readable = problem.code not in UNREADABLE_CODES | {ProblemCode.TOKEN_REFUSED}
            check.problem = problem
            verdict = "metrics query failed" if check.readable else "metrics not readable"
            return StepResult(
                Step.METRICS, False, f"{account.name}: {verdict}: {problem.cause}", problem, subject=account.name
            )
        if not check.queries:
            return StepResult(
                Step.METRICS,
                True,
                f"{account.name}: readable, but it defines no Azure OpenAI or Models token metrics",
                subject=account.name,
            )
        span = "the last complete day" if self.probe_days == 1 else f"the last {self.probe_days} complete days"
        return StepResult(
            Step.METRICS,
            True,
            f"{account.name}: readable ({', '.join(check.families)}); {check.tokens:,} tokens in {span}",
            subject=account.name,
            data={"tokens": check.tokens, "families": list(check.families)},
        )

    def _batch_step(
        self, reader: MetricsReader, subscription: str, check: AccountCheck, window: TimeWindow
    ) -> StepResult:
        """The batch API probe, with the extraction's rule (MetricsReader.batch): refused also with a fresh
        token means the per-resource API will be used."""
        query = check.queries[0]
        name = self.result.subscriptions.get(subscription)
        label = f"{name.display_name} ({subscription})" if name else subscription
        try:
            reader.batch(
                subscription,
                check.account.location,
                MetricQuery((query.total_metric,), top=PROBE_TOP),
                [check.account.resource_id],
                window,
            )
        except BatchRefused as refused:  # refused also with a fresh token: what the sync will do too
            self.result.paths[subscription] = "per_resource"
            return StepResult(
                Step.BATCH,
                True,
                f"subscription {label}: batch API refused, also with a fresh token "
                f"(HTTP {refused.status}, Azure's code {refused.code or '(none)'}: {refused.message}); "
                "the per-resource API will be used by the sync (slower, more calls). The batch API needs "
                "Monitoring Reader at subscription scope and the Microsoft.Insights resource provider "
                "registered",
                subject=subscription,
                data={"path": "per_resource", "status": refused.status, "code": refused.code},
            )
        except (AzureError, ExtractionError) as exc:
            problem = (
                exc.problem
                if isinstance(exc, AzureError)
                else Problem(
                    ProblemCode.EXTRACTION_FAILED, str(exc), "Retry later; if it persists, check the Azure status page."
                )
            )
            return StepResult(
                Step.BATCH,
                False,
                f"subscription {label}: batch API probe failed: {problem.cause}",
                problem,
                subject=subscription,
            )
        self.result.paths[subscription] = "batch"
        return StepResult(
            Step.BATCH,
            True,
            f"subscription {label}: batch API allowed (Monitoring Reader at subscription scope)",
            subject=subscription,
            data={"path": "batch"},
        )

    def _coverage(self, scope: Scope) -> StepResult:
        result = self.result
        readable, unreadable = result.readable, result.unreadable
        if not readable and unreadable:
            problem = all_unreadable_problem(len(unreadable))
            return StepResult(Step.COVERAGE, False, problem.cause, problem, blocking=True)
        if (
            scope.kind is ScopeKind.SUBSCRIPTION
            and len(result.accounts) == 1
            and readable
            and result.paths.get(scope.subscription_id or "") == "per_resource"
        ):
            sub = result.subscriptions.get(scope.subscription_id or "")
            label = f"{sub.display_name} ({scope.subscription_id})" if sub else str(scope.subscription_id)
            problem = role_on_one_account_problem(readable[0], label)
            return StepResult(Step.COVERAGE, False, problem.cause, problem, blocking=True)
        notes = []
        if unreadable:
            names = ", ".join(a.name for a in unreadable)
            notes.append(
                f"{len(unreadable)} of {len(result.accounts)} account(s) cannot be read ({names}); their "
                "usage will be missing"
            )
        if scope.kind is ScopeKind.SUBSCRIPTION and result.paths.get(scope.subscription_id or "") == "per_resource":
            notes.append(
                "the principal has no Monitoring Reader at subscription scope: only the accounts its role "
                "assignments cover are listed and synced"
            )
        if notes:
            text = "; ".join(notes)
            problem = Problem(
                ProblemCode.PARTIAL_COVERAGE,
                text[0].upper() + text[1:] + ".",
                ONE_ACCOUNT_FIX if not unreadable else ROLE_FIX,
            )
            return StepResult(Step.COVERAGE, True, problem.cause, problem)
        return StepResult(Step.COVERAGE, True, f"all {len(readable)} account(s) in scope are readable")
