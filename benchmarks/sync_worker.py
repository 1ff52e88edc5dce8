"""Worker: the pipeline's 90-day backfill, exactly as the product runs it, in a fresh process.

Loads the project written by the parent (connections.yaml + .env), then for each connection, one after
another as `doow-azure sync` does (one fetch run per connection), opens an AzureSession the way the Dagster
resource does and calls `doow_pipeline.services.fetch.fetch_connection` for the whole range with `now` from
the project's clock (settings.frozen_clock, written by the parent: the scenario's frozen clock). The landing
files it writes are what the parent checks.

The phase timings come from the product's phase hook (`on_phase`), which changes nothing in what runs.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from datetime import date
from pathlib import Path

from benchmarks.common import vm_hwm_mib, worker_main


def run(spec: dict) -> dict:
    from doow_pipeline.config import export_env_file, load_config
    from doow_pipeline.services.fetch import fetch_connection
    from doow_pipeline.services.sessions import open_session
    from doow_pipeline.warehouse.landing import Landing

    config = load_config(spec["config"])
    export_env_file(config)
    first, last = date.fromisoformat(spec["first_day"]), date.fromisoformat(spec["last_day"])
    current: dict = {}

    def on_phase(name: str, seconds: float) -> None:
        current["phases_s"][name] = current["phases_s"].get(name, 0.0) + seconds
        current["vm_hwm_after_mib"][name] = round(vm_hwm_mib(), 1)

    landing = Landing(config.landing_dir)
    connections = []
    started_all = time.perf_counter()
    for connection in config.connections:
        current.clear()
        current.update(
            {"connection": connection.name, "scope": connection.scope, "phases_s": {}, "vm_hwm_after_mib": {}}
        )
        started = time.perf_counter()
        cpu_started = time.process_time()
        session = open_session(connection, os.environ[connection.client_secret_env], config.settings.endpoints)
        with session:
            outcome = fetch_connection(
                session,
                connection,
                config.settings,
                landing,
                first,
                last,
                config.settings.clock.now(),
                on_phase=on_phase,
            )
        extraction = outcome.extraction
        current.update(
            {
                "wall_s": time.perf_counter() - started,
                "cpu_s": time.process_time() - cpu_started,
                "ok": outcome.ok,
                "problem": str(outcome.problem) if outcome.problem else None,
                "accounts": len(outcome.accounts),
                "plans": len(outcome.plans),
                "family_queries": sum(len(p.queries) for p in outcome.plans),
                "points": outcome.points,
                "days_landed": len(outcome.rows_per_day),
                "calls": dict(extraction.calls) if extraction else {},
                "activity_calls": dict(outcome.activity.calls) if outcome.activity else {},
                "paths": dict(extraction.paths) if extraction else {},
                "unreadable": len(outcome.unreadable),
                "truncated": list(extraction.truncated) if extraction else [],
                "events": dict(Counter(f"{e.level}:{e.code}" for e in outcome.events)),
            }
        )
        connections.append(dict(current))
        del outcome, extraction
        gc.collect()
    return {
        "wall_s": time.perf_counter() - started_all,
        "cpu_s": time.process_time(),
        "connections": connections,
        "landing": str(Path(config.landing_dir)),
    }


if __name__ == "__main__":
    worker_main(run)
