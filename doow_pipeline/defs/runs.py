"""Running the Dagster jobs in-process for a range of days (used by `doow-azure sync` and `connect`).

One run per connection (so one broken connection never stops the others), then one writer run that
rebuilds usage for the whole range, then one cost run (prices, then the estimated cost of the range).
Runs are recorded in $DAGSTER_HOME when it is set (visible in the UI), else in an ephemeral instance.

Each run carries the code location's origin, as a run launched from the UI does: Dagster files a run under
its job by the run's `remote_job_origin` (the `.dagster/repository` tag, "<repository>@<location>", comes
from it; dagster/_core/storage/dagster_run.py `tags_for_storage`), and re-executes it through that origin.
`execute_in_process` creates runs without one, so the run is created here with the origin of the location
in workspace.yaml and then executed in this process, exactly as `execute_in_process` would.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.events import StepMaterializationData
from dagster._core.execution.api import execute_run
from dagster._core.execution.plan.objects import ErrorSource
from dagster._core.remote_origin import CodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.workspace.load import location_origins_from_yaml_paths

from ..config import ProjectConfig
from ..core.checks import CREDENTIALS
from ..core.problems import DoowError, SyncInterrupted
from ..warehouse.analyst import ANALYST_COPY_ERROR
from .common import INTERRUPTED
from .connection import fetch_job_name
from .jobs import COST_JOB, WRITE_JOB
from .project import build_definitions


@dataclass(frozen=True)
class CheckReport:
    name: str  # "<asset key>:<check name>"
    passed: bool
    severity: str
    description: str


@dataclass
class RunReport:
    job: str
    success: bool
    failure: str | None = None
    checks: list[CheckReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. an analyst copy that could not be published

    @property
    def failed_checks(self) -> list[CheckReport]:
        return [c for c in self.checks if not c.passed]


@contextmanager
def _stop_signals() -> Iterator[Callable[[], bool]]:
    """Whether SIGINT or SIGTERM arrived since entering. Inside a run Dagster's own handler takes them (it ends the
    step, dagster/_utils/interrupts.py), so they never reach the caller as KeyboardInterrupt; the interpreter's
    wakeup fd receives the number of every signal, whichever Python handler is installed. Off the main thread
    (where signals are not handled) nothing is watched."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    seen: set[int] = set()

    def arrived() -> bool:
        try:
            while data := reader.recv(256):
                seen.update(data)
        except BlockingIOError:
            pass  # nothing more to read
        return bool(seen & {signal.SIGINT, signal.SIGTERM})

    try:
        yield arrived
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _product_errors() -> set[str]:
    names, todo = set(), [DoowError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _failure_text(error: Any) -> str:
    """The product's own message for a failed step (it names the cause and the fix), not Dagster's wrapper nor
    the SDK exception underneath; the innermost message when no product error is in the chain."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause or getattr(error, "context", None)
    ours = _product_errors()
    chosen = next((e for e in chain if e.cls_name in ours), chain[-1])
    message = str(chosen.message).strip()
    prefix = f"{chosen.cls_name}: "
    return message.split(prefix, 1)[1] if prefix in message.split("\n", 1)[0] else message


WORKSPACE_YAML = Path(__file__).resolve().parents[2] / "workspace.yaml"


@cache
def code_location_origin() -> CodeLocationOrigin:
    """The code location `dagster dev -w workspace.yaml` serves (the project's only one)."""
    (origin,) = location_origins_from_yaml_paths([str(WORKSPACE_YAML)])
    return origin


def job_origin(job_name: str) -> RemoteJobOrigin:
    # `@dg.definitions` makes the location's single repository, named like every singleton repository.
    return RemoteRepositoryOrigin(code_location_origin(), SINGLETON_REPOSITORY_NAME).get_job_origin(job_name)


def execute_with_origin(
    job: dg.JobDefinition, dagster_instance: dg.DagsterInstance, tags: dict[str, str], run_config: dict[str, Any]
) -> tuple[bool, list[dg.DagsterEvent]]:
    """Runs `job` in this process like `execute_in_process`, with the run attached to the code location."""
    in_process = job.as_ephemeral_job(resource_defs={}, input_values={})
    run = dagster_instance.create_run_for_job(
        job_def=in_process, run_config=run_config, tags={**job.run_tags, **tags}, remote_job_origin=job_origin(job.name)
    )
    execute_run(InMemoryJob(in_process), run, dagster_instance, raise_on_error=False)
    records = dagster_instance.all_logs(run.run_id)
    events = [r.dagster_event for r in records if r.dagster_event is not None]
    finished = dagster_instance.get_run_by_id(run.run_id)
    return finished is not None and finished.status == dg.DagsterRunStatus.SUCCESS, events


def _report(job: str, success: bool, events: list[dg.DagsterEvent]) -> RunReport:
    """The run as the CLI reports it. A connection problem does not fail the Dagster run (the writer must run for
    the other connections), but it fails the connection's credentials check: that counts as a failed sync."""
    report = RunReport(job, success)
    for event in events:
        data = event.event_specific_data
        if isinstance(data, dg.AssetCheckEvaluation):
            report.checks.append(
                CheckReport(
                    f"{data.asset_key.to_user_string()}:{data.check_name}",
                    data.passed,
                    data.severity.value,
                    data.description or "",
                )
            )
            if data.check_name == CREDENTIALS.name and not data.passed and report.failure is None:
                report.success = False
                report.failure = data.description or "the connection's credentials check failed"
        elif isinstance(data, StepMaterializationData):
            error = data.materialization.metadata.get(ANALYST_COPY_ERROR)
            if error is not None and str(error.value) not in report.warnings:
                report.warnings.append(str(error.value))
        elif event.is_step_failure and report.failure is None:
            data = event.step_failure_data
            user = data.user_failure_data
            report.failure = (
                user.description
                if user and user.description
                # The error chain of an interrupted step ends in whatever the step was waiting on (a held lock, say).
                else INTERRUPTED
                if data.error_source is ErrorSource.INTERRUPT
                else _failure_text(data.error)
                if data.error
                else "the step failed"
            )
    return report


def sync_range(
    config: ProjectConfig,
    first_day: date,
    last_day: date,
    connections: list[str] | None = None,
    on_progress: Callable[[str, RunReport | None], None] | None = None,
    log_level: str = "WARNING",
) -> list[RunReport]:
    """Runs the fetch job of each connection, then the writer; Dagster's console log at `log_level`
    (events are recorded in the instance whatever the level). Ctrl-C or SIGTERM ends the run in progress and
    raises SyncInterrupted after it: no later run starts."""
    definitions = build_definitions(config)
    names = connections or [c.name for c in config.connections]
    tags = {
        "dagster/asset_partition_range_start": first_day.isoformat(),
        "dagster/asset_partition_range_end": last_day.isoformat(),
    }
    reports = []
    with instance() as dagster_instance, _stop_signals() as stop_requested:
        for job_name in [fetch_job_name(n) for n in names] + [WRITE_JOB, COST_JOB]:
            try:
                if on_progress:
                    on_progress(job_name, None)
                job = definitions.resolve_job_def(job_name)
                success, events = execute_with_origin(
                    job, dagster_instance, tags, {"loggers": {"console": {"config": {"log_level": log_level}}}}
                )
                reports.append(_report(job_name, success, events))
                if on_progress:
                    on_progress(job_name, reports[-1])
            except KeyboardInterrupt:  # a stop outside Dagster's handling (while a run is created or reported)
                raise SyncInterrupted(job_name) from None
            if stop_requested():
                raise SyncInterrupted(job_name)
    return reports
