"""Verification of a connection against Azure, step by step (used by `doow-azure connect` and `doctor`).

Steps, each yielding a `StepResult` as soon as it is known, so the CLI can show progress:

1. token       a token is acquired for ARM (the secret, the app and the tenant are right)
2. scope       the scope's subscription exists and is visible to the principal (in the intended tenant)
3. accounts    the Azure OpenAI accounts in scope (name, kind, region, subscription, resource group)
4. metrics     per account: its metric definitions and one small metrics query (the last complete days)
5. batch       per subscription: one `metrics:getBatch` call for one readable account; 401 means the
               principal lacks Monitoring Reader at subscription scope and the per-resource API is used
6. coverage    the verdict on what the principal can read in the scope

A failed step with `blocking=True` ends the verification; `Verification.problem` then names the cause
and the fix (from `azure.errors.classify`). No Dagster, no printing, no writes. The secret is never part
of a result: texts are scrubbed of it before they leave this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest

from .azure.definitions import FAMILY_METRICS, NAMESPACE, FamilyQuery, plan_from_definitions, read_definitions
from .azure.discovery import AccountInfo, ScopeResolutionError, discover_accounts
from .azure.errors import ROLE_FIX, AzureProblem, classify
from .azure.extract import BATCH_API_VERSION
from .azure.session import AzureSession, CloudEndpoints, RetrySettings
from .clock import utc_now
from .config import Connection, Endpoints

VERIFY_RETRY = RetrySettings(total=2, backoff_factor=0.3, backoff_max=5)
PROBE_TOP = 1000

NO_ACCOUNTS_FIX = ("Confirm the scope, subscription and region before reconnecting: the accounts may be in another "
                   "subscription or resource group, or the principal's Monitoring Reader assignment does not cover "
                   "them.")
ONE_ACCOUNT_FIX = ("Add each resource, or assign Monitoring Reader at resource-group or subscription scope; or "
                   "connect only this account (--scope with its ARM id).")


def quiet_azure_logging() -> None:
    """azure-identity logs failed token requests at WARNING to stderr; the CLI reports them itself."""
    for name in ("azure", "msal", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@dataclass
class StepResult:
    name: str  # token | scope | accounts | metrics | batch | coverage
    ok: bool
    detail: str
    problem: AzureProblem | None = None
    blocking: bool = False  # a failed blocking step ends the verification: the connection is unusable
    subject: str | None = None  # the account (metrics) or subscription (batch) the step is about
    data: dict = field(default_factory=dict)

    @property
    def warning(self) -> bool:
        return self.ok and self.problem is not None


@dataclass
class AccountCheck:
    account: AccountInfo
    readable: bool
    families: tuple[str, ...] = ()
    queries: tuple[FamilyQuery, ...] = ()
    tokens: int | None = None  # total tokens over the probe window (None: not readable or no token metric)
    problem: AzureProblem | None = None
    # (day, family, deployment, model_name, model_version, region) -> total tokens; only with split=True
    usage: dict[tuple, float] = field(default_factory=dict)


@dataclass
class SubscriptionInfo:
    subscription_id: str
    display_name: str
    tenant_id: str | None


@dataclass
class Verification:
    connection: Connection
    steps: list[StepResult] = field(default_factory=list)
    subscriptions: dict[str, SubscriptionInfo] = field(default_factory=dict)  # visible to the principal
    accounts: list[AccountInfo] = field(default_factory=list)
    checks: dict[str, AccountCheck] = field(default_factory=dict)  # resource id -> check
    paths: dict[str, str] = field(default_factory=dict)  # subscription -> batch | per_resource
    problem: AzureProblem | None = None  # the blocking problem, if any
    probe_days: list[date] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def warnings(self) -> list[StepResult]:
        return [s for s in self.steps if not s.blocking and (s.warning or not s.ok)]

    @property
    def readable(self) -> list[AccountInfo]:
        return [a for a in self.accounts if self.checks.get(a.resource_id) and self.checks[a.resource_id].readable]

    @property
    def unreadable(self) -> list[AccountInfo]:
        return [a for a in self.accounts if a.resource_id in self.checks and not self.checks[a.resource_id].readable]

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret and secret in text else text


def _scrub_problem(problem: AzureProblem | None, secret: str) -> AzureProblem | None:
    if problem is None:
        return None
    return AzureProblem(problem.code, _scrub(problem.cause, secret), _scrub(problem.fix, secret),
                        _scrub(problem.detail, secret))


def no_accounts_problem(scope: str) -> AzureProblem:
    return AzureProblem("no_accounts", f"No Azure OpenAI accounts (kind OpenAI or AIServices) are in scope {scope} "
                        "or visible to this principal.", NO_ACCOUNTS_FIX)


def role_on_one_account_problem(account: AccountInfo, subscription: str) -> AzureProblem:
    return AzureProblem("role_on_one_account",
                        f"Only one account ({account.name}) is visible in subscription {subscription}, and the "
                        "principal has no Monitoring Reader at subscription scope: the role assignment covers only "
                        "that account, so every other account of the subscription would be missed.",
                        ONE_ACCOUNT_FIX)


def all_unreadable_problem(count: int) -> AzureProblem:
    return AzureProblem("missing_role", f"The service principal cannot read the Azure Monitor data of any of the "
                        f"{count} account(s) in scope (AuthorizationFailed).", ROLE_FIX)


def probe_window(now: datetime, days: int) -> tuple[datetime, datetime, list[date]]:
    """The last `days` complete UTC days before `now`: [start, end) aligned to 00:00Z."""
    end = datetime.combine(now.date(), time(0), tzinfo=timezone.utc)
    start = end - timedelta(days=days)
    return start, end, [start.date() + timedelta(days=i) for i in range(days)]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _total_metric(query: FamilyQuery) -> str:
    wanted = FAMILY_METRICS[query.family]["total_tokens"].lower()
    names = [m for m in query.metric_names if m.lower() == wanted]
    return names[0] if names else query.metric_names[0]


class ConnectionVerifier:
    """Runs the verification steps for one connection; iterate `run()` for progress, then read `result`."""

    def __init__(self, connection: Connection, secret: str, endpoints: Endpoints | None = None, *,
                 now: datetime | None = None, probe_days: int = 1, split: bool = False,
                 on_start: Callable[[str, str | None], None] | None = None):
        self.connection = connection
        self.secret = secret
        self.endpoints = CloudEndpoints.for_cloud(connection.cloud, endpoints)
        self.now = now or utc_now()
        self.probe_days = probe_days
        self.split = split  # doctor: split the probe by the usage dimensions (deployments, models, regions)
        self.on_start = on_start
        self.result = Verification(connection)

    # ---- plumbing --------------------------------------------------------------------------------------------
    def _started(self, name: str, subject: str | None = None) -> None:
        if self.on_start:
            self.on_start(name, subject)

    def _emit(self, step: StepResult) -> StepResult:
        step.detail = _scrub(step.detail, self.secret)
        step.problem = _scrub_problem(step.problem, self.secret)
        self.result.steps.append(step)
        if not step.ok and step.blocking and self.result.problem is None:
            self.result.problem = step.problem
        return step

    def _fail(self, name: str, exc: BaseException) -> StepResult:
        problem = classify(exc)
        return self._emit(StepResult(name, False, problem.cause, problem, blocking=True))

    # ---- steps -------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[StepResult]:
        quiet_azure_logging()
        with AzureSession(self.connection.tenant_id, self.connection.client_id, self.secret, self.endpoints,
                          VERIFY_RETRY) as session:
            for step in self._steps(session):
                yield step
                if not step.ok and step.blocking:
                    return

    def _steps(self, session: AzureSession) -> Iterator[StepResult]:
        scope = self.connection.parsed_scope
        # 1. token
        self._started("token")
        try:
            token = session.token()
        except (ClientAuthenticationError, HttpResponseError, ServiceRequestError, ValueError) as exc:
            yield self._fail("token", exc)
            return
        del token
        yield self._emit(StepResult("token", True, f"token acquired from tenant {self.connection.tenant_id} for "
                                    f"app {self.connection.client_id}"))

        # 2. scope: the subscription exists, is visible, and belongs to the credential's tenant
        self._started("scope")
        try:
            for sub in session.subscriptions().subscriptions.list():
                sid = (sub.subscription_id or "").lower()
                self.result.subscriptions[sid] = SubscriptionInfo(sid, sub.display_name or sid,
                                                                  (sub.tenant_id or "").lower() or None)
        except (ClientAuthenticationError, HttpResponseError, ServiceRequestError) as exc:
            yield self._fail("scope", exc)
            return
        yield from self._scope_step(session, scope)
        if not self.result.ok:
            return

        # 3. accounts
        self._started("accounts")
        try:
            accounts = discover_accounts(session, scope)
        except ScopeResolutionError as exc:
            yield self._emit(StepResult("accounts", False, str(exc), AzureProblem(
                "not_found", str(exc), "Use one of the listed names or the account's full ARM id as the scope."),
                blocking=True))
            return
        except (ClientAuthenticationError, HttpResponseError, ServiceRequestError) as exc:
            yield self._fail("accounts", exc)
            return
        self.result.accounts = accounts
        if not accounts:
            problem = no_accounts_problem(self.connection.scope)
            yield self._emit(StepResult("accounts", False, problem.cause, problem, blocking=True))
            return
        yield self._emit(StepResult("accounts", True, f"{len(accounts)} Azure OpenAI account(s) discovered",
                                    data={"accounts": [a.__dict__ for a in accounts]}))

        # 4. metrics per account
        start, end, days = probe_window(self.now, self.probe_days)
        self.result.probe_days = days
        for account in accounts:
            self._started("metrics", account.name)
            yield self._emit(self._account_step(session, account, start, end))

        # 5. batch API per subscription
        by_subscription: dict[str, AccountCheck] = {}
        for account in accounts:
            check = self.result.checks[account.resource_id]
            if check.readable and check.queries:
                by_subscription.setdefault(account.subscription_id, check)
        for subscription, check in by_subscription.items():
            self._started("batch", subscription)
            yield self._emit(self._batch_step(session, subscription, check, start, end))

        # 6. coverage verdict
        yield self._emit(self._coverage(scope))

    def _scope_step(self, session: AzureSession, scope) -> Iterator[StepResult]:
        visible = self.result.subscriptions
        if scope.kind == "account_name":
            yield self._emit(StepResult("scope", True, f"{len(visible)} subscription(s) visible; the account name "
                                        "is resolved among them"))
            return
        sub = visible.get(scope.subscription_id)
        if sub is not None:
            if sub.tenant_id and sub.tenant_id != self.connection.tenant_id.lower():
                problem = AzureProblem("wrong_tenant", f"Subscription {sub.subscription_id} belongs to tenant "
                                       f"{sub.tenant_id}, not to the connection's tenant {self.connection.tenant_id}.",
                                       "Use the subscription's Directory (tenant) ID and a service principal "
                                       "registered there.")
                yield self._emit(StepResult("scope", False, problem.cause, problem, blocking=True))
                return
            yield self._emit(StepResult("scope", True, f"subscription {sub.display_name} ({sub.subscription_id}) "
                                        f"is visible in tenant {sub.tenant_id or self.connection.tenant_id}",
                                        subject=sub.subscription_id))
            return
        # Not listed: ask the scope itself, so Azure says why (no role, not found, other tenant).
        try:
            discover_accounts(session, scope)
        except (ClientAuthenticationError, HttpResponseError, ServiceRequestError) as exc:
            problem = classify(exc)
            if problem.code == "missing_role":
                problem = AzureProblem("missing_role", f"The service principal holds no role in subscription "
                                       f"{scope.subscription_id}: it is not visible to it (AuthorizationFailed).",
                                       ROLE_FIX, problem.detail)
            yield self._emit(StepResult("scope", False, problem.cause, problem, blocking=True))
            return
        yield self._emit(StepResult("scope", True, f"subscription {scope.subscription_id} is not listed for the "
                                    "principal, but the scope is readable", subject=scope.subscription_id))

    def _account_step(self, session: AzureSession, account: AccountInfo, start: datetime,
                      end: datetime) -> StepResult:
        check = AccountCheck(account, readable=False)
        self.result.checks[account.resource_id] = check
        try:
            check.queries = plan_from_definitions(read_definitions(session, account))
            check.families = tuple(q.family for q in check.queries)
            check.readable = True
            if check.queries:
                check.tokens = 0
            for query in check.queries if self.split else check.queries[:1]:
                metric = _total_metric(query)
                split = query.split_dimensions if self.split else ()
                response = session.monitor(account.subscription_id).metrics.list(
                    account.resource_id, timespan=f"{_iso(start)}/{_iso(end)}", interval="P1D", metricnames=metric,
                    aggregation="Total", top=PROBE_TOP if split else None,
                    filter=" and ".join(f"{d} eq '*'" for d in split) or None, metricnamespace=NAMESPACE)
                family_tokens = 0.0
                for result in response.value or ():
                    if (result.error_code or "Success") != "Success":
                        continue
                    for series in result.timeseries or ():
                        dims = {md.name.value.lower(): md.value for md in series.metadatavalues or ()}
                        for point in series.data or ():
                            if not point.total:
                                continue
                            family_tokens += point.total
                            stamp = point.time_stamp
                            day = (stamp.astimezone(timezone.utc) if stamp.tzinfo else stamp).date()
                            key = (day, query.family, _dim(dims, "modeldeploymentname"), _dim(dims, "modelname"),
                                   _dim(dims, "modelversion"), _dim(dims, "region"))
                            check.usage[key] = check.usage.get(key, 0.0) + point.total
                # Families are alternatives, never added: keep the larger total (the pipeline's family choice).
                check.tokens = max(check.tokens or 0, int(family_tokens))
        except (ClientAuthenticationError, HttpResponseError, ServiceRequestError) as exc:
            problem = classify(exc)
            check.readable = problem.code not in ("missing_role", "not_found", "unauthorized")
            check.problem = problem
            if not check.readable:
                return StepResult("metrics", False, f"{account.name}: metrics not readable: {problem.cause}",
                                  problem, subject=account.name)
            return StepResult("metrics", False, f"{account.name}: metrics query failed: {problem.cause}", problem,
                              subject=account.name)
        if not check.queries:
            return StepResult("metrics", True, f"{account.name}: readable, but it defines no Azure OpenAI or Models "
                              "token metrics", subject=account.name)
        window = "the last complete day" if self.probe_days == 1 else f"the last {self.probe_days} complete days"
        return StepResult("metrics", True, f"{account.name}: readable ({', '.join(check.families)}); "
                          f"{check.tokens:,} tokens in {window}", subject=account.name,
                          data={"tokens": check.tokens, "families": list(check.families)})

    def _batch_step(self, session: AzureSession, subscription: str, check: AccountCheck, start: datetime,
                    end: datetime) -> StepResult:
        query = check.queries[0]
        params = {"api-version": BATCH_API_VERSION, "metricnamespace": NAMESPACE, "metricnames": _total_metric(query),
                  "starttime": _iso(start), "endtime": _iso(end), "interval": "P1D", "aggregation": "total"}
        request = HttpRequest("POST", f"/subscriptions/{subscription}/metrics:getBatch", params=params,
                              json={"resourceids": [check.account.resource_id]})
        name = self.result.subscriptions.get(subscription)
        label = f"{name.display_name} ({subscription})" if name else subscription
        try:
            response = session.metrics(check.account.location).send_request(request)
            if response.status_code == 401:
                self.result.paths[subscription] = "per_resource"
                return StepResult("batch", True, f"subscription {label}: batch API refused (401: no Monitoring "
                                  "Reader at subscription scope); the per-resource API will be used (slower, more "
                                  "calls)", subject=subscription, data={"path": "per_resource"})
            response.raise_for_status()
        except (ClientAuthenticationError, HttpResponseError, ServiceRequestError) as exc:
            problem = classify(exc)
            return StepResult("batch", False, f"subscription {label}: batch API probe failed: {problem.cause}",
                              problem, subject=subscription)
        self.result.paths[subscription] = "batch"
        return StepResult("batch", True, f"subscription {label}: batch API allowed (Monitoring Reader at "
                          "subscription scope)", subject=subscription, data={"path": "batch"})

    def _coverage(self, scope) -> StepResult:
        result = self.result
        readable, unreadable = result.readable, result.unreadable
        if not readable and unreadable:
            problem = all_unreadable_problem(len(unreadable))
            return StepResult("coverage", False, problem.cause, problem, blocking=True)
        if (scope.kind == "subscription" and len(result.accounts) == 1 and readable
                and result.paths.get(scope.subscription_id) == "per_resource"):
            sub = result.subscriptions.get(scope.subscription_id)
            label = f"{sub.display_name} ({scope.subscription_id})" if sub else scope.subscription_id
            problem = role_on_one_account_problem(readable[0], label)
            return StepResult("coverage", False, problem.cause, problem, blocking=True)
        notes = []
        if unreadable:
            names = ", ".join(a.name for a in unreadable)
            notes.append(f"{len(unreadable)} of {len(result.accounts)} account(s) cannot be read ({names}); their "
                         "usage will be missing")
        if scope.kind == "subscription" and result.paths.get(scope.subscription_id) == "per_resource":
            notes.append("the principal has no Monitoring Reader at subscription scope: only the accounts its role "
                         "assignments cover are listed and synced")
        if notes:
            text = "; ".join(notes)
            problem = AzureProblem("partial_coverage", text[0].upper() + text[1:] + ".", ONE_ACCOUNT_FIX
                                   if not unreadable else ROLE_FIX)
            return StepResult("coverage", True, problem.cause, problem)
        return StepResult("coverage", True, f"all {len(readable)} account(s) in scope are readable")


def _dim(dims: dict[str, str], name: str) -> str | None:
    value = dims.get(name)
    return None if value in (None, "", "__Empty") else value

