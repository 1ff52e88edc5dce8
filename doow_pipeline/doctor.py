"""`doow-azure doctor`: troubleshooting checks for one connection, against Azure and the warehouse.

Each finding carries the symptom a person sees, its likely cause and the next action, following the
troubleshooting table:

| Symptom | Likely cause | Next action |
|---|---|---|
| No deployment usage appears | The principal cannot read the account or Azure Monitor data | Confirm the role assignment on the resource, subscription and monitoring scope |
| Only one resource appears | The role assignment covers only one account | Add each resource, or assign Monitoring Reader at resource-group or subscription scope |
| Credentials validate but sync is empty | Usage is in another subscription, resource or region | Confirm the scope, subscription and region before reconnecting |

plus: the credential works and belongs to the intended tenant and subscription; recent usage Azure
reports (per deployment, region and model, last 7 complete days) is in the warehouse; the age of the
latest data point; errors recorded in `azure_openai.sync_events` since the last successful sync.

Findings are data (no printing); the CLI renders them. A healthy connection yields no finding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from .azure.errors import AzureProblem
from .clock import utc_now
from .config import Connection, ProjectConfig
from .verify import ConnectionVerifier, Verification
from .warehouse.store import connect

NO_USAGE = ("No deployment usage appears", "The principal cannot read the account or Azure Monitor data",
            "Confirm the role assignment on the resource, subscription and monitoring scope")
ONE_RESOURCE = ("Only one resource appears", "The role assignment covers only one account",
                "Add each resource, or assign Monitoring Reader at resource-group or subscription scope")
EMPTY_SYNC = ("Credentials validate but sync is empty", "Usage is in another subscription, resource or region",
              "Confirm the scope, subscription and region before reconnecting")
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
    facts: dict = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        return [c.finding for c in self.checks if c.finding is not None]

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, name: str, summary: str, finding: Finding | None = None, skipped: bool = False) -> None:
        status = "finding" if finding else ("skipped" if skipped else "ok")
        self.checks.append(Check(name, status, summary, finding))

    def to_dict(self) -> dict:
        return {"connection": self.connection, "ok": self.ok, "findings": [asdict(f) for f in self.findings],
                "checks": [asdict(c) for c in self.checks], "facts": self.facts}


def _row(row: tuple[str, str, str], number: int, code: str, detail: str, cause: str | None = None) -> Finding:
    symptom, likely, action = row
    return Finding(code, symptom, cause or likely, action, detail, number)


def _from_problem(code: str, symptom: str, problem: AzureProblem) -> Finding:
    return Finding(code, symptom, problem.cause, problem.fix, problem.detail)


# ---- Azure ------------------------------------------------------------------------------------------------------

def _azure_checks(report: DoctorReport, verification: Verification) -> None:
    steps = {s.name: s for s in verification.steps}
    token = steps.get("token")
    if token is None or not token.ok:
        problem = token.problem if token else verification.problem
        report.add("credentials", "the credential was refused",
                   _from_problem(f"credentials_{problem.code}", "Syncs fail before any data is read", problem))
        return
    report.add("credentials", token.detail)

    scope = steps.get("scope")
    if scope is None or not scope.ok:
        problem = scope.problem
        if problem.code == "missing_role":
            finding = _row(NO_USAGE, 1, "scope_not_readable", problem.detail,
                           f"{NO_USAGE[1]}: {problem.cause}")
        elif problem.code == "not_found":
            finding = _row(EMPTY_SYNC, 3, "scope_not_found", problem.detail,
                           f"{EMPTY_SYNC[1]}: the scope {verification.connection.scope} does not exist ({problem.cause})")
        else:
            finding = _from_problem(f"scope_{problem.code}", "The connection's scope cannot be read", problem)
        report.add("tenant_and_subscription", "the scope's subscription is not usable by this credential", finding)
        return
    report.add("tenant_and_subscription", scope.detail)

    accounts = steps.get("accounts")
    if accounts is None or not accounts.ok:
        problem = accounts.problem
        if problem.code == "no_accounts":
            finding = _row(EMPTY_SYNC, 3, "no_accounts", problem.detail,
                           f"{EMPTY_SYNC[1]}: {problem.cause}")
        elif problem.code == "missing_role":
            finding = _row(NO_USAGE, 1, "scope_not_readable", problem.detail, f"{NO_USAGE[1]}: {problem.cause}")
        else:
            finding = _from_problem(f"accounts_{problem.code}", "Accounts cannot be listed", problem)
        report.add("accounts_in_scope", "no Azure OpenAI account could be discovered", finding)
        return
    report.add("accounts_in_scope", accounts.detail + ": " + ", ".join(
        f"{a.name} ({a.kind}, {a.location})" for a in verification.accounts))

    unreadable = verification.unreadable
    failed = [s for s in verification.steps if s.name == "metrics" and not s.ok
              and s.subject not in {a.name for a in unreadable}]
    if unreadable:
        names = ", ".join(a.name for a in unreadable)
        report.add("accounts_readable", f"{len(unreadable)} of {len(verification.accounts)} account(s) refuse their "
                   "metrics", _row(NO_USAGE, 1, "accounts_unreadable",
                                   f"Azure Monitor answered AuthorizationFailed for: {names}",
                                   f"{NO_USAGE[1]}: {names}"))
    elif failed:
        problem = failed[0].problem
        report.add("accounts_readable", "metrics queries failed",
                   _from_problem("metrics_failed", "Metrics cannot be read", problem))
    else:
        report.add("accounts_readable", f"all {len(verification.accounts)} account(s) are readable")

    coverage = steps.get("coverage")
    if coverage is not None and coverage.problem is not None and coverage.problem.code == "role_on_one_account":
        report.add("role_scope", "the role assignment is narrower than the scope",
                   _row(ONE_RESOURCE, 2, "role_on_one_account", coverage.problem.cause))
    else:
        paths = verification.paths
        text = ", ".join(f"{sub}: {'batch API' if path == 'batch' else 'per-resource API'}"
                         for sub, path in sorted(paths.items())) or "no readable account to probe"
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
            report.add("recent_usage_in_azure", f"no token usage in Azure for {window}",
                       _row(EMPTY_SYNC, 3, "empty_sync",
                            f"{len(readable)} readable account(s) ({names}) report no token usage for {window}.",
                            f"{EMPTY_SYNC[1]}, or the accounts have no traffic"))
        else:
            report.add("recent_usage_in_azure", f"{total:,} tokens in Azure for {window}")


# ---- warehouse --------------------------------------------------------------------------------------------------

def _warehouse_facts(con, connection: str) -> dict:
    row = con.execute("SELECT state, last_successful_sync, last_error, last_error_time, usage_rows, total_tokens, "
                      "first_day, last_day FROM azure_openai.connection_status WHERE connection = ?",
                      [connection]).fetchone()
    if row is None:
        return {}
    keys = ("state", "last_successful_sync", "last_error", "last_error_time", "usage_rows", "total_tokens",
            "first_day", "last_day")
    return dict(zip(keys, row))


def _usage_check(report: DoctorReport, con, verification: Verification, connection: str) -> None:
    """Azure's recent usage (per day, deployment, region, model) must be in usage_daily for the synced days."""
    checks = [verification.checks[a.resource_id] for a in verification.readable]
    if not checks or not verification.probe_days:
        return
    rids = [c.account.resource_id.lower() for c in checks]
    days = verification.probe_days
    synced = con.execute(
        "SELECT DISTINCT lower(resource_id), usage_date FROM azure_openai.accounts WHERE lower(resource_id) IN "
        "(SELECT unnest($rids)) AND usage_date IN (SELECT unnest($days)) AND readable "
        "AND synced_at >= CAST(usage_date AS TIMESTAMP) + INTERVAL 1 DAY",
        {"rids": rids, "days": days}).fetchall()
    comparable = {(rid, day) for rid, day in synced}
    if not comparable:
        report.add("usage_in_warehouse", f"skipped: no day of {days[0]}..{days[-1]} was synced after it ended",
                   skipped=True)
        return
    rows = con.execute(
        "SELECT lower(resource_id), usage_date, deployment, model_name, metric_region, connection "
        "FROM azure_openai.usage_daily WHERE lower(resource_id) IN (SELECT unnest($rids)) "
        "AND usage_date IN (SELECT unnest($days))", {"rids": rids, "days": days}).fetchall()
    have_deployments = {(rid, day, dep) for rid, day, dep, _, _, _ in rows}
    have_regions = {(rid, region) for rid, day, _, _, region, _ in rows if (rid, day) in comparable}
    have_models = {(rid, model) for rid, day, _, model, _, _ in rows if (rid, day) in comparable}
    other_connections = sorted({conn for *_, conn in rows if conn != connection})
    expected_deployments, expected_regions, expected_models = set(), set(), set()
    names = {}
    for check in checks:
        rid = check.account.resource_id.lower()
        names[rid] = check.account.name
        for (day, family, deployment, model, _version, region), tokens in check.usage.items():
            if tokens <= 0 or (rid, day) not in comparable:
                continue
            expected_deployments.add((rid, day, deployment))
            expected_regions.add((rid, region))
            if family == "models" and model:
                expected_models.add((rid, model))
    missing_deployments = sorted(expected_deployments - have_deployments, key=lambda k: (k[1], k[0], k[2] or ""))
    missing_regions = sorted(expected_regions - have_regions, key=lambda k: (k[0], k[1] or ""))
    missing_models = sorted(expected_models - have_models)
    report.facts["compared_days"] = sorted({str(day) for _, day in comparable})
    if other_connections:
        report.facts["usage_counted_under"] = other_connections
    if not (missing_deployments or missing_regions or missing_models):
        report.add("usage_in_warehouse", f"every deployment, region and model Azure reports for "
                   f"{len({d for _, d in comparable})} synced day(s) is in the warehouse "
                   f"({len(expected_deployments)} deployment-days, {len({r for _, r in expected_regions})} "
                   f"region(s), {len({m for _, m in expected_models})} model(s))")
        return
    parts = []
    if missing_deployments:
        parts.append("deployments " + ", ".join(f"{names[rid]}/{dep or '(none)'} on {day}"
                                                for rid, day, dep in missing_deployments[:6])
                     + (f" and {len(missing_deployments) - 6} more" if len(missing_deployments) > 6 else ""))
    if missing_regions:
        parts.append("regions " + ", ".join(f"{names[rid]}/{region or '(not reported)'}"
                                            for rid, region in missing_regions[:6]))
    if missing_models:
        parts.append("models " + ", ".join(f"{names[rid]}/{model}" for rid, model in missing_models[:6]))
    first = min(d for d in (k[1] for k in missing_deployments)) if missing_deployments else days[0]
    last = max(d for d in (k[1] for k in missing_deployments)) if missing_deployments else days[-1]
    report.add("usage_in_warehouse", "recent usage reported by Azure is missing from the warehouse", Finding(
        "usage_missing", "Recent usage is missing for some deployments, regions or models",
        "Those days were synced before Azure Monitor had the data (provider delay), or a sync failed part-way",
        f"Re-sync the days: doow-azure sync --from {first} --to {last} --connection {connection}",
        "Missing: " + "; ".join(parts)))


