"""`doow-azure doctor`: troubleshooting checks for one connection, against Azure and the warehouse.

Each finding carries the symptom a person sees, its likely cause and the next action, following the
troubleshooting table (`core.problems.TROUBLESHOOTING`), plus: the credential works and belongs to the
intended tenant and subscription; recent usage Azure reports (per deployment, region and model, last 7
complete days) is in the warehouse; the age of the latest data point; errors recorded in
`azure_openai.sync_events` since the last successful sync.

Findings are data (no printing); the CLI renders them. A healthy connection yields no finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ..config import Connection, ProjectConfig
from ..core.clock import as_utc
from ..core.problems import TROUBLESHOOTING, Problem, ProblemCode, Symptom, Troubleshooting, WarehouseError
from ..warehouse import queries
from ..warehouse.analyst import published_at
from ..warehouse.database import connect
from ..warehouse.landing import Landing
from .verify import ConnectionVerifier, Step, StepResult, Verification

NO_USAGE = TROUBLESHOOTING[Symptom.NO_USAGE]
ONE_RESOURCE = TROUBLESHOOTING[Symptom.ONE_RESOURCE]
EMPTY_SYNC = TROUBLESHOOTING[Symptom.EMPTY_SYNC]
PROBE_DAYS = 7


@dataclass
class Finding:
    code: str
    symptom: str
    cause: str
    action: str
    detail: str = ""
    row: int | None = None  # the troubleshooting table's row (1..3) when the finding is one of them


@dataclass
class Check:
    name: str
    status: str  # ok | finding | skipped
    summary: str
    finding: Finding | None = None


@dataclass
class DoctorReport:
    connection: str
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        return [c.finding for c in self.checks if c.finding is not None]

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, name: str, summary: str, finding: Finding | None = None, skipped: bool = False) -> None:
        status = "finding" if finding else ("skipped" if skipped else "ok")
        self.checks.append(Check(name, status, summary, finding))

    def to_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
            "checks": [asdict(c) for c in self.checks],
            "facts": self.facts,
        }


def _row(row: Troubleshooting, code: str, detail: str, cause: str | None = None) -> Finding:
    return Finding(code, row.symptom, cause or row.cause, row.action, detail, row.number)


def _from_problem(code: str, symptom: str, problem: Problem) -> Finding:
    return Finding(code, symptom, problem.cause, problem.fix, problem.detail)


# ---- Azure ------------------------------------------------------------------------------------------------------


def _failure(step: StepResult | None, verification: Verification) -> Problem:
    """Why a step failed: a failed step carries its problem; a step that never ran was stopped by the
    verification's blocking problem."""
    problem = step.problem if step else verification.problem
    assert problem is not None, "a failed verification step carries its problem"
    return problem


