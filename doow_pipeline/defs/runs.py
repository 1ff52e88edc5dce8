"""Running the Dagster jobs in-process for a range of days (used by `doow-azure sync` and `connect`).

One run per connection (so one broken connection never stops the others), then one writer run that
rebuilds usage for the whole range, then one cost run (prices, then the estimated cost of the range).
Runs are recorded in $DAGSTER_HOME when it is set (visible in the UI), else in an ephemeral instance.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import dagster as dg

from ..config import ProjectConfig
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

    @property
    def failed_checks(self) -> list[CheckReport]:
        return [c for c in self.checks if not c.passed]


def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _report(job: str, result: dg.ExecuteInProcessResult) -> RunReport:
    report = RunReport(job, result.success)
    for event in result.all_events:
        data = event.event_specific_data
        if isinstance(data, dg.AssetCheckEvaluation):
            report.checks.append(CheckReport(f"{data.asset_key.to_user_string()}:{data.check_name}", data.passed,
                                             data.severity.value, data.description or ""))
        elif event.is_step_failure and report.failure is None:
            data = event.step_failure_data
            cause = data.error
            while cause is not None and cause.cause is not None:
                cause = cause.cause
            user = data.user_failure_data
            report.failure = (user.description if user and user.description
                              else cause.message.strip() if cause else "the step failed")
    return report


def sync_range(config: ProjectConfig, first_day: date, last_day: date, connections: list[str] | None = None,
               on_progress: Callable[[str, RunReport | None], None] | None = None,
               log_level: str = "WARNING") -> list[RunReport]:
    """Runs the fetch job of each connection, then the writer; Dagster's console log at `log_level`
    (events are recorded in the instance whatever the level)."""
    definitions = build_definitions(config)
    names = connections or [c.name for c in config.connections]
    tags = {"dagster/asset_partition_range_start": first_day.isoformat(),
            "dagster/asset_partition_range_end": last_day.isoformat()}
    reports = []
    with instance() as dagster_instance:
        for job_name in [fetch_job_name(n) for n in names] + [WRITE_JOB, COST_JOB]:
            if on_progress:
                on_progress(job_name, None)
            job = definitions.resolve_job_def(job_name)
            result = job.execute_in_process(
                instance=dagster_instance, tags=tags, raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
            reports.append(_report(job_name, result))
            if on_progress:
                on_progress(job_name, reports[-1])
    return reports