def _delay_check(report: DoctorReport, con, verification: Verification | None, connection: str,
                 now: datetime) -> None:
    latest = con.execute('SELECT max("timestamp") FROM azure_openai.metric_points WHERE connection = ?',
                         [connection]).fetchone()[0]
    if latest is None:
        report.add("provider_delay", "skipped: no data point of this connection in the warehouse", skipped=True)
        return
    latest = latest.astimezone(timezone.utc) if latest.tzinfo else latest.replace(tzinfo=timezone.utc)
    bucket_end = latest + timedelta(days=1)
    age_hours = max(0.0, (now - bucket_end).total_seconds() / 3600)
    report.facts["latest_data_point"] = latest.isoformat()
    report.facts["latest_data_point_age_hours"] = round(age_hours, 1)
    azure_latest = None
    if verification is not None:
        days = [key[0] for c in verification.checks.values() for key, tokens in c.usage.items() if tokens > 0]
        azure_latest = max(days) if days else None
    summary = (f"latest data point: the day {latest.date()} (its bucket ended {age_hours:.0f} h ago)"
               + (f"; Azure's latest day with usage: {azure_latest}" if azure_latest else ""))
    if azure_latest is not None and latest.date() < azure_latest - timedelta(days=1):
        report.add("provider_delay", summary, Finding(
            "stale_data", f"Usage stops at {latest.date()}",
            "The daily sync has not run since, or it fails (Azure has usage up to "
            f"{azure_latest})",
            f"Check the daily schedule in Dagster, or run: doow-azure sync --from {latest.date() + timedelta(days=1)} "
            f"--to {azure_latest} --connection {connection}"))
    else:
        report.add("provider_delay", summary)


