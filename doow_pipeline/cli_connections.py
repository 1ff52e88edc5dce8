"""The connection lifecycle commands of `doow-azure`: connect, status, doctor and disconnect.

connections.yaml is found through DOOW_CONNECTIONS (default ./connections.yaml); the secrets live in the
`.env` beside it (mode 0600). Exit codes: 0 ok, 1 a finding or failure, 2 usage error.
The client secret is read from a hidden prompt or stdin only, and never printed: every text that could
carry it is scrubbed before output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import connection_files as files
from .azure.extract import oldest_syncable_day
from .cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, app, usage_summary
from .clock import utc_now, utc_today
from .config import (
    ConfigError,
    Connection,
    Endpoints,
    ProjectConfig,
    config_path,
    export_env_file,
    load_config,
    secrets_environment,
)
from .verify import ConnectionVerifier, StepResult, quiet_azure_logging
from .warehouse.store import connect as connect_warehouse

SPARK = "▁▂▃▄▅▆▇█"
STATUS_DAYS = 7


# ---- output -------------------------------------------------------------------------------------------------------

class Output:
    """stdout/stderr consoles for one command: rich when a TTY, plain text (no colours, no live display,
    wide lines) otherwise. Every text passes through `scrub` first."""

    def __init__(self, secret: str | None = None):
        self.secret = secret
        self.out = self._console(sys.stdout, stderr=False)
        self.err = self._console(sys.stderr, stderr=True)
        self.tty = self.out.is_terminal

    @staticmethod
    def _console(stream, stderr: bool) -> Console:
        tty = hasattr(stream, "isatty") and stream.isatty()
        return Console(stderr=stderr, highlight=False, width=None if tty else 200,
                       no_color=not tty, force_terminal=None if tty else False, soft_wrap=not tty)

    def scrub(self, text: str) -> str:
        text = str(text)
        return text.replace(self.secret, "***") if self.secret and self.secret in text else text

    def line(self, text: str = "", style: str | None = None, stderr: bool = False) -> None:
        console = self.err if stderr else self.out
        console.print(Text(self.scrub(text), style=style or ""), soft_wrap=True)

    def table(self, table: Table) -> None:
        self.out.print(table)

    def json(self, payload) -> None:
        sys.stdout.write(self.scrub(json.dumps(payload, default=str, indent=1)) + "\n")

    def error(self, text: str) -> None:
        self.line(f"error: {text}", "bold red", stderr=True)


def _usage_error(output: Output, message: str) -> typer.Exit:
    output.error(message)
    return typer.Exit(EXIT_USAGE)


def _new_table(*columns: str, title: str | None = None, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return table


def _num(value) -> str:
    return "" if value is None else f"{int(value):,}"


def _when(value) -> str:
    if value is None:
        return "never"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return f"{value} UTC"


def sparkline(values: list[int | None]) -> str:
    """One character per day: ▁..█ scaled to the window's maximum; a space where there is no data."""
    present = [v for v in values if v is not None]
    top = max(present) if present else 0
    chars = []
    for value in values:
        if value is None:
            chars.append(" ")
        elif top <= 0:
            chars.append(SPARK[0])
        else:
            chars.append(SPARK[min(len(SPARK) - 1, int(value / top * (len(SPARK) - 1) + 0.5))])
    return "".join(chars)


def _load_project(output: Output, check_secrets: bool = False) -> ProjectConfig:
    try:
        return load_config(check_secrets=check_secrets)
    except ConfigError as exc:
        raise _usage_error(output, str(exc)) from None


def _connection_or_exit(output: Output, config: ProjectConfig, name: str) -> Connection:
    try:
        return config.connection(name)
    except KeyError as exc:
        raise _usage_error(output, str(exc.args[0])) from None


# ---- connect ------------------------------------------------------------------------------------------------------

STEP_TITLES = {"token": "Token", "scope": "Scope", "accounts": "Accounts", "metrics": "Metrics", "batch": "Batch API",
               "coverage": "Coverage"}


def _step_line(output: Output, step: StepResult) -> None:
    if not step.ok:
        mark, style = "✗", "red"
    elif step.warning:
        mark, style = "!", "yellow"
    else:
        mark, style = "✓", "green"
    output.line(f"{mark} {STEP_TITLES.get(step.name, step.name)}: {step.detail}", style)


