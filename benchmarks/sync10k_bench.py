"""Benchmark 3 (`sync10k`): the same 90-day backfill for an estate ten times the size, to show whether the
syncing process's memory grows with the estate.

Estate: scale.yaml's `scale:` block with 40 subscriptions x 250 accounts x 10 deployments (10,000 accounts,
100,000 deployments); everything else (regions, kinds, models, latency, throttle budgets, paging, clock) is the
1,000-account estate's. The subscriptions keep the 1,000-account estate's size on purpose: Azure's budgets are
per subscription and principal (ARM reads 250 burst + 25/s, metricDefinitions 400 per 5 minutes), so a larger
subscription would measure Azure's throttle, not the pipeline (a 2,500-account subscription needs 2,500
metricDefinitions reads: at least 30 minutes at 400 per 5 minutes, whatever the pipeline does).

Measured as `sync` measures (sync_worker.py: one connection per subscription, one after another in one process,
`fetch_connection`; a freshly started emulator), and compared with the 1,000-account backfill measured in the
same invocation: the `sync` section's when it ran, otherwise the pipeline half of it is measured here first.
No naive baseline (it would take hours; `sync` extrapolates it).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import sync_bench
from benchmarks.common import Section, fmt_mib, fmt_ratio, fmt_s

SIZES = {
    # (1,000-account estate, 10,000-account estate); quick: the sync section's quick estate and twice it
    True: (
        {"subscriptions": 2, "accounts_per_subscription": 30},
        {"subscriptions": 4, "accounts_per_subscription": 30},
    ),
    False: (
        {"subscriptions": 4, "accounts_per_subscription": 250},
        {"subscriptions": 40, "accounts_per_subscription": 250},
    ),
}
PEAK_TARGET_MIB = 400.0  # issue 11: the 10,000-account backfill within 400 MiB ...
PEAK_GROWTH_TARGET = 1.1  # ... and within 1.1 x the 1,000-account backfill's peak, measured side by side


def reference_run(quick: bool, workdir: Path, log) -> tuple[sync_bench.PipelineMeasurement, bool]:
    """The 1,000-account backfill of this invocation: (measurement, reused from the `sync` section)."""
    measured = sync_bench.MEASURED.get(quick)
    if measured is not None:
        return measured, True
    small, _ = SIZES[quick]
    estate = sync_bench.build_estate(sync_bench.scenario_document(quick, small), "scale.yaml (1k)")
    measured = sync_bench.MEASURED[quick] = sync_bench.measure_pipeline(estate, workdir, "sync", log)
    return measured, False


def run(quick: bool, workdir: Path, log=print) -> Section:
    section = Section("sync10k")
    reference, reused = reference_run(quick, workdir, log)
    _, large = SIZES[quick]
    estate = sync_bench.build_estate(sync_bench.scenario_document(quick, large), "scale.yaml (10k)")
    measured = sync_bench.measure_pipeline(estate, workdir, "sync10k", log)
    section.data["estate"] = {**large, "accounts": estate.accounts, "deployments": estate.deployments}
    section.data["pipeline"] = measured.data()
    section.data["reference"] = {"reused_from_sync_section": reused, **reference.data()}
    bound = sync_bench.lower_bound(estate.scenario, estate.scopes)
    section.data["lower_bound"] = bound

    calls, total_bound = sum(measured.calls.values()), sum(bound.values())
    peak, ref_peak = measured.run.peak_rss_mib, reference.run.peak_rss_mib
    wall, ref_wall = measured.result["wall_s"], reference.result["wall_s"]
    ref_label = f"{reference.estate.accounts:,} accts"
    section.notes.append(f"estate: {estate.describe()}; reference: {reference.estate.describe()}")
    section.row(
        "peak memory (RSS)",
        fmt_mib(peak),
        f"{fmt_mib(ref_peak)} ({ref_label})",
        fmt_ratio(peak / ref_peak),
        f"<= {PEAK_GROWTH_TARGET:g}x",
        peak <= PEAK_GROWTH_TARGET * ref_peak,
    )
    section.row(
        f"  peak <= {PEAK_TARGET_MIB:,.0f} MiB",
        fmt_mib(peak),
        "",
        "",
        f"<= {PEAK_TARGET_MIB:,.0f} MiB" if not quick else "",
        peak <= PEAK_TARGET_MIB if not quick else None,
    )
    section.row("wall time", fmt_s(wall), f"{fmt_s(ref_wall)} ({ref_label})", fmt_ratio(wall / ref_wall))
    section.row(
        "  per 1,000 accounts",
        fmt_s(wall * 1000 / estate.accounts),
        fmt_s(ref_wall * 1000 / reference.estate.accounts),
    )
    section.row(
        "API calls / lower bound",
        f"{calls:,} / {total_bound:,}",
        "",
        f"{calls / total_bound:.3f}",
        f"<= {sync_bench.CALLS_TARGET:g}",
        calls / total_bound <= sync_bench.CALLS_TARGET,
    )
    for kind in ("batch", "accounts", "definitions", "token", "openid"):
        section.row(f"  {kind}", f"{measured.calls.get(kind, 0):,} (bound {bound.get(kind, 0):,})")
    section.row("  refused (429/529), retried", f"{sum(measured.stats['refused_by_kind_status'].values()):,}")
    section.row("CPU of syncing process", fmt_s(measured.run.cpu_s), f"{fmt_s(reference.run.cpu_s)} ({ref_label})")
    section.row(
        "emulator: CPU, peak memory",
        f"{fmt_s(measured.emulator_cpu_s)}, {fmt_mib(measured.emulator_peak_rss_mib)}",
        f"{fmt_s(reference.emulator_cpu_s)}, {fmt_mib(reference.emulator_peak_rss_mib)} ({ref_label})",
    )
    section.row("points landed", f"{sum(c['points'] for c in measured.result['connections']):,}")
    heaviest = max(measured.result["connections"], key=lambda c: max(c["vm_hwm_after_mib"].values(), default=0))
    section.notes.append(
        "peak RSS after each connection (MiB): "
        + ", ".join(f"{max(c['vm_hwm_after_mib'].values(), default=0):,.0f}" for c in measured.result["connections"])
        + f"; the peak is reached in {heaviest['connection']}"
    )
    section.notes.append(
        "the 1,000-account reference is "
        + (
            "the `sync` section's pipeline run"
            if reused
            else "measured by this section (the `sync` section did not run)"
        )
        + "; both runs: one subscription-scoped connection per subscription, one after another in one process, "
        f"concurrency {sync_bench.CONCURRENCY}, a freshly started emulator each"
    )
    sync_bench.check_sync(section, measured, estate.first, estate.last, estate.last, 6 if not quick else 3)
    return section