def _events_check(report: DoctorReport, con, facts: dict, connection: str) -> None:
    since = facts.get("last_successful_sync")
    rows = con.execute(
        'SELECT "time", "partition", code, message, resource FROM azure_openai.sync_events WHERE connection = ? '
        "AND level = 'ERROR' AND (CAST(? AS TIMESTAMP) IS NULL OR \"time\" > CAST(? AS TIMESTAMP)) "
        'ORDER BY "time" DESC LIMIT 5', [connection, since, since]).fetchall()
    warnings = con.execute(
        "SELECT code, count(*) FROM azure_openai.sync_events WHERE connection = ? AND level = 'WARN' "
        "GROUP BY code ORDER BY code", [connection]).fetchall()
    report.facts["warn_events"] = {code: count for code, count in warnings}
    if not rows:
        report.add("sync_errors", "no error recorded since the last successful sync"
                   + (f" ({since})" if since else ""))
        return
    when, partition, code, message, _resource = rows[0]
    cause, _, fix = message.partition(" Fix: ")
    report.add("sync_errors", f"{len(rows)} error(s) recorded since the last successful sync", Finding(
        f"sync_error_{code}", f"Syncs fail (last error {when:%Y-%m-%d %H:%M} UTC, partition {partition})", cause,
        fix or "Run `doow-azure doctor` checks above, fix the cause, then re-sync the failed days",
        "; ".join(f"{t:%Y-%m-%d %H:%M} {c}: {m[:160]}" for t, _p, c, m, _r in rows)))