def _accounts_table(accounts, subscriptions) -> Table:
    table = _new_table("name", "kind", "region", "subscription", "resource group",
                       title="Azure OpenAI accounts in scope")
    for account in accounts:
        sub = subscriptions.get(account.subscription_id)
        table.add_row(account.name, account.kind, account.location, sub.display_name if sub else
                      account.subscription_id, account.resource_group)
    return table


def _read_endpoints(output: Output, value: str) -> dict:
    """--endpoints-json: a path to the emulator's endpoints.json, or its ready line itself."""
    text = value
    candidate = Path(value).expanduser()
    if not value.lstrip().startswith("{") and candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
        return Endpoints.model_validate(raw).model_dump(exclude_none=True)
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        raise _usage_error(output, f"--endpoints-json: not an endpoints object (authority, arm, metrics, ca_cert) "
                           f"or a file holding one: {exc}") from None


def _read_secret(output: Output, from_stdin: bool) -> str:
    if from_stdin:
        secret = sys.stdin.read().rstrip("\r\n")
    else:
        secret = typer.prompt("Client secret (the secret's Value, input hidden)", hide_input=True, default="",
                              show_default=False, err=True)
    if not secret.strip():
        raise _usage_error(output, "the client secret is empty; paste the secret's Value (not its Secret ID)")
    return secret


def _new_settings() -> dict:
    return {"warehouse": "data/doow.duckdb", "start_date": oldest_syncable_day(utc_now())}


def _run_initial_sync(output: Output, config_file: Path, connection: Connection, secret: str, days: int) -> bool:
    from .runs import sync_range  # Dagster loads only when a sync is asked for

    config = load_config(config_file, check_secrets=False)
    os.environ[connection.client_secret_env] = secret  # this process syncs with the secret just verified
    export_env_file(config)
    last = utc_today() - timedelta(days=1)
    first = max(last - timedelta(days=days - 1), config.settings.start_date)
    if first > last:
        output.line(f"Initial sync skipped: settings.start_date {config.settings.start_date} is after {last}.",
                    "yellow")
        return True
    output.line(f"Initial sync of {connection.name}: {first} .. {last} (UTC)")
    jobs = 2  # the connection's fetch run, then the DuckDB writer
    dagster_log = io.StringIO()  # Dagster's console log: shown only when a run fails
    if output.tty:
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total} runs"), TimeElapsedColumn(),
                            console=output.out, transient=False, redirect_stderr=False, redirect_stdout=False)
        with progress, contextlib.redirect_stderr(dagster_log):
            task = progress.add_task("initial sync", total=jobs)

            def advance(job: str, report) -> None:
                if report is None:
                    progress.update(task, description=f"running {job}")
                else:
                    progress.advance(task)
                    if progress.tasks[0].completed >= jobs:
                        progress.update(task, description="initial sync done")

            reports = sync_range(config, first, last, [connection.name], on_progress=advance)
    else:
        def plain(job: str, report) -> None:
            if report is None:
                output.line(f"… {job}: running")
            else:
                output.line(f"{'✓' if report.success else '✗'} {job}: "
                            f"{'ok' if report.success else 'FAILED: ' + str(report.failure)}")

        with contextlib.redirect_stderr(dagster_log):
            reports = sync_range(config, first, last, [connection.name], on_progress=plain)
    for report in reports:
        for check, passed, severity, text in report.checks:
            if not passed:
                output.line(f"  check {check} ({severity}): {text}", "yellow")
    summary = [r for r in usage_summary(config, first, last) if r["connection"] == connection.name]
    _print_summary(output, summary, first, last)
    failed = [r for r in reports if not r.success]
    if failed:
        tail = dagster_log.getvalue().splitlines()[-40:]
        if tail:
            output.line("Dagster's log (last lines):", stderr=True)
            for line in tail:
                output.line("  " + line, stderr=True)
    for report in failed:
        output.error(f"initial sync run {report.job} failed: {report.failure}")
    return not failed


