"""`doow-azure connect`: verify a service principal and scope against Azure, then save the connection.

Nothing is saved unless verification passes; connections.yaml and .env are edited atomically (see files.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..azure.discovery import Subscription
from ..config import Connection, Endpoints, ProjectConfig, config_path, export_env_file, load_config, secret_env_name
from ..core.metrics import oldest_syncable_day
from ..core.problems import ConfigError, ConnectionFileError, DoowError, SyncInterrupted
from ..core.scope import Account
from ..services.verify import ConnectionVerifier, StepResult
from . import files
from .output import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, Output, configure_logging, new_table, usage_table
from .project import clock
from .sync import usage_summary

STEP_TITLES = {
    "token": "Token",
    "scope": "Scope",
    "accounts": "Accounts",
    "metrics": "Metrics",
    "batch": "Batch API",
    "coverage": "Coverage",
}


def _step_line(output: Output, step: StepResult) -> None:
    if not step.ok:
        mark, style = "✗", "red"
    elif step.warning:
        mark, style = "!", "yellow"
    else:
        mark, style = "✓", "green"
    output.line(f"{mark} {STEP_TITLES.get(step.name, step.name)}: {step.detail}", style)


def _accounts_table(accounts: list[Account], subscriptions: dict[str, Subscription]) -> Table:
    table = new_table(
        "name", "kind", "region", "subscription", "resource group", title="Azure OpenAI accounts in scope"
    )
    for account in accounts:
        sub = subscriptions.get(account.subscription_id)
        table.add_row(
            account.name,
            account.kind,
            account.location,
            sub.display_name if sub else account.subscription_id,
            account.resource_group,
        )
    return table


def _read_endpoints(output: Output, value: str) -> dict[str, str]:
    """--endpoints-json: a path to the emulator's endpoints.json, or its ready line itself."""
    text = value
    candidate = Path(value).expanduser()
    if not value.lstrip().startswith("{") and candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
        return Endpoints.model_validate(raw).model_dump(exclude_none=True)
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        raise output.usage_error(
            f"--endpoints-json: not an endpoints object (authority, arm, metrics, ca_cert) or a file holding one: {exc}"
        ) from None


def _read_secret(output: Output, from_stdin: bool) -> str:
    if from_stdin:
        secret = sys.stdin.read().rstrip("\r\n")
    else:
        secret = typer.prompt(
            "Client secret (the secret's Value, input hidden)",
            hide_input=True,
            default="",
            show_default=False,
            err=True,
        )
    if not secret.strip():
        raise output.usage_error("the client secret is empty; paste the secret's Value (not its Secret ID)")
    return secret


def _new_settings(now: datetime) -> dict[str, object]:
    return {"warehouse": "data/doow.duckdb", "start_date": oldest_syncable_day(now)}


def _save(
    output: Output,
    config_file: Path,
    env_file: Path,
    connection: Connection,
    secret: str,
    new_settings: dict[str, object],
    new_endpoints: dict[str, str] | None,
) -> None:
    """Writes the verified connection under the edit lock, from the files as they are now: another connect or
    a disconnect may have changed them while Azure was being asked."""
    name, env_name = connection.name, connection.client_secret_env
    with files.edit_lock(config_file):
        yaml_old = files.read_bytes(config_file)
        env_old = files.read_bytes(env_file)
        if yaml_old is not None and yaml_old.strip():
            try:
                current = load_config(config_file, check_secrets=False)
            except ConfigError as exc:
                raise output.usage_error(
                    f"{exc}\nThe file changed while the connection was verified; nothing was "
                    "saved. Fix the file, then connect again."
                ) from None
            if any(c.name == name for c in current.connections):
                raise output.usage_error(
                    f"a connection named {name!r} was saved to {config_file} while this one was "
                    "being verified (another `doow-azure connect`); nothing was saved. Run "
                    f"`doow-azure disconnect {name}` first or choose another name."
                )
            if any(c.client_secret_env == env_name for c in current.connections):
                raise output.usage_error(
                    f"{env_name} is now used by another connection in {config_file}; nothing was saved"
                )
        try:
            yaml_new = files.yaml_with_connection(
                yaml_old.decode("utf-8") if yaml_old is not None else None, connection, new_settings, new_endpoints
            )
            env_new = files.env_with_secret(env_old.decode("utf-8") if env_old is not None else None, env_name, secret)
        except (ConnectionFileError, UnicodeDecodeError) as exc:
            raise output.usage_error(output.scrub(str(exc))) from None
        files.apply(
            [
                files.PlannedWrite(env_file, env_new.encode("utf-8"), env_old, files.ENV_FILE_MODE),
                files.PlannedWrite(config_file, yaml_new.encode("utf-8"), yaml_old),
            ]
        )