def _warehouse_checks(report: DoctorReport, warehouse: Path, verification: Verification | None,
                      connection: Connection, now: datetime) -> None:
    if not Path(warehouse).exists():
        report.facts["state"] = "never synced"
        report.add("warehouse", f"skipped: no warehouse at {warehouse} yet (never synced)", skipped=True)
        return
    with connect(warehouse, read_only=True, wait_seconds=30) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'azure_openai'").fetchall()}
        if "connection_status" not in tables:
            report.add("warehouse", "skipped: the warehouse has no azure_openai schema yet", skipped=True)
            return
        facts = _warehouse_facts(con, connection.name)
        report.facts.update({k: (str(v) if isinstance(v, (datetime, date)) else v) for k, v in facts.items()})
        report.facts.setdefault("state", "never synced")
        probed = verification if verification is not None and verification.probe_days else None
        if probed is not None:
            _usage_check(report, con, probed, connection.name)
        _delay_check(report, con, probed, connection.name, now)
        _events_check(report, con, facts, connection.name)


def run_doctor(config: ProjectConfig, connection: Connection, secret: str | None, *, now: datetime | None = None,
               on_step=None) -> DoctorReport:
    """Runs every check; `on_step(StepResult)` sees the Azure verification steps as they complete."""
    now = now or utc_now()
    report = DoctorReport(connection.name)
    report.facts.update({"scope": connection.scope, "tenant_id": connection.tenant_id,
                         "client_id": connection.client_id, "cloud": connection.cloud})
    verification = None
    if not secret:
        report.add("credentials", f"no secret in {connection.client_secret_env}", Finding(
            "secret_missing", "Syncs fail before any data is read",
            f"The environment variable {connection.client_secret_env} is unset and not in {config.env_file}",
            "Reconnect with `doow-azure disconnect " + connection.name + "` then `doow-azure connect " + connection.name
            + " ...`, or put the secret in .env"))
    else:
        verifier = ConnectionVerifier(connection, secret, config.settings.endpoints, now=now, probe_days=PROBE_DAYS,
                                      split=True)
        for step in verifier.run():
            if on_step:
                on_step(step)
        verification = verifier.result
        _azure_checks(report, verification)
    _warehouse_checks(report, config.warehouse_path, verification, connection, now)
    return report
