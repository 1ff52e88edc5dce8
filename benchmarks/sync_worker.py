"""Worker: the pipeline's 90-day backfill, exactly as the product runs it, in a fresh process.

Loads the project written by the parent (connections.yaml + .env), then for each connection, one after
another as `doow-azure sync` does (one fetch run per connection), opens an AzureSession the way the Dagster
resource does and calls `doow_pipeline.sync.sync_connection` for the whole range with `now` from
`doow_pipeline.clock.utc_now()` (DOOW_NOW is set by the parent to the scenario's frozen clock). The landing
files it writes are what the parent checks.

The phase timings come from wrapping the functions `sync_connection` calls (module attributes), which
changes nothing in what runs.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from datetime import date
from pathlib import Path

from benchmarks.common import vm_hwm_mib, worker_main

PHASES = {"discover_accounts": "discovery", "_plan_accounts": "definitions", "extract_usage": "extraction",
          "_land_days": "landing"}


def run(spec: dict) -> dict:
    import doow_pipeline.sync as sync_module
    from doow_pipeline.azure.session import AzureSession, CloudEndpoints
    from doow_pipeline.clock import utc_now
    from doow_pipeline.config import export_env_file, load_config
    from doow_pipeline.warehouse.landing import Landing

    config = load_config(spec["config"])
    export_env_file(config)
    first, last = date.fromisoformat(spec["first_day"]), date.fromisoformat(spec["last_day"])
    current: dict = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                current["phases_s"][name] = current["phases_s"].get(name, 0.0) + time.perf_counter() - started
                current["vm_hwm_after_mib"][name] = round(vm_hwm_mib(), 1)
        return wrapper

    for attr, phase in PHASES.items():
        setattr(sync_module, attr, timed(phase, getattr(sync_module, attr)))

    landing = Landing(config.landing_dir)
    connections = []
    started_all = time.perf_counter()
    for connection in config.connections:
        current.clear()
        current.update({"connection": connection.name, "scope": connection.scope, "phases_s": {},
                        "vm_hwm_after_mib": {}})
        started = time.perf_counter()
        cpu_started = time.process_time()
        session = AzureSession(connection.tenant_id, connection.client_id, os.environ[connection.client_secret_env],
                               CloudEndpoints.for_cloud(connection.cloud, config.settings.endpoints))
        with session:
            outcome = sync_module.sync_connection(session, connection, config.settings, landing, first, last,
                                                  utc_now())
        extraction = outcome.extraction
        current.update({
            "wall_s": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu_started,
            "ok": outcome.ok,
            "problem": outcome.scope_problem or (str(outcome.credential_problem) if outcome.credential_problem
                                                 else None),
            "accounts": len(outcome.accounts),
            "plans": len(outcome.plans),
            "family_queries": sum(len(p.queries) for p in outcome.plans),
            "points": outcome.points,
            "days_landed": len(outcome.rows_per_day),
            "calls": dict(extraction.calls) if extraction else {},
            "paths": dict(extraction.paths) if extraction else {},
            "unreadable": len(outcome.unreadable),
            "truncated": list(extraction.truncated) if extraction else [],
            "events": dict(Counter(f"{e.level}:{e.code}" for e in outcome.events)),
        })
        connections.append(dict(current))
        del outcome, extraction
        gc.collect()
    return {"wall_s": time.perf_counter() - started_all, "cpu_s": time.process_time(),
            "connections": connections, "landing": str(Path(config.landing_dir))}


if __name__ == "__main__":
    worker_main(run)