def _azure_checks(report: DoctorReport, verification: Verification) -> None:
    steps = {s.name: s for s in verification.steps}
    token = steps.get(Step.TOKEN)
    if token is None or not token.ok:
        problem = _failure(token, verification)
        summary = (
            "Azure could not be reached" if problem.code is ProblemCode.UNREACHABLE else "the credential was refused"
        )
        report.add(
            "credentials",
            summary,
            _from_problem(f"credentials_{problem.code}", "Syncs fail before any data is read", problem),
        )
        return
    report.add("credentials", token.detail)

    scope = steps.get(Step.SCOPE)
    if scope is None or not scope.ok:
        problem = _failure(scope, verification)
        if problem.code is ProblemCode.MISSING_ROLE:
            finding = _row(NO_USAGE, "scope_not_readable", problem.detail, f"{NO_USAGE.cause}: {problem.cause}")
        elif problem.code is ProblemCode.NOT_FOUND:
            finding = _row(
                EMPTY_SYNC,
                "scope_not_found",
                problem.detail,
                f"{EMPTY_SYNC.cause}: the scope {verification.connection.scope} does not exist ({problem.cause})",
            )
        else:
            finding = _from_problem(f"scope_{problem.code}", "The connection's scope cannot be read", problem)
        report.add("tenant_and_subscription", "the scope's subscription is not usable by this credential", finding)
        return
    report.add("tenant_and_subscription", scope.detail)

    accounts = steps.get(Step.ACCOUNTS)
    if accounts is None or not accounts.ok:
        problem = _failure(accounts, verification)
        if problem.code is ProblemCode.NO_ACCOUNTS:
            finding = _row(EMPTY_SYNC, "no_accounts", problem.detail, f"{EMPTY_SYNC.cause}: {problem.cause}")
        elif problem.code is ProblemCode.MISSING_ROLE:
            finding = _row(NO_USAGE, "scope_not_readable", problem.detail, f"{NO_USAGE.cause}: {problem.cause}")
        else:
            finding = _from_problem(f"accounts_{problem.code}", "Accounts cannot be listed", problem)
        report.add("accounts_in_scope", "no Azure OpenAI account could be discovered", finding)
        return
    report.add(
        "accounts_in_scope",
        accounts.detail + ": " + ", ".join(f"{a.name} ({a.kind}, {a.location})" for a in verification.accounts),
    )

    unreadable = verification.unreadable
    failed = [
        s
        for s in verification.steps
        if s.name == Step.METRICS and not s.ok and s.subject not in {a.name for a in unreadable}
    ]
    if unreadable:
        names = ", ".join(a.name for a in unreadable)
        report.add(
            "accounts_readable",
            f"{len(unreadable)} of {len(verification.accounts)} account(s) refuse their metrics",
            _row(
                NO_USAGE,
                "accounts_unreadable",
                f"Azure Monitor answered AuthorizationFailed for: {names}",
                f"{NO_USAGE.cause}: {names}",
            ),
        )
    elif failed:
        problem = _failure(failed[0], verification)
        report.add(
            "accounts_readable",
            "metrics queries failed",
            _from_problem("metrics_failed", "Metrics cannot be read", problem),
        )
    else:
        report.add("accounts_readable", f"all {len(verification.accounts)} account(s) are readable")

    coverage = steps.get(Step.COVERAGE)
    coverage_problem = coverage.problem if coverage is not None else None
    if coverage_problem is not None and coverage_problem.code is ProblemCode.ROLE_ON_ONE_ACCOUNT:
        report.add(
            "role_scope",
            "the role assignment is narrower than the scope",
            _row(ONE_RESOURCE, "role_on_one_account", coverage_problem.cause),
        )
    else:
        paths = verification.paths
        text = (
            ", ".join(
                f"{sub}: {'batch API' if path == 'batch' else 'per-resource API'}"
                for sub, path in sorted(paths.items())
            )
            or "no readable account to probe"
        )
        report.add("role_scope", f"metrics API per subscription: {text}")
    report.facts["metrics_api"] = dict(verification.paths)

    readable = [verification.checks[a.resource_id] for a in verification.readable]
    with_metrics = [c for c in readable if c.queries]
    if with_metrics:
        total = sum(c.tokens or 0 for c in with_metrics)
        days = verification.probe_days
        window = f"{days[0]}..{days[-1]}" if days else ""
        report.facts["azure_tokens_last_days"] = total
        if total == 0:
            names = ", ".join(c.account.name for c in readable)
            report.add(
                "recent_usage_in_azure",
                f"no token usage in Azure for {window}",
                _row(
                    EMPTY_SYNC,
                    "empty_sync",
                    f"{len(readable)} readable account(s) ({names}) report no token usage for {window}.",
                    f"{EMPTY_SYNC.cause}, or the accounts have no traffic",
                ),
            )
        else:
            report.add("recent_usage_in_azure", f"{total:,} tokens in Azure for {window}")


# ---- warehouse --------------------------------------------------------------------------------------------------


