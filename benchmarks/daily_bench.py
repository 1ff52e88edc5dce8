"""Benchmark 4 (`daily`): the scheduled daily run on the 1,000-account estate after a 90-day backfill.

Setup (not measured): the 90-day backfill of the `sync` section's estate; the `sync` section's own project
(landing zone and whatever state the product keeps beside it) when it ran in this invocation, otherwise the
same backfill run here first.

Measured: the next day's scheduled run, as the schedule makes it: at the schedule's time (03:30 UTC the day after
the backfill's clock), the partition range of `doow_pipeline.defs.schedules.trailing_range` (the trailing
`settings.resync_days` complete days and today so far), through the same product entry point as the backfill
(sync_worker.py: `fetch_connection` per connection, one after another) in a fresh process, against a freshly
started emulator whose clock is the run's. The project is the backfill's (same folder), with its clock and the
new emulator's endpoints rewritten.

Bound (from the scenario, not the pipeline): what a run needs when it already knows the accounts' metric
definitions: per connection, tokens (and the OpenID metadata read), the accounts-list pages and the getBatch
calls of the backfill's lower bound; no metricDefinitions. Target: calls <= 1.1 x that bound.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from benchmarks import sync_bench
from benchmarks.common import Section, fmt_mib, fmt_s, process_cpu_seconds, process_peak_rss_mib, run_worker

SCHEDULE_TIME = time(3, 30)  # the daily schedule's cron "30 3 * * *" (defs/schedules.py), UTC
CALLS_TARGET = 1.1


def daily_bound(estate: sync_bench.Estate) -> dict[str, int]:
    """The backfill's lower bound without metricDefinitions (known accounts keep their definitions)."""
    return {k: v for k, v in sync_bench.lower_bound(estate.scenario, estate.scopes).items() if k != "definitions"}


def backfilled(quick: bool, workdir: Path, log) -> tuple[sync_bench.PipelineMeasurement, bool]:
    measured = sync_bench.MEASURED.get(quick)
    if measured is not None:
        return measured, True
    estate = sync_bench.build_estate(sync_bench.scenario_document(quick), "scale.yaml")
    log("daily: setup, the 90-day backfill (not measured)")
    measured = sync_bench.MEASURED[quick] = sync_bench.measure_pipeline(estate, workdir, "sync", log)
    return measured, False


def run(quick: bool, workdir: Path, log=print) -> Section:
    from doow_pipeline.config import load_config
    from doow_pipeline.defs.schedules import trailing_range
    from doow_pipeline_tests.azure_emulator.fixture import run_emulator
    from doow_pipeline_tests.project import write_project

    section = Section("daily")
    backfill, reused = backfilled(quick, workdir, log)
    estate = backfill.estate
    backfill_now = estate.scenario.current_time()
    now = datetime.combine(backfill_now.date() + timedelta(days=1), SCHEDULE_TIME, tzinfo=UTC)
    resync_days = load_config(backfill.project).settings.resync_days
    first, last = (date.fromisoformat(d) for d in trailing_range(resync_days, now))
    raw = copy.deepcopy(estate.raw)
    raw["now"] = now.isoformat().replace("+00:00", "Z")
    log(f"daily: the scheduled run at {now:%Y-%m-%d %H:%M}Z, days {first}..{last} (resync_days {resync_days})")
    with run_emulator(raw, state_dir=workdir / "emulator-daily", spec_validation=False) as emu:
        project = write_project(
            backfill.project.parent,
            emu.endpoints,
            estate.scenario,
            estate.specs,
            concurrency=sync_bench.CONCURRENCY,
            top=sync_bench.TOP,
            frozen_clock=now.isoformat(),
        )
        emu_cpu = process_cpu_seconds(emu.process.pid)
        run_ = run_worker(
            "benchmarks.sync_worker",
            {"config": str(project), "first_day": str(first), "last_day": str(last)},
            workdir,
            "daily-pipeline",
        )
        emu_cpu = process_cpu_seconds(emu.process.pid) - emu_cpu
        emu_peak = process_peak_rss_mib(emu.process.pid)
        requests = emu.requests()
    stats = sync_bench._request_stats(requests)
    measured = sync_bench.PipelineMeasurement(estate, run_, stats, emu_cpu, emu_peak, project)
    bound = daily_bound(estate)
    calls = stats["by_kind"]
    total, total_bound = sum(calls.values()), sum(bound.values())
    section.data.update(
        {
            "now": now.isoformat(),
            "days": [str(first), str(last)],
            "resync_days": resync_days,
            "backfill_reused_from_sync_section": reused,
            "pipeline": measured.data(),
            "bound": bound,
        }
    )
    log(f"daily: done in {fmt_s(run_.result['wall_s'])}, {total} calls {calls}")

    section.notes.append(
        f"estate: {estate.describe()}; after the backfill of {estate.first}..{estate.last} "
        + ("(the `sync` section's)" if reused else "(run here as setup)")
        + f", the scheduled run at {now:%Y-%m-%d %H:%M}Z re-syncs {first}..{last} ({(last - first).days + 1} days: "
        f"the trailing resync_days={resync_days} and today so far)"
    )
    section.row(
        "API calls / bound",
        f"{total:,} / {total_bound:,}",
        "",
        f"{total / total_bound:.3f}",
        f"<= {CALLS_TARGET:g}",
        total / total_bound <= CALLS_TARGET,
    )
    for kind in sorted(set(calls) | set(bound), key=lambda k: (-calls.get(k, 0), k)):
        section.row(f"  {kind}", f"{calls.get(kind, 0):,} (bound {bound.get(kind, 0):,})")
    section.row("  refused (429/529), retried", f"{sum(stats['refused_by_kind_status'].values()):,}")
    section.row("wall time", fmt_s(run_.result["wall_s"]))
    for c in run_.result["connections"]:
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in c["phases_s"].items())
        section.notes.append(f"{c['connection']}: {fmt_s(c['wall_s'])} = {phases}; {c['points']:,} points")
    section.row("peak memory (RSS)", fmt_mib(run_.peak_rss_mib))
    section.row("CPU of syncing process", fmt_s(run_.cpu_s))
    section.row("points landed", f"{sum(c['points'] for c in run_.result['connections']):,}")

    # today is partial (its usage so far), so the generator comparison covers the complete days
    sync_bench.check_sync(section, measured, first, last, now.date() - timedelta(days=1), 6 if not quick else 3)
    return section