def _print_summary(output: Output, rows: list[dict], first: date, last: date) -> None:
    numbers = ("accounts", "deployments", "rows", "input", "output", "total", "requests")
    table = _new_table("connection", *numbers, title=f"Azure OpenAI usage {first} .. {last} (UTC)", right=numbers)
    for row in rows:
        table.add_row(str(row["connection"]), *(_num(v) for k, v in row.items() if k != "connection"))
    output.table(table)


@app.command(epilog="""Examples (T, C, S: tenant, client and subscription ids):

  doow-azure connect prod --tenant-id T --client-id C --scope /subscriptions/S

  printf %s "$SECRET" | doow-azure connect weu --tenant-id T --client-id C
  --scope /subscriptions/S/resourceGroups/rg-ai-weu --client-secret-stdin --initial-sync-days 7

  doow-azure connect legacy --tenant-id T --client-id C --scope aoai-dev-legacy
  --endpoints-json .demo/emulator/endpoints.json   (the Azure emulator)
""")
def connect(
    name: Annotated[str, typer.Argument(help="Connection name: lower-case letters, digits and underscores "
                                             "(part of Dagster asset keys).")],
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="Directory (tenant) ID of the app registration.")],
    client_id: Annotated[str, typer.Option("--client-id", help="Application (client) ID of the service principal.")],
    scope: Annotated[str, typer.Option("--scope", help="/subscriptions/<id>, /subscriptions/<id>/resourceGroups/"
                                                       "<rg>, an account's ARM id, or a bare account name.")],
    cloud: Annotated[str, typer.Option("--cloud", help="AzureCloud, AzureUSGovernment or AzureChinaCloud.")]
    = "AzureCloud",
    initial_sync_days: Annotated[int | None, typer.Option(
        "--initial-sync-days", min=1, max=93, help="After saving, sync the last N complete UTC days.")] = None,
    client_secret_stdin: Annotated[bool, typer.Option(
        "--client-secret-stdin", help="Read the client secret from stdin instead of a hidden prompt.")] = False,
    endpoints_json: Annotated[str | None, typer.Option(
        "--endpoints-json", metavar="PATH_OR_JSON",
        help="Explicit endpoints (the Azure emulator's ready line or its endpoints.json); written to "
             "settings.endpoints only when the file has none.")] = None,
) -> None:
    """Verify a service principal and scope against Azure, then save the connection.

    Nothing is saved unless every check passes: token, scope, accounts, metrics per account, batch API.
    The secret goes to .env (mode 0600) as DOOW_SECRET_<NAME>, never into connections.yaml.
    """
    output = Output()
    config_file = config_path()
    env_name = files.secret_env_name(name)
    try:
        connection = Connection(name=name, tenant_id=tenant_id.strip(), client_id=client_id.strip(),
                                client_secret_env=env_name, scope=scope, cloud=cloud)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise _usage_error(output, problems) from None

    # Everything that could be wrong with the files is found before asking Azure anything.
    yaml_old = files.read_bytes(config_file)
    existing: ProjectConfig | None = None
    if yaml_old is not None:
        try:
            existing = load_config(config_file, check_secrets=False)
        except ConfigError as exc:
            raise _usage_error(output, f"{exc}\nFix the file before adding a connection.") from None
        if any(c.name == name for c in existing.connections):
            raise _usage_error(output, f"a connection named {name!r} already exists in {config_file}; run "
                               f"`doow-azure disconnect {name}` first or choose another name")
        if any(c.client_secret_env == env_name for c in existing.connections):
            raise _usage_error(output, f"{env_name} is already used by another connection in {config_file}")
    endpoints = existing.settings.endpoints if existing else None
    new_endpoints = None
    if endpoints is None and endpoints_json:
        new_endpoints = _read_endpoints(output, endpoints_json)
        endpoints = Endpoints.model_validate(new_endpoints)
    elif endpoints is not None and endpoints_json:
        output.line(f"note: {config_file} already has settings.endpoints; --endpoints-json is ignored", "yellow",
                    stderr=True)
    if endpoints is not None and endpoints.ca_cert and not Path(endpoints.ca_cert).is_file():
        raise _usage_error(output, f"settings.endpoints.ca_cert {endpoints.ca_cert} does not exist; paste the "
                           "emulator's current ready line")
    env_file = config_file.resolve().parent / ".env"
    env_old = files.read_bytes(env_file)

    secret = _read_secret(output, client_secret_stdin)
    output.secret = secret
    try:
        yaml_new = files.yaml_with_connection(yaml_old.decode("utf-8") if yaml_old is not None else None, connection,
                                              _new_settings(), new_endpoints)
        env_new = files.env_with_secret(env_old.decode("utf-8") if env_old is not None else None, env_name, secret)
    except (files.ConnectionFileError, UnicodeDecodeError) as exc:
        raise _usage_error(output, output.scrub(str(exc))) from None

    output.line(f"Verifying connection {name}: scope {connection.scope} ({connection.cloud})", "bold")
    quiet_azure_logging()
    verifier = ConnectionVerifier(connection, secret, endpoints)
    status = output.out.status("verifying…") if output.tty else None

    def started(step: str, subject: str | None) -> None:
        if status is not None:
            status.update(f"{STEP_TITLES.get(step, step)}{': ' + subject if subject else ''}…")

    verifier.on_start = started
    try:
        if status is not None:
            status.start()
        for step in verifier.run():
            if status is not None:
                status.stop()
            _step_line(output, step)
            if step.name == "accounts" and step.ok:
                output.table(_accounts_table(verifier.result.accounts, verifier.result.subscriptions))
            if status is not None:
                status.start()
    except Exception as exc:  # never a traceback (it could show locals); say what failed
        output.error(f"verification stopped: {type(exc).__name__}: {output.scrub(str(exc))[:500]}")
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        if status is not None:
            status.stop()
    result = verifier.result
    if not result.ok:
        problem = result.problem
        output.error(f"{problem.cause} Fix: {problem.fix}")
        output.line(f"Nothing was saved ({config_file} and {env_file} are unchanged).", stderr=True)
        raise typer.Exit(EXIT_FAILURE)

    files.apply([files.PlannedWrite(env_file, env_new.encode("utf-8"), env_old, files.ENV_FILE_MODE),
                 files.PlannedWrite(config_file, yaml_new.encode("utf-8"), yaml_old)])
    paths = set(result.paths.values())
    path_text = ("batch API" if paths == {"batch"} else "per-resource API" if paths == {"per_resource"}
                 else "batch API where allowed, else per-resource API")
    output.line(f"Saved connection {name} to {config_file} (secret in {env_file} as {env_name}; metrics via "
                f"{path_text}).", "bold green")
    if result.warnings:
        output.line(f"{len(result.warnings)} warning(s) above; run `doow-azure doctor {name}` after the first sync.",
                    "yellow")
    if initial_sync_days:
        try:
            ok = _run_initial_sync(output, config_file, connection, secret, initial_sync_days)
        except Exception as exc:
            output.error(f"initial sync failed: {type(exc).__name__}: {output.scrub(str(exc))[:500]}")
            ok = False
        if not ok:
            output.line(f"The connection is saved; fix the cause, then run `doow-azure sync` or "
                        f"`doow-azure doctor {name}`.", stderr=True)
            raise typer.Exit(EXIT_FAILURE)
    raise typer.Exit(EXIT_OK)