def _usage_check(
    report: DoctorReport, con: duckdb.DuckDBPyConnection, verification: Verification, connection: str
) -> None:
    """Azure's recent usage (per day, deployment, region, model) must be in usage_daily for the synced days."""
    checks = [verification.checks[a.resource_id] for a in verification.readable]
    if not checks or not verification.probe_days:
        return
    rids = [c.account.resource_id.lower() for c in checks]
    days = verification.probe_days
    comparable = queries.synced_account_days(con, rids, days)
    if not comparable:
        report.add(
            "usage_in_warehouse", f"skipped: no day of {days[0]}..{days[-1]} was synced after it ended", skipped=True
        )
        return
    rows = queries.usage_keys(con, rids, days)
    have_deployments = {(r.resource_id, r.usage_date, r.deployment) for r in rows}
    have_regions = {(r.resource_id, r.metric_region) for r in rows if (r.resource_id, r.usage_date) in comparable}
    have_models = {(r.resource_id, r.model_name) for r in rows if (r.resource_id, r.usage_date) in comparable}
    other_connections = sorted({r.connection for r in rows if r.connection != connection})
    expected_deployments: set[tuple[str, date, str | None]] = set()
    expected_regions: set[tuple[str, str | None]] = set()
    expected_models: set[tuple[str, str | None]] = set()
    names = {}
    for check in checks:
        rid = check.account.resource_id.lower()
        names[rid] = check.account.name
        for key, tokens in check.usage.items():
            if tokens <= 0 or (rid, key.day) not in comparable:
                continue
            expected_deployments.add((rid, key.day, key.deployment))
            expected_regions.add((rid, key.region))
            if key.family == "models" and key.model_name:
                expected_models.add((rid, key.model_name))
    missing_deployments = sorted(expected_deployments - have_deployments, key=lambda k: (k[1], k[0], k[2] or ""))
    missing_regions = sorted(expected_regions - have_regions, key=lambda k: (k[0], k[1] or ""))
    missing_models = sorted(expected_models - have_models, key=lambda k: (k[0], k[1] or ""))
    report.facts["compared_days"] = sorted({str(day) for _, day in comparable})
    if other_connections:
        report.facts["usage_counted_under"] = other_connections
    if not (missing_deployments or missing_regions or missing_models):
        report.add(
            "usage_in_warehouse",
            f"every deployment, region and model Azure reports for "
            f"{len({d for _, d in comparable})} synced day(s) is in the warehouse "
            f"({len(expected_deployments)} deployment-days, {len({r for _, r in expected_regions})} "
            f"region(s), {len({m for _, m in expected_models})} model(s))",
        )
        return
    parts = []
    if missing_deployments:
        parts.append(
            "deployments "
            + ", ".join(f"{names[rid]}/{dep or '(none)'} on {day}" for rid, day, dep in missing_deployments[:6])
            + (f" and {len(missing_deployments) - 6} more" if len(missing_deployments) > 6 else "")
        )
    if missing_regions:
        parts.append(
            "regions " + ", ".join(f"{names[rid]}/{region or '(not reported)'}" for rid, region in missing_regions[:6])
        )
    if missing_models:
        parts.append("models " + ", ".join(f"{names[rid]}/{model}" for rid, model in missing_models[:6]))
    first = min(k[1] for k in missing_deployments) if missing_deployments else days[0]
    last = max(k[1] for k in missing_deployments) if missing_deployments else days[-1]
    report.add(
        "usage_in_warehouse",
        "recent usage reported by Azure is missing from the warehouse",
        Finding(
            "usage_missing",
            "Recent usage is missing for some deployments, regions or models",
            "Those days were synced before Azure Monitor had the data (provider delay), or a sync failed part-way",
            f"Re-sync the days: doow-azure sync --from {first} --to {last} --connection {connection}",
            "Missing: " + "; ".join(parts),
        ),
    )


def _delay_check(
    report: DoctorReport,
    con: duckdb.DuckDBPyConnection,
    verification: Verification | None,
    connection: str,
    now: datetime,
) -> None:
    latest = queries.latest_point(con, connection)
    if latest is None:
        report.add("provider_delay", "skipped: no data point of this connection in the warehouse", skipped=True)
        return
    latest = as_utc(latest)
    bucket_end = latest + timedelta(days=1)
    age_hours = max(0.0, (now - bucket_end).total_seconds() / 3600)
    report.facts["latest_data_point"] = latest.isoformat()
    report.facts["latest_data_point_age_hours"] = round(age_hours, 1)
    azure_latest = None
    if verification is not None:
        days = [key.day for c in verification.checks.values() for key, tokens in c.usage.items() if tokens > 0]
        azure_latest = max(days) if days else None
    summary = f"latest data point: the day {latest.date()} (its bucket ended {age_hours:.0f} h ago)" + (
        f"; Azure's latest day with usage: {azure_latest}" if azure_latest else ""
    )
    if azure_latest is not None and latest.date() < azure_latest - timedelta(days=1):
        report.add(
            "provider_delay",
            summary,
            Finding(
                "stale_data",
                f"Usage stops at {latest.date()}",
                f"The daily sync has not run since, or it fails (Azure has usage up to {azure_latest})",
                "Check the daily schedule in Dagster, or run: doow-azure sync --from "
                f"{latest.date() + timedelta(days=1)} "
                f"--to {azure_latest} --connection {connection}",
            ),
        )
    else:
        report.add("provider_delay", summary)