def _run_initial_sync(
    ctx: typer.Context, output: Output, config_file: Path, connection: Connection, secret: str, days: int
) -> bool:
    from ..defs.runs import RunReport, sync_range  # Dagster loads only when a sync is asked for

    config = load_config(config_file, check_secrets=False)
    config.settings.frozen_clock = clock(ctx, config).frozen_at
    os.environ[connection.client_secret_env] = secret  # this process syncs with the secret just verified
    export_env_file(config)
    last = clock(ctx, config).today() - timedelta(days=1)
    first = max(last - timedelta(days=days - 1), config.settings.start_date)
    if first > last:
        output.line(
            f"Initial sync skipped: settings.start_date {config.settings.start_date} is after {last}.", "yellow"
        )
        return True
    output.line(f"Initial sync of {connection.name}: {first} .. {last} (UTC)")
    jobs = 2  # the connection's fetch run, then the DuckDB writer
    dagster_log = io.StringIO()  # Dagster's console log: shown only when a run fails
    if output.tty:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TimeElapsedColumn(),
            console=output.out,
            transient=False,
            redirect_stderr=False,
            redirect_stdout=False,
        )
        with progress, contextlib.redirect_stderr(dagster_log):
            task = progress.add_task("initial sync", total=jobs)

            def advance(job: str, report: RunReport | None) -> None:
                if report is None:
                    progress.update(task, description=f"running {job}")
                else:
                    progress.advance(task)
                    if progress.tasks[0].completed >= jobs:
                        progress.update(task, description="initial sync done")

            reports = sync_range(config, first, last, [connection.name], on_progress=advance)
    else:

        def plain(job: str, report: RunReport | None) -> None:
            if report is None:
                output.line(f"… {job}: running")
            else:
                output.line(
                    f"{'✓' if report.success else '✗'} {job}: "
                    f"{'ok' if report.success else 'FAILED: ' + str(report.failure)}"
                )

        with contextlib.redirect_stderr(dagster_log):
            reports = sync_range(config, first, last, [connection.name], on_progress=plain)
    for report in reports:
        for check in report.failed_checks:
            output.line(f"  check {check.name} ({check.severity}): {check.description}", "yellow")
    summary = [r for r in usage_summary(config, first, last) if r["connection"] == connection.name]
    output.table(usage_table(summary, f"Azure OpenAI usage {first} .. {last} (UTC)"))
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


CONNECT_EPILOG = """Examples (T, C, S: tenant, client and subscription ids):

  doow-azure connect prod --tenant-id T --client-id C --scope /subscriptions/S

  printf %s "$SECRET" | doow-azure connect weu --tenant-id T --client-id C
  --scope /subscriptions/S/resourceGroups/rg-ai-weu --client-secret-stdin --initial-sync-days 7

  doow-azure connect legacy --tenant-id T --client-id C --scope aoai-dev-legacy
  --endpoints-json .demo/emulator/endpoints.json   (the Azure emulator)
"""