# ---- status -------------------------------------------------------------------------------------------------------

def _status_rows(config: ProjectConfig, names: list[str], first: date, last: date) -> dict[str, dict]:
    """Per connection: status view row, usage groups and per-day trend (read-only)."""
    result = {name: {"connection": name, "state": "never synced", "last_successful_sync": None, "last_error": None,
                     "last_error_time": None, "accounts_covered": 0, "accounts_in_scope": 0, "usage_rows_all": 0,
                     "usage": [], "totals": {"rows": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                                             "requests": 0}, "trend": []} for name in names}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if not config.warehouse_path.exists():
        for item in result.values():
            item["trend"] = [{"day": str(d), "total_tokens": None} for d in days]
        return result
    with connect_warehouse(config.warehouse_path, read_only=True, wait_seconds=10) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'azure_openai'").fetchall()}
        if "connection_status" in tables:
            for row in con.execute(
                    "SELECT connection, state, last_successful_sync, last_error, last_error_time, usage_rows, "
                    "accounts_covered, accounts_in_scope FROM azure_openai.connection_status "
                    "WHERE connection IN (SELECT unnest($names))", {"names": names}).fetchall():
                item = result[row[0]]
                item.update(zip(("state", "last_successful_sync", "last_error", "last_error_time", "usage_rows_all",
                                 "accounts_covered", "accounts_in_scope"), row[1:]))
        if "usage_daily" in tables:
            params = {"names": names, "first": first, "last": last}
            cursor = con.execute(
                "SELECT connection, subscription_id, resource_name, resource_region, metric_region, deployment, "
                "model_name, count(*) AS rows, CAST(sum(input_tokens) AS BIGINT) AS input_tokens, "
                "CAST(sum(output_tokens) AS BIGINT) AS output_tokens, CAST(sum(total_tokens) AS BIGINT) AS total_tokens,"
                " CAST(sum(requests) AS BIGINT) AS requests FROM azure_openai.usage_daily "
                "WHERE connection IN (SELECT unnest($names)) AND usage_date BETWEEN $first AND $last "
                "GROUP BY ALL ORDER BY connection, total_tokens DESC, resource_name, deployment", params)
            columns = [d[0] for d in cursor.description]
            for values in cursor.fetchall():
                row = dict(zip(columns, values))
                name = row.pop("connection")
                result[name]["usage"].append(row)
                totals = result[name]["totals"]
                for key in totals:
                    totals[key] += int(row[key] or 0)
            per_day = con.execute(
                "SELECT connection, usage_date, sum(total_tokens) FROM azure_openai.usage_daily "
                "WHERE connection IN (SELECT unnest($names)) AND usage_date BETWEEN $first AND $last GROUP BY ALL",
                params).fetchall()
            by_day = {(c, d): int(t) for c, d, t in per_day}
            for name, item in result.items():
                item["trend"] = [{"day": str(d), "total_tokens": by_day.get((name, d))} for d in days]
    return result


