"""Dagster on PostgreSQL (deploy/dagster.postgres.yaml) against a real PostgreSQL server on 127.0.0.1:
the daemon fires the daily schedule and its run succeeds; eight concurrent single-run backfills queued
through the QueuedRunCoordinator end with the tables of one fault-free sync.

The product is used only through its public entry points: `doow_pipeline.definitions` (loaded by the
repository's workspace.yaml), the `dagster` / `dagster-daemon` CLIs and `doow-azure sync`. The tests read
the Dagster instance (runs, events, schedule state) through Dagster's own instance API.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, ScheduleInstigatorData
from polars.testing import assert_frame_equal

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario, scenario_from_dict
from doow_pipeline_tests.demo import DEMO_CONNECTIONS
from doow_pipeline_tests.project import expected_usage, write_project
from doow_pipeline_tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_CONFIG = ROOT / "deploy" / "dagster.postgres.yaml"
WORKSPACE = ROOT / "workspace.yaml"
BIN = Path(sys.executable).parent
SCHEDULE = "daily_azure_openai_sync"
SYNC_JOB = "azure_openai_sync"
POOL_STEPS = {"write_usage_daily", "azure_openai__connection_status"}  # the steps in the "duckdb" pool
GRAIN = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]
CONNECTIONS = DEMO_CONNECTIONS[:2]  # prod and dev: two fetch steps per run, then the writer and the status
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


class Deployment:
    """A Dagster deployment on the PostgreSQL config: DAGSTER_HOME with deploy/dagster.postgres.yaml, a
    fresh database, the repository's workspace.yaml, a project (connections.yaml) on an emulator."""

    def __init__(self, postgres_server, tmp_path: Path, monkeypatch, project_env: dict[str, str]):
        self.home = tmp_path / "dagster_home"
        self.home.mkdir()
        shutil.copy(PG_CONFIG, self.home / "dagster.yaml")
        self.cwd = tmp_path  # no dagster.yaml here: the instance comes from DAGSTER_HOME only
        database = postgres_server.create_database(f"dagster_{uuid.uuid4().hex[:12]}")
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            **postgres_server.env(database),
            **project_env,
            # 2 shared cores, often loaded by other work: the code server can take more than the default
            # 60 s to answer a launch; the deployment itself keeps Dagster's default.
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        }
        for name, value in self.env.items():
            if name.startswith(("DAGSTER_", "DOOW_")):
                monkeypatch.setenv(name, value)
        self.postgres, self.database = postgres_server, database
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self._daemon: subprocess.Popen | None = None
        self._code_server: subprocess.Popen | None = None
        self.instance = dg.DagsterInstance.from_config(str(self.home))

    def dagster(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "dagster"), *args], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, (
            f"dagster {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start_daemon(self, workspace: Path = WORKSPACE) -> None:
        self._daemon = self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])

    def start_code_server(self) -> Path:
        """A code server for doow_pipeline.definitions on 127.0.0.1 (as a deployment runs one), shared by the
        daemon and every `dagster` command; returns a workspace file that points at it."""
        port = free_port()
        self._code_server = self._spawn(
            "code_server",
            [
                str(BIN / "dagster"),
                "api",
                "grpc",
                "-m",
                "doow_pipeline.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--location-name",
                "doow_pipeline",
            ],
        )
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 180
        while True:  # readiness: the server answers a ping once the definitions are loaded
            if self._code_server.poll() is not None:
                pytest.fail(f"code server exited: {(self.logs / 'code_server.log').read_text()[-4000:]}")
            try:
                client.ping("ready")
                break
            except Exception:  # noqa: BLE001 - not serving yet
                if time.monotonic() > deadline:
                    pytest.fail("code server not ready after 180 s")
                time.sleep(0.25)  # polling interval
        workspace = self.cwd / "workspace.grpc.yaml"
        workspace.write_text(
            yaml.safe_dump(
                {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": "doow_pipeline"}}]}
            )
        )
        return workspace

    @staticmethod
    def _stop(process: subprocess.Popen | None) -> None:
        if process is None or process.poll() is not None:
            return
        # Each process leads its own session (its code server, run workers): stop them together.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything of the session left behind

    def stop_daemon(self) -> None:
        self._stop(self._daemon)
        self._daemon = None

    def stop(self) -> None:
        self.stop_daemon()
        self._stop(self._code_server)
        self._code_server = None

    def daemon_log(self) -> str:
        return (self.logs / "daemon.log").read_text(errors="replace")[-6000:]

    def wait_for_runs(self, count: int, timeout: float, **filters) -> list[dg.DagsterRun]:
        """Polls the instance until `count` runs matching the filter have finished (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.instance.get_runs(filters=dg.RunsFilter(**filters))
            if len(runs) >= count and all(r.status in FINISHED for r in runs):
                return runs
            if self._daemon is not None and self._daemon.poll() is not None:
                pytest.fail(f"dagster-daemon exited ({self._daemon.returncode}):\n{self.daemon_log()}")
            if time.monotonic() > deadline:
                states = [(r.run_id[:8], r.status.value) for r in runs]
                pytest.fail(f"runs not finished after {timeout:.0f} s: {states}\n{self.daemon_log()}")
            time.sleep(0.5)  # polling interval

    def failure_report(self, run: dg.DagsterRun) -> str:
        """What went wrong in a run: its failure events and the errors attached to engine events."""
        lines = [f"run {run.run_id} {run.status.value} tags={dict(run.tags)}"]
        for record in self.instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            error = getattr(event.event_specific_data, "error", None)
            if event.is_failure or error is not None or event.event_type == dg.DagsterEventType.RUN_FAILURE:
                lines.append(f"{event.event_type_value} {event.step_key or ''} {event.message or ''}")
                if error is not None:
                    lines.append(error.to_string()[-3000:])
        return "\n".join(lines) + "\n--- daemon log ---\n" + self.daemon_log()

    def wait_for_backfills(self, keys: set[str], timeout: float) -> dict[str, dg.DagsterRun]:
        """Polls until every backfill (tag test/backfill) has a successful run and no run is unfinished;
        a run that failed gets its Dagster run retry (run_retries in the config) and the wait goes on."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB))
            done = {r.tags["test/backfill"]: r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS}
            if set(done) == keys and all(r.status in FINISHED for r in runs):
                return done
            if self._daemon is not None and self._daemon.poll() is not None:
                pytest.fail(f"dagster-daemon exited ({self._daemon.returncode}):\n{self.daemon_log()}")
            if time.monotonic() > deadline:
                failed = [self.failure_report(r) for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
                pytest.fail(
                    f"backfills not all successful after {timeout:.0f} s: "
                    f"{[(r.tags['test/backfill'], r.status.value) for r in runs]}\n" + "\n".join(failed)
                )
            time.sleep(0.5)  # polling interval


@pytest.fixture
def deployment_factory(postgres_server, tmp_path, monkeypatch):
    made: list[Deployment] = []

    def make(project_env: dict[str, str]) -> Deployment:
        deployment = Deployment(postgres_server, tmp_path, monkeypatch, project_env)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop()
        deployment.instance.dispose()


def table(warehouse: Path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM azure_openai.{name}").pl()


def sorted_rows(warehouse: Path, name: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM azure_openai.{name} ORDER BY ALL").fetchall()


def test_postgres_config_puts_every_instance_storage_on_postgres(deployment_factory):
    deployment = deployment_factory({})
    instance = deployment.instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.get_concurrency_config().run_queue_config.max_user_code_failure_retries == 3
    # The concurrency settings are dagster.yaml's (the SQLite default), unchanged.
    default = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    production = yaml.safe_load(PG_CONFIG.read_text())
    assert production["concurrency"] == default["concurrency"]
    assert production["run_retries"] == default["run_retries"]
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    with contextlib.closing(deployment.postgres.connect(deployment.database)) as con, con.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = {name for (name,) in cur.fetchall()}
    assert {"runs", "event_logs", "instigators", "job_ticks", "concurrency_limits"} <= tables


def last_tick_before(moment: datetime) -> datetime:
    """The latest 03:30 UTC (the schedule's cron) at or before `moment`."""
    tick = moment.replace(hour=3, minute=30, second=0, microsecond=0)
    return tick if tick <= moment else tick - timedelta(days=1)


@pytest.mark.slow
def test_daemon_fires_the_daily_schedule_and_the_run_succeeds(deployment_factory, emulator_factory):
    # The daemon's scheduler works on the wall clock, so the emulator's frozen clock and the pipeline's
    # (settings.frozen_clock, which write_project copies from the scenario) are set to the wall clock at the
    # start of the test.
    now = datetime.now(UTC).replace(microsecond=0)
    scenario_raw = yaml.safe_load(Path(DEMO_SCENARIO).read_text(encoding="utf-8"))
    scenario_raw["now"] = now.isoformat().replace("+00:00", "Z")
    scenario = scenario_from_dict(scenario_raw)
    emulator = emulator_factory(scenario_raw)
    workdir = Path(emulator.state_dir).parent / "project"
    config = write_project(workdir, emulator.endpoints, scenario, CONNECTIONS, resync_days=3)
    deployment = deployment_factory({"DOOW_CONNECTIONS": str(config)})

    # Make exactly one tick due, deterministically: the schedule's stored state says it was started just
    # before the latest 03:30 UTC, so the daemon's first scheduler iteration owes that tick and no other
    # (the next one is in the future). `dagster schedule stop` stores the schedule's state (its origin in
    # the workspace); the test then marks it running since that moment, as `dagster schedule start` would.
    deployment.dagster("schedule", "stop", SCHEDULE, "-w", str(WORKSPACE))
    [state] = deployment.instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
    assert state.name == SCHEDULE and not state.is_running
    tick = last_tick_before(now)
    deployment.instance.update_instigator_state(
        state.with_status(InstigatorStatus.RUNNING).with_data(
            ScheduleInstigatorData(state.instigator_data.cron_schedule, start_timestamp=tick.timestamp() - 1)
        )
    )

    deployment.start_daemon()
    [run] = deployment.wait_for_runs(1, timeout=420, tags={"dagster/schedule_name": SCHEDULE})
    deployment.stop_daemon()
    assert run.status == dg.DagsterRunStatus.SUCCESS, deployment.failure_report(run)
    first = (tick - timedelta(days=3)).date()
    assert run.job_name == SYNC_JOB
    assert run.tags["dagster/asset_partition_range_start"] == first.isoformat()
    assert run.tags["dagster/asset_partition_range_end"] == tick.date().isoformat()
    assert run.tags["dagster/run_key"] == f"{first}..{tick.date()}"
    # The scheduler recorded exactly that one tick, successful, for the 03:30 UTC it was due.
    ticks = deployment.instance.get_ticks(state.instigator_origin_id, state.selector_id)
    assert [(t.timestamp, t.status.value, t.run_ids) for t in ticks] == [(tick.timestamp(), "SUCCESS", [run.run_id])]
    # The run went through the queue (the daemon's QueuedRunCoordinator) and is stored in PostgreSQL.
    queued = deployment.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    assert len(queued) == 1
    with contextlib.closing(deployment.postgres.connect(deployment.database)) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run.run_id,))
        assert cur.fetchone() == ("SUCCESS",)

    # Every complete day of the range holds exactly the scenario's usage.
    warehouse = workdir / "doow.duckdb"
    last_complete = min(tick.date(), now.date() - timedelta(days=1))
    actual = table(warehouse, "usage_daily").filter(pl.col("usage_date") <= last_complete).sort(GRAIN, nulls_last=True)
    expected = expected_usage(scenario, first, last_complete, CONNECTIONS, synced_at=now)
    assert actual.height == expected.height > 0
    assert_frame_equal(actual, expected.select(actual.columns), check_dtypes=False)


# Eight overlapping single-run backfills (offsets in days from FIRST), their union is FIRST..LAST.
BACKFILLS = [(0, 6), (3, 9), (7, 13), (0, 13), (5, 5), (10, 12), (1, 4), (8, 13)]
BACKFILL_CONNECTIONS = DEMO_CONNECTIONS[:1]  # prod: one fetch step per run, then the two pooled steps
# The multiprocess executor (the default) with forkserver: each step forks from a process that imported the
# code location once, instead of a fresh interpreter per step (8 runs x 3 steps on 2 shared cores).
FORKSERVER = {"execution": {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}}


@pytest.mark.slow
def test_eight_concurrent_backfills_end_with_the_tables_of_one_fault_free_run(deployment_factory, emulator, tmp_path):
    scenario = load_scenario(DEMO_SCENARIO)
    now = scenario.current_time()
    last = now.date() - timedelta(days=1)
    first = last - timedelta(days=13)
    connections = BACKFILL_CONNECTIONS
    config = write_project(tmp_path / "project", emulator.endpoints, scenario, connections)
    deployment = deployment_factory({"DOOW_CONNECTIONS": str(config)})
    workspace = deployment.start_code_server()
    # Only the launched runs: the schedule must not add a run if the wall clock passes 03:30 UTC meanwhile.
    deployment.dagster("schedule", "stop", SCHEDULE, "-w", str(workspace))

    # Queue the eight runs as single-run backfills of the sync job (the tags a range backfill carries),
    # from eight concurrent `dagster job launch` processes, then let the daemon drain the queue.
    launches = []
    for a, b in BACKFILLS:
        tags = {
            "dagster/asset_partition_range_start": str(first + timedelta(days=a)),
            "dagster/asset_partition_range_end": str(first + timedelta(days=b)),
            "test/backfill": f"{a}-{b}",
        }
        launches.append(
            subprocess.Popen(
                [
                    str(BIN / "dagster"),
                    "job",
                    "launch",
                    "-j",
                    SYNC_JOB,
                    "-w",
                    str(workspace),
                    "--tags",
                    json.dumps(tags),
                    "--config-json",
                    json.dumps(FORKSERVER),
                ],
                cwd=deployment.cwd,
                env=deployment.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for process in launches:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out[-3000:]
    queued = deployment.instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB))
    assert len(queued) == 8 and {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}

    deployment.start_daemon(workspace)
    keys = {f"{a}-{b}" for a, b in BACKFILLS}
    successful = deployment.wait_for_backfills(keys, timeout=1500)
    deployment.stop_daemon()
    every_run = deployment.instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB))
    for run in every_run:  # a failed run may only be one that Dagster retried (a crash, not a step failure)
        if run.status != dg.DagsterRunStatus.SUCCESS:
            retried = any(r.tags.get("dagster/parent_run_id") == run.run_id for r in every_run)
            assert retried, deployment.failure_report(run)
            print(f"retried by Dagster: {deployment.failure_report(run)[:3000]}")

    # Runs overlapped (up to max_concurrent_runs at once), and the duckdb pool kept the writers apart.
    records = deployment.instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in successful.values()]))
    spans = sorted((r.start_time, r.end_time) for r in records)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)), spans
    pooled = []
    for run in every_run:
        events = deployment.instance.all_logs(run.run_id)
        for key in POOL_STEPS:
            starts = [
                e.timestamp
                for e in events
                if e.step_key == key
                and e.dagster_event
                and e.dagster_event.event_type == dg.DagsterEventType.STEP_START
            ]
            ends = [
                e.timestamp
                for e in events
                if e.step_key == key
                and e.dagster_event
                and e.dagster_event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
            ]
            assert len(starts) == len(ends) <= 1, (run.run_id, key, starts, ends)
            pooled += [(s0, e0, key, run.run_id[:8]) for s0, e0 in zip(starts, ends, strict=True)]
    pooled.sort()
    assert len(pooled) >= 2 * len(BACKFILLS)
    assert all(b[0] >= a[1] for a, b in zip(pooled, pooled[1:], strict=False)), pooled

    # The same tables as one fault-free sync of the whole range (doow-azure sync, SQLite instance) ...
    reference = write_project(tmp_path / "reference", emulator.endpoints, scenario, connections)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    result = subprocess.run(
        [str(BIN / "doow-azure"), "sync", "--from", str(first), "--to", str(last)],
        env={**env, "DOOW_CONNECTIONS": str(reference)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    warehouse, reference_warehouse = tmp_path / "project" / "doow.duckdb", tmp_path / "reference" / "doow.duckdb"
    for name in ("usage_daily", "accounts", "syncs"):
        assert sorted_rows(warehouse, name) == sorted_rows(reference_warehouse, name), name
    points = "SELECT * FROM azure_openai.metric_points ORDER BY ALL"
    with (
        duckdb.connect(str(warehouse), read_only=True) as a,
        duckdb.connect(str(reference_warehouse), read_only=True) as b,
    ):
        assert a.execute(points).fetchall() == b.execute(points).fetchall()
    # ... and both equal the scenario's usage, computed independently, with no duplicate row.
    actual = table(warehouse, "usage_daily").sort(GRAIN, nulls_last=True)
    expected = expected_usage(scenario, first, last, connections, synced_at=now)
    assert_frame_equal(actual, expected.select(actual.columns), check_dtypes=False)
    assert actual.filter(pl.struct(GRAIN).is_duplicated()).height == 0