def connect(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="Connection name: lower-case letters, digits and underscores (part of Dagster asset keys)."
        ),
    ],
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="Directory (tenant) ID of the app registration.")],
    client_id: Annotated[str, typer.Option("--client-id", help="Application (client) ID of the service principal.")],
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="/subscriptions/<id>, /subscriptions/<id>/resourceGroups/"
            "<rg>, an account's ARM id, or a bare account name.",
        ),
    ],
    cloud: Annotated[
        str, typer.Option("--cloud", help="AzureCloud, AzureUSGovernment or AzureChinaCloud.")
    ] = "AzureCloud",
    initial_sync_days: Annotated[
        int | None,
        typer.Option("--initial-sync-days", min=1, max=93, help="After saving, sync the last N complete UTC days."),
    ] = None,
    client_secret_stdin: Annotated[
        bool,
        typer.Option("--client-secret-stdin", help="Read the client secret from stdin instead of a hidden prompt."),
    ] = False,
    endpoints_json: Annotated[
        str | None,
        typer.Option(
            "--endpoints-json",
            metavar="PATH_OR_JSON",
            help="Explicit endpoints (the Azure emulator's ready line or its endpoints.json); written to "
            "settings.endpoints only when the file has none.",
        ),
    ] = None,
) -> None:
    """Verify a service principal and scope against Azure, then save the connection.

    Nothing is saved unless every check passes: token, scope, accounts, metrics per account, batch API.
    The secret goes to .env (mode 0600) as DOOW_SECRET_<NAME>, never into connections.yaml.
    """
    output = Output()
    config_file = config_path()
    env_name = secret_env_name(name)
    try:
        # model_validate (what the constructor runs): the str --cloud is checked against the Literal there
        connection = Connection.model_validate(
            {
                "name": name,
                "tenant_id": tenant_id.strip(),
                "client_id": client_id.strip(),
                "client_secret_env": env_name,
                "scope": scope,
                "cloud": cloud,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise output.usage_error(problems) from None

    # Everything that could be wrong with the files is found before asking Azure anything.
    yaml_old = files.read_bytes(config_file)
    existing: ProjectConfig | None = None
    if yaml_old is not None and yaml_old.strip():  # an empty file is a new project
        try:
            existing = load_config(config_file, check_secrets=False)
        except ConfigError as exc:
            raise output.usage_error(f"{exc}\nFix the file before adding a connection.") from None
        if any(c.name == name for c in existing.connections):
            raise output.usage_error(
                f"a connection named {name!r} already exists in {config_file}; run "
                f"`doow-azure disconnect {name}` first or choose another name"
            )
        if any(c.client_secret_env == env_name for c in existing.connections):
            raise output.usage_error(f"{env_name} is already used by another connection in {config_file}")
    endpoints = existing.settings.endpoints if existing else None
    new_endpoints = None
    if endpoints is None and endpoints_json:
        new_endpoints = _read_endpoints(output, endpoints_json)
        endpoints = Endpoints.model_validate(new_endpoints)
    elif endpoints is not None and endpoints_json:
        output.line(
            f"note: {config_file} already has settings.endpoints; --endpoints-json is ignored", "yellow", stderr=True
        )
    if endpoints is not None and endpoints.ca_cert and not Path(endpoints.ca_cert).is_file():
        raise output.usage_error(
            f"settings.endpoints.ca_cert {endpoints.ca_cert} does not exist; paste the emulator's current ready line"
        )
    env_file = config_file.resolve().parent / ".env"
    env_old = files.read_bytes(env_file)

    secret = _read_secret(output, client_secret_stdin)
    output.add_secret(secret)
    try:
        # Built here only to fail early on unreadable files, before verifying; _save rebuilds them.
        files.yaml_with_connection(
            yaml_old.decode("utf-8") if yaml_old is not None else None,
            connection,
            _new_settings(clock(ctx).now()),
            new_endpoints,
        )
        files.env_with_secret(env_old.decode("utf-8") if env_old is not None else None, env_name, secret)
    except (ConnectionFileError, UnicodeDecodeError) as exc:
        raise output.usage_error(output.scrub(str(exc))) from None

    output.line(f"Verifying connection {name}: scope {connection.scope} ({connection.cloud})", "bold")
    configure_logging(output, verbose=False, verification=True)
    verifier = ConnectionVerifier(connection, secret, endpoints, now=clock(ctx, existing).now())
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
    except (DoowError, OSError) as exc:  # never a traceback (it could show locals); say what failed
        output.error(f"verification stopped: {type(exc).__name__}: {output.scrub(str(exc))[:500]}")
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        if status is not None:
            status.stop()
    result = verifier.result
    if not result.ok:
        problem = result.problem
        assert problem is not None  # result.ok is `problem is None`
        output.error(f"{problem.cause} Fix: {problem.fix}")
        output.line(f"Nothing was saved ({config_file} and {env_file} are unchanged).", stderr=True)
        raise typer.Exit(EXIT_FAILURE)

    _save(output, config_file, env_file, connection, secret, _new_settings(clock(ctx).now()), new_endpoints)
    paths = set(result.paths.values())
    path_text = (
        "batch API"
        if paths == {"batch"}
        else "per-resource API"
        if paths == {"per_resource"}
        else "batch API where allowed, else per-resource API"
    )
    output.line(
        f"Saved connection {name} to {config_file} (secret in {env_file} as {env_name}; metrics via {path_text}).",
        "bold green",
    )
    if result.warnings:
        output.line(
            f"{len(result.warnings)} warning(s) above; run `doow-azure doctor {name}` after the first sync.", "yellow"
        )
    if initial_sync_days:
        try:
            ok = _run_initial_sync(ctx, output, config_file, connection, secret, initial_sync_days)
        except SyncInterrupted as stop:
            output.error(str(stop))
            output.line(f"The connection is saved; run `doow-azure sync -c {name}` to finish.", stderr=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (DoowError, OSError, duckdb.Error) as exc:
            output.error(f"initial sync failed: {type(exc).__name__}: {output.scrub(str(exc))[:500]}")
            ok = False
        if not ok:
            output.line(
                f"The connection is saved; fix the cause, then run `doow-azure sync` or `doow-azure doctor {name}`.",
                stderr=True,
            )
            raise typer.Exit(EXIT_FAILURE)
    raise typer.Exit(EXIT_OK)
