"""Helpers for the `doow-azure` CLI tests: the demo principals, an in-process runner that checks every
command's output for secrets, and file snapshots for "unchanged byte for byte"."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
from typer.testing import CliRunner

from doow_pipeline.cli.app import app

from .azure_emulator import DEMO_SCENARIO
from .azure_emulator.scenario import load_scenario
from .demo import (  # noqa: F401  (the demo identifiers, re-exported for the CLI tests)
    DEV,
    EMPTY_SCOPE,
    EXPIRED,
    LEGACY_ACCOUNT,
    NO_USAGE,
    ONE_ACCOUNT,
    PROD,
    PROD_WEU_RG,
    RESEARCH,
    RESTRICTED_ACCOUNT,
    RG_READER,
    SANDBOX_RG,
    SHARED,
    TENANT,
)
from .demo import MAIN_PRINCIPAL as MAIN  # noqa: F401

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
WRONG_SECRET = "wrong-secret-" + uuid.uuid4().hex
# Every secret a test may type: none may ever appear in any output.
ALL_SECRETS = sorted({p.secret for p in SCENARIO.principals.values()} | {WRONG_SECRET})


def secret_of(client_id: str) -> str:
    return SCENARIO.principals[client_id.lower()].secret


@dataclass
class CliProject:
    """A project directory and the runner that invokes `doow-azure` on it in-process."""

    workdir: Path
    runner: CliRunner = field(default_factory=CliRunner)
    outputs: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.workdir / "connections.yaml"

    @property
    def env_file(self) -> Path:
        return self.workdir / ".env"

    @property
    def warehouse(self) -> Path:
        return self.workdir / "data" / "doow.duckdb"

    def run(self, *args: str, input: str | None = None, expect: int | None = None):
        env = {"DOOW_CONNECTIONS": str(self.config), "COLUMNS": "200"}
        # The emulator's clock is frozen: so is the pipeline's, explicitly, as a replay would be.
        result = self.runner.invoke(
            app, ["--frozen-clock", NOW.isoformat(), *args], input=input, env=env, catch_exceptions=False
        )
        text = result.stdout + "\n" + result.stderr
        self.outputs.append(text)
        assert_no_secret(text, f"output of doow-azure {' '.join(args)}")
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}:\n{text}"
        return result

    def connect(
        self,
        name: str,
        client_id: str,
        scope: str,
        *extra: str,
        secret: str | None = None,
        tenant: str = TENANT,
        endpoints: dict | None = None,
        expect: int | None = None,
    ):
        args = [
            "connect",
            name,
            "--tenant-id",
            tenant,
            "--client-id",
            client_id,
            "--scope",
            scope,
            "--client-secret-stdin",
            *extra,
        ]
        if endpoints is not None:
            import json

            args += ["--endpoints-json", json.dumps(endpoints)]
        return self.run(*args, input=secret if secret is not None else secret_of(client_id), expect=expect)

    def snapshot(self) -> dict:
        return {
            path.name: (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) if path.exists() else None
            for path in (self.config, self.env_file)
        }

    def sql(self, query: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(query, params or []).fetchall()


def assert_no_secret(text: str, where: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text, f"a client secret appears in {where}"


def assert_files_hold_no_secret(project: CliProject) -> None:
    """connections.yaml and the warehouse never hold a secret (.env is where they belong)."""
    if project.config.exists():
        assert_no_secret(project.config.read_text(), str(project.config))
    for path in project.workdir.rglob("*"):
        if path.is_file() and path.name != ".env" and path.suffix in (".yaml", ".json", ".duckdb", ".parquet"):
            data = path.read_bytes()
            for secret in ALL_SECRETS:
                assert secret.encode() not in data, f"a client secret appears in {path}"


def restore_environ(snapshot: dict[str, str]) -> None:
    for key in set(os.environ) - set(snapshot):
        del os.environ[key]
    os.environ.update(snapshot)


def dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME for a test's subprocesses (telemetry off, so Dagster prints no banner into their output)."""
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return folder


@contextlib.contextmanager
def instance_at(home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of `home`, as the UI reads it (DAGSTER_HOME set only while it is open)."""
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        del os.environ["DAGSTER_HOME"]


def run_step_started(home: Path, job: str) -> bool:
    """Whether `job`'s run has begun its first step."""
    with instance_at(home) as instance:
        runs = [r for r in instance.get_runs() if r.job_name == job]
        return bool(runs) and bool(
            instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START).records
        )


def run_statuses(home: Path) -> dict[str, dg.DagsterRunStatus]:
    """Job name -> status of its (latest) run."""
    with instance_at(home) as instance:
        return {r.job_name: r.status for r in reversed(instance.get_runs())}
