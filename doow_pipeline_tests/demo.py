"""The README's main command: a sync of the bundled demo estate through the local Azure emulator.

    python -m doow_pipeline_tests.demo [--days 30] [--workdir .demo]

Starts the emulator on the demo scenario, writes .demo/connections.yaml (endpoints pasted from the
emulator's ready line, no secrets) and .demo/.env (0600, the demo's fake secrets), runs
`doow-azure sync` for the last N complete days as a separate process, exactly as a user would, and
prints a usage summary read from the DuckDB warehouse.

The demo follows the real clock: the scenario's dates move to today (`follow_real_clock`), the emulator
serves the real time and the project sets no `frozen_clock`, so the history ends at the last complete UTC
day and `status`, `doctor`, the Dagster UI and the schedule agree with it. The tests keep frozen clocks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import yaml
from rich.console import Console
from rich.table import Table

from doow_pipeline.core.clock import REAL_CLOCK

from .azure_emulator import DEMO_SCENARIO
from .azure_emulator.fixture import run_emulator
from .azure_emulator.scenario import follow_real_clock, scenario_from_dict
from .project import ConnectionSpec, write_project

# Identifiers of the demo estate (scenarios/demo.yaml says what each principal and scope is for).
TENANT = "8c1f4a6e-2b3d-4e5f-9a0b-1c2d3e4f5a60"
MAIN_PRINCIPAL = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e501"
RG_READER = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e502"
EXPIRED = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e503"
ONE_ACCOUNT = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e504"
EMPTY_SCOPE = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e505"
NO_USAGE = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e506"
PROD, DEV, RESEARCH, SHARED = (f"/subscriptions/3b6e1c2a-5d4f-4a8b-9c7e-0f1a2b3c4d0{i}" for i in (1, 2, 3, 4))
PROD_WEU_RG = f"{PROD}/resourceGroups/rg-ai-prod-weu"
SANDBOX_RG = f"{DEV}/resourceGroups/rg-dev-sandbox"
LEGACY_ACCOUNT = f"{DEV}/resourceGroups/rg-ai-dev/providers/Microsoft.CognitiveServices/accounts/aoai-dev-legacy"
RESTRICTED_ACCOUNT = (f"{RESEARCH}/resourceGroups/rg-research-restricted/providers/Microsoft.CognitiveServices/"
                      "accounts/ais-research-restricted")
DEMO_CONNECTIONS = [
    ConnectionSpec("prod", MAIN_PRINCIPAL, PROD),
    ConnectionSpec("dev", MAIN_PRINCIPAL, DEV),
    ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH),
]


def print_usage_summary(warehouse: Path, console: Console) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        by_model = con.execute("""
            SELECT coalesce(model_name, '(unknown)') AS model, count(DISTINCT deployment) AS deployments,
                   sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                   sum(total_tokens) AS total_tokens, sum(requests) AS requests
            FROM azure_openai.usage_daily GROUP BY ALL ORDER BY total_tokens DESC""").fetchall()
        status = con.execute("SELECT connection, state, accounts_covered, accounts_in_scope, usage_rows, "
                             "last_error FROM azure_openai.connection_status").fetchall()
    table = Table(title="Usage by model (all synced days)")
    for column in ("model", "deployments", "input_tokens", "output_tokens", "total_tokens", "requests"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in by_model:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    console.print(table)
    table = Table(title="Connections")
    for column in ("connection", "state", "accounts read", "accounts in scope", "usage rows", "last error"):
        table.add_column(column)
    for row in status:
        table.add_row(*("" if v is None else (str(v)[:80]) for v in row))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="complete UTC days to sync before now")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument("--keep-running", action="store_true",
                        help="keep the emulator serving after the sync (for `make dev`), until Ctrl-C")
    args = parser.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    workdir = args.workdir.resolve()
    raw = follow_real_clock(yaml.safe_load(Path(DEMO_SCENARIO).read_text(encoding="utf-8")), REAL_CLOCK.now())
    scenario = scenario_from_dict(raw, source=str(DEMO_SCENARIO))
    last_day = REAL_CLOCK.today() - timedelta(days=1)
    first_day = last_day - timedelta(days=args.days - 1)
    with run_emulator(raw, state_dir=workdir / "emulator") as emulator:
        config = write_project(workdir, emulator.endpoints, scenario, DEMO_CONNECTIONS, frozen_clock=None)
        console.print(f"emulator ready at {emulator.endpoints['arm']}; project in {config}")
        env = {**os.environ, "DOOW_CONNECTIONS": str(config)}
        command = [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(first_day), "--to", str(last_day)]
        console.print("$ DOOW_CONNECTIONS=" + str(config) + " doow-azure sync --from " + f"{first_day} --to {last_day}")
        code = subprocess.call(command, env=env)
        print_usage_summary(workdir / "doow.duckdb", console)
        if args.keep_running:
            console.print(f"The emulator keeps serving {config}'s endpoints. In another terminal: make dev "
                          "(Dagster UI on this project). Ctrl-C stops the emulator.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    console.print(f"Warehouse: {workdir / 'doow.duckdb'}  (try: duckdb {workdir / 'doow.duckdb'} "
                  "-c 'FROM azure_openai.usage_daily LIMIT 10')")
    # The research connection includes an account its principal cannot read: a failed WARN check is the
    # expected outcome there, so only a failed run (exit 1 with a failed step) is an error.
    return code


if __name__ == "__main__":
    sys.exit(main())