def _events_check(report: DoctorReport, con: duckdb.DuckDBPyConnection, facts: dict[str, Any], connection: str) -> None:
    since = facts.get("last_successful_sync")
    rows = queries.errors_since(con, connection, since)
    report.facts["warn_events"] = queries.warning_counts(con, connection)
    if not rows:
        report.add("sync_errors", "no error recorded since the last successful sync" + (f" ({since})" if since else ""))
        return
    last = rows[0]
    cause, _, fix = last.message.partition(" Fix: ")
    report.add(
        "sync_errors",
        f"{len(rows)} error(s) recorded since the last successful sync",
        Finding(
            f"sync_error_{last.code}",
            f"Syncs fail (last error {last.time:%Y-%m-%d %H:%M} UTC, partition {last.partition})",
            cause,
            fix or "Run `doow-azure doctor` checks above, fix the cause, then re-sync the failed days",
            "; ".join(f"{e.time:%Y-%m-%d %H:%M} {e.code}: {e.message[:160]}" for e in rows),
        ),
    )


def _warehouse_checks(
    report: DoctorReport, warehouse: Path, verification: Verification | None, connection: Connection, now: datetime
) -> None:
    if not Path(warehouse).exists():
        report.facts["state"] = "never synced"
        report.add("warehouse", f"skipped: no warehouse at {warehouse} yet (never synced)", skipped=True)
        return
    with connect(warehouse, read_only=True, wait_seconds=30) as con:
        if "connection_status" not in queries.table_names(con):
            report.add("warehouse", "skipped: the warehouse has no azure_openai schema yet", skipped=True)
            return
        facts = queries.connection_status(con, [connection.name]).get(connection.name, {})
        report.facts.update({k: (str(v) if isinstance(v, (datetime, date)) else v) for k, v in facts.items()})
        report.facts.setdefault("state", "never synced")
        probed = verification if verification is not None and verification.probe_days else None
        if probed is not None:
            _usage_check(report, con, probed, connection.name)
        _delay_check(report, con, probed, connection.name, now)
        _events_check(report, con, facts, connection.name)


def run_doctor(
    config: ProjectConfig,
    connection: Connection,
    secret: str | None,
    *,
    now: datetime | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> DoctorReport:
    """Runs every check; `on_step(StepResult)` sees the Azure verification steps as they complete."""
    now = now or config.settings.clock.now()
    report = DoctorReport(connection.name)
    report.facts.update(
        {
            "scope": connection.scope,
            "tenant_id": connection.tenant_id,
            "client_id": connection.client_id,
            "cloud": connection.cloud,
        }
    )
    verification = None
    if not secret:
        report.add(
            "credentials",
            f"no secret in {connection.client_secret_env}",
            Finding(
                "secret_missing",
                "Syncs fail before any data is read",
                f"The environment variable {connection.client_secret_env} is unset and not in {config.env_file}",
                "Reconnect with `doow-azure disconnect "
                + connection.name
                + "` then `doow-azure connect "
                + connection.name
                + " ...`, or put the secret in .env",
            ),
        )
    else:
        verifier = ConnectionVerifier(
            connection, secret, config.settings.endpoints, now=now, probe_days=PROBE_DAYS, split=True
        )
        for step in verifier.run():
            if on_step:
                on_step(step)
        verification = verifier.result
        _azure_checks(report, verification)
    _landing_check(report, config, connection)
    _warehouse_checks(report, config.warehouse_path, verification, connection, now)
    analyst_copy = config.analyst_copy_path
    if analyst_copy is not None:
        stamp = published_at(analyst_copy)
        report.facts["analyst_copy"] = str(analyst_copy)
        report.facts["analyst_copy_published_at"] = stamp.isoformat() if stamp else None
    return report


def _landing_check(report: DoctorReport, config: ProjectConfig, connection: Connection) -> None:
    """The landing zone answers a listing of this connection's manifests (a blob container: account,
    credential and role)."""
    location = config.landing_location
    report.facts["landing"] = str(location)
    try:
        Landing(location).check_access(connection.name)
    except WarehouseError as exc:
        report.add(
            "landing_zone",
            f"cannot reach the landing zone {location}",
            Finding(
                "landing_unreachable",
                "Syncs fail before any data lands",
                str(exc).split(" Fix: ", 1)[0],
                str(exc).split(" Fix: ", 1)[-1],
            ),
        )
        return
    report.add("landing_zone", f"the landing zone {location} answers")