@app.command(epilog="""Examples:

  doow-azure status

  doow-azure status prod --days 30

  doow-azure status --json | jq '.connections[] | {connection, state, totals}'
""")
def status(
    name: Annotated[str | None, typer.Argument(help="Only this connection. Default: all.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=400, help="Usage window: the last N complete UTC days.")]
    = STATUS_DAYS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each connection's health and recent usage, read from the warehouse (read-only).

    State (connected, failing, never synced), last successful sync, last error, usage rows and token
    totals per subscription, resource, region, deployment and model, and a per-day trend.
    Exits 1 when a shown connection is failing.
    """
    output = Output()
    config = _load_project(output)
    if name is not None:
        _connection_or_exit(output, config, name)
    names = [name] if name else [c.name for c in config.connections]
    last = utc_today() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    try:
        rows = _status_rows(config, names, first, last)
    except Exception as exc:  # a locked or damaged warehouse: say so, no traceback
        output.error(f"cannot read the warehouse {config.warehouse_path}: {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    failing = [n for n, r in rows.items() if r["state"] == "failing"]
    if as_json:
        output.json({"as_of": utc_now().isoformat(), "from": str(first), "to": str(last),
                     "warehouse": str(config.warehouse_path),
                     "connections": [{**rows[n], "scope": config.connection(n).scope,
                                      "cloud": config.connection(n).cloud} for n in names]})
        raise typer.Exit(EXIT_FAILURE if failing else EXIT_OK)
    if not names:
        output.line(f"No connections in {config.path}; add one with `doow-azure connect`.")
        raise typer.Exit(EXIT_OK)
    styles = {"connected": "green", "failing": "red", "never synced": "yellow"}
    for n in names:
        row = rows[n]
        connection = config.connection(n)
        output.line("")
        header = Text()
        header.append(f"{n}  ", style="bold")
        header.append(row["state"], style=styles.get(row["state"], ""))
        header.append(f"  {connection.scope}")
        output.out.print(header, soft_wrap=True)
        last_sync = row["last_successful_sync"]
        output.line(f"  last successful sync: {_when(last_sync)}; accounts readable: "
                    f"{row['accounts_covered']} of {row['accounts_in_scope']}")
        if row["last_error"]:
            output.line(f"  last error ({_when(row['last_error_time'])}): {row['last_error']}", "red")
        totals = row["totals"]
        trend = [d["total_tokens"] for d in row["trend"]]
        output.line(f"  {first} .. {last}: {totals['rows']:,} usage rows, {totals['total_tokens']:,} tokens "
                    f"(input {totals['input_tokens']:,}, output {totals['output_tokens']:,}), "
                    f"{totals['requests']:,} requests")
        output.line(f"  tokens per day  {sparkline(trend)}  ({first:%m-%d} .. {last:%m-%d}; max "
                    f"{_num(max((t for t in trend if t is not None), default=0))})")
        if row["usage"]:
            table = _new_table("subscription", "resource", "region", "usage region", "deployment", "model", "rows",
                               "input", "output", "total", "requests",
                               right=("rows", "input", "output", "total", "requests"))
            for u in row["usage"]:
                table.add_row(u["subscription_id"] or "", u["resource_name"] or "", u["resource_region"] or "",
                              u["metric_region"] or "-", u["deployment"] or "-", u["model_name"] or "-",
                              _num(u["rows"]), _num(u["input_tokens"]), _num(u["output_tokens"]),
                              _num(u["total_tokens"]), _num(u["requests"]))
            output.table(table)
        elif row["state"] == "never synced":
            output.line(f"  no usage yet: run `doow-azure sync --from {first} --to {last} --connection {n}`")
    raise typer.Exit(EXIT_FAILURE if failing else EXIT_OK)


# ---- doctor -------------------------------------------------------------------------------------------------------

@app.command(epilog="""Examples:

  doow-azure doctor prod

  doow-azure doctor prod --json | jq '.findings[] | {symptom, cause, action}'
""")
def doctor(
    name: Annotated[str, typer.Argument(help="The connection to diagnose.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Diagnose a connection against Azure and the warehouse: symptom, likely cause and next action.

    Checks the credential and its tenant and subscription, the accounts in scope and whether each is
    readable, the role's scope, recent usage in Azure and whether the warehouse holds it (per deployment,
    region and model), the age of the latest data point, and errors in the sync event log.
    Exits 1 when there is a finding.
    """
    from .doctor import run_doctor

    output = Output()
    config = _load_project(output)
    connection = _connection_or_exit(output, config, name)
    secret = secrets_environment(Path(config.path)).get(connection.client_secret_env) or None
    output.secret = secret
    quiet_azure_logging()
    status_display = output.err.status(f"diagnosing {name}…") if output.tty and not as_json else None
    try:
        if status_display is not None:
            status_display.start()
        report = run_doctor(config, connection, secret)
    except Exception as exc:
        output.error(f"doctor stopped: {type(exc).__name__}: {output.scrub(str(exc))[:500]}")
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        if status_display is not None:
            status_display.stop()
    if as_json:
        output.json(report.to_dict())
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)
    output.line(f"Doctor: {name} ({connection.scope})", "bold")
    for check in report.checks:
        mark, style = {"ok": ("✓", "green"), "finding": ("✗", "red"), "skipped": ("-", "dim")}[check.status]
        output.line(f"{mark} {check.name}: {check.summary}", style)
    facts = report.facts
    state = facts.get("state", "never synced")
    output.line(f"state: {state}; last successful sync: {_when(facts.get('last_successful_sync'))}")
    if state == "never synced":
        last = utc_today() - timedelta(days=1)
        output.line(f"Not synced yet: run `doow-azure sync --from {last - timedelta(days=6)} --to {last} "
                    f"--connection {name}`, then the doctor again to compare Azure with the warehouse.", "yellow")
    if report.ok:
        output.line("No findings.", "bold green")
        raise typer.Exit(EXIT_OK)
    table = _new_table("#", "symptom", "likely cause", "next action", title=f"{len(report.findings)} finding(s)")
    for i, finding in enumerate(report.findings, 1):
        table.add_row(str(i), finding.symptom, finding.cause, finding.action)
    output.table(table)
    for i, finding in enumerate(report.findings, 1):
        if finding.detail:
            output.line(f"  [{i}] {finding.detail[:600]}", "dim")
    raise typer.Exit(EXIT_FAILURE)


# ---- disconnect ---------------------------------------------------------------------------------------------------

@app.command(epilog="""Examples:

  doow-azure disconnect dev

  doow-azure disconnect dev --purge-data
""")
def disconnect(
    name: Annotated[str, typer.Argument(help="The connection to remove.")],
    purge_data: Annotated[bool, typer.Option(
        "--purge-data", help="Also delete its rows from the warehouse and its landing files.")] = False,
) -> None:
    """Remove a connection: its secret from .env and its entry from connections.yaml, at once.

    Other connections and .env entries are untouched. Prints what is left to do in Azure.
    """
    output = Output()
    config = _load_project(output)
    connection = _connection_or_exit(output, config, name)
    config_file = Path(config.path)
    env_file = config.env_file
    yaml_old = files.read_bytes(config_file)
    env_old = files.read_bytes(env_file)
    remaining = [c for c in config.connections if c.name != name]
    shared = [c.name for c in remaining if c.client_secret_env == connection.client_secret_env]
    try:
        yaml_new = files.yaml_without_connection(yaml_old.decode("utf-8"), name)
        env_text = env_old.decode("utf-8") if env_old is not None else None
        env_new = env_text if shared else files.env_without(env_text, connection.client_secret_env)
    except (files.ConnectionFileError, UnicodeDecodeError) as exc:
        raise _usage_error(output, str(exc)) from None
    writes = [files.PlannedWrite(config_file, yaml_new.encode("utf-8"), yaml_old)]
    if env_old is not None:
        writes.insert(0, files.PlannedWrite(env_file, (env_new or "").encode("utf-8"), env_old, files.ENV_FILE_MODE))
    files.apply(writes)
    if not shared:
        os.environ.pop(connection.client_secret_env, None)  # gone for anything this process still runs
    output.line(f"Removed connection {name} from {config_file}.", "bold")
    if shared:
        output.line(f"Kept {connection.client_secret_env} in {env_file}: still used by {', '.join(shared)}.")
    elif env_old is not None and env_old != (env_new or "").encode("utf-8"):
        output.line(f"Deleted its secret {connection.client_secret_env} from {env_file}.")
    else:
        output.line(f"No secret {connection.client_secret_env} was stored in {env_file}.")

    exit_code = EXIT_OK
    if purge_data:
        from .warehouse.landing import Landing
        from .warehouse.store import delete_connection

        try:
            if config.warehouse_path.exists():
                counts = delete_connection(config.warehouse_path, name)
                output.line("Deleted from the warehouse: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()) + ".")
            else:
                output.line(f"No warehouse at {config.warehouse_path}; nothing to delete.")
            Landing(config.landing_dir).purge(name)
            output.line(f"Deleted its landing files under {config.landing_dir}.")
        except Exception as exc:
            output.error(f"the connection is removed, but purging its data failed: {type(exc).__name__}: {exc}. "
                         f"Delete its rows later with: DELETE FROM azure_openai.<table> WHERE connection = '{name}' "
                         f"(tables usage_daily, metric_points, accounts, sync_events, connections) and its files "
                         f"under {config.landing_dir}/*/connection={name}")
            exit_code = EXIT_FAILURE
    else:
        output.line("Its rows stay in the warehouse (use --purge-data to delete them); days synced again later are "
                    "rebuilt without this connection.")

    same_app = [c.name for c in remaining if c.client_id == connection.client_id]
    output.line("")
    output.line("Left to do in Azure (doow-azure never writes to Azure):", "bold")
    output.line(f"  1. Remove the Monitoring Reader role assignment of application {connection.client_id} on "
                f"{connection.scope} (Access control (IAM) > Role assignments), e.g.\n"
                f"     az role assignment delete --assignee {connection.client_id} --role \"Monitoring Reader\" "
                f"--scope {connection.scope}")
    if same_app:
        output.line(f"  2. Keep the app registration and its secret: connection(s) {', '.join(same_app)} still use "
                    f"application {connection.client_id}.")
    else:
        output.line(f"  2. Delete the client secret (App registrations > {connection.client_id} > Certificates & "
                    f"secrets), or the app registration itself if nothing else uses it:\n"
                    f"     az ad app delete --id {connection.client_id}")
    raise typer.Exit(exit_code)
