"""The README's main command: a sync of the bundled demo estate through the local Azure emulator.

    python -m doow_pipeline_tests.demo [--days 30] [--workdir .demo] [--serve [--port 3000]]

Starts the emulator on the demo scenario, writes .demo/connections.yaml (endpoints pasted from the
emulator's ready line, no secrets) and .demo/.env (0600, the demo's fake secrets), runs
`doow-azure sync` for the last N complete days as a separate process, exactly as a user would, with its
runs recorded in the Dagster instance .demo/dagster_home, and prints a usage summary read from the DuckDB
warehouse. With --serve (`make dev`) it then serves the Dagster UI and daemon on that same instance, so the
UI opens populated with every check evaluated; Ctrl-C stops the UI, the daemon and the emulator.

`doow-azure sync` for the last N complete days as a separate process, exactly as a user would, and
prints a usage summary read from the DuckDB warehouse.

The demo follows the real clock: the scenario's dates move to today (`follow_real_clock`), the emulator
serves the real time and the project sets no `frozen_clock`, so the history ends at the last complete UTC
day and `status`, `doctor`, the Dagster UI and the schedule agree with it. The tests keep frozen clocks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

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
RESTRICTED_ACCOUNT = (
    f"{RESEARCH}/resourceGroups/rg-research-restricted/providers/Microsoft.CognitiveServices/"
    "accounts/ais-research-restricted"
)
DEMO_CONNECTIONS = [
    ConnectionSpec("prod", MAIN_PRINCIPAL, PROD),
    ConnectionSpec("dev", MAIN_PRINCIPAL, DEV),
    ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH),
]
# The cost settings a demo user would write: the tags meaning owner and cost centre, the deployment types
# Azure Monitor does not report (one batch, a few regional and data-zone deployments, one PTU), and model
# names for deployments of the accounts that emit only the Azure OpenAI metrics (no ModelName dimension).
# aoai-dev-legacy's gpt-4o-mini-dev and embed-large-dev stay unnamed: their cost is NULL (no_meter).
DEMO_COST_SETTINGS = {
    "owner_tag": "owner",
    "cost_centre_tag": "CostCenter",
    "deployment_types": {
        "default": "GlobalStandard",
        "overrides": {
            "aoai-prod-weu/gpt-4o-batch": "GlobalBatch",
            "aoai-prod-eus/gpt-4o-eus": "Standard",
            "aoai-prod-eus/gpt-41-eus": "DataZoneStandard",
            "aoai-dev-legacy/gpt-35-turbo-legacy": "Standard",
            "aoai-research-eus2/gpt-4o-research": "DataZoneStandard",
        },
        "provisioned": ["ais-prod-eus2/gpt-4o-mini-foundry"],
    },
    "deployment_models": {
        "aoai-prod-eus/gpt-4o-eus": "gpt-4o",
        "aoai-prod-eus/gpt-4o-mini-eus": "gpt-4o-mini",
        "aoai-prod-eus/gpt-41-eus": "gpt-4.1",
        "aoai-prod-eus/gpt-4o-global": "gpt-4o",
        "aoai-dev-legacy/gpt-35-turbo-legacy": "gpt-35-turbo",
    },
}


def print_usage_summary(warehouse: Path, console: Console) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        by_model = con.execute("""
            SELECT coalesce(model_name, '(unknown)') AS model, count(DISTINCT deployment) AS deployments,
                   sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                   sum(total_tokens) AS total_tokens, sum(requests) AS requests
            FROM azure_openai.usage_daily GROUP BY ALL ORDER BY total_tokens DESC""").fetchall()
        status = con.execute(
            "SELECT connection, state, accounts_covered, accounts_in_scope, usage_rows, "
            "last_error FROM azure_openai.connection_status"
        ).fetchall()
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


ROOT = Path(__file__).resolve().parents[1]
# `dagster dev` is "superseded" by the `dg` CLI, which needs a `dg` project layout this repository does not use;
# `dagster dev -w workspace.yaml` is still supported, so its SupersessionWarning is silenced for it alone
# (a PYTHONWARNINGS filter by message, as its category is not importable when Python starts; it reaches the
# webserver, daemon and code-server processes too).
QUIET_DAGSTER_DEV = "ignore:Function `dev_command` is superseded:FutureWarning"


def dagster_home(workdir: Path) -> Path:
    """The instance the demo's runs and the UI share, configured by the repository's dagster.yaml."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def _ui_ready(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"query": "{ assetNodes { id } }"}).encode(),
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(json.loads(response.read()).get("data", {}).get("assetNodes"))
    except (OSError, ValueError):
        return False


def start_dagster_dev(env: dict[str, str], home: Path, port: int, **popen: Any) -> subprocess.Popen[bytes]:
    """`dagster dev -w workspace.yaml` on 127.0.0.1:`port` with DAGSTER_HOME=`home`, in its own session."""
    # Run from DAGSTER_HOME: `dagster dev` warns about a dagster.yaml in the current folder (the repository's)
    # that is not DAGSTER_HOME's, although DAGSTER_HOME holds a copy of it.
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "dev",
        "-w",
        str(ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    return subprocess.Popen(
        command,
        cwd=home,
        start_new_session=True,
        env={**env, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": QUIET_DAGSTER_DEV},
        **popen,
    )


def serve_ui(env: dict[str, str], home: Path, port: int, console: Console) -> int:
    """`dagster dev` (webserver + daemon) on the demo instance until Ctrl-C (or SIGTERM); returns its exit code."""
    # Ctrl-C and SIGTERM both end the wait below; SIGINT's handler is set explicitly because a shell that starts
    # us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    process = start_dagster_dev(env, home, port)
    try:
        while process.poll() is None and not _ui_ready(port):
            time.sleep(1)
        if process.poll() is None:
            console.print(
                f"Dagster UI at http://127.0.0.1:{port} (instance {home}). Ctrl-C stops the UI, the "
                "daemon and the emulator."
            )
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="complete UTC days to sync before now")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument(
        "--keep-running", action="store_true", help="keep the emulator serving after the sync, until Ctrl-C"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="then serve the Dagster UI and daemon on the demo instance (`make dev`), until Ctrl-C",
    )
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port with --serve")
    args = parser.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    workdir = args.workdir.resolve()
    raw = follow_real_clock(yaml.safe_load(Path(DEMO_SCENARIO).read_text(encoding="utf-8")), REAL_CLOCK.now())
    scenario = scenario_from_dict(raw, source=str(DEMO_SCENARIO))
    last_day = REAL_CLOCK.today() - timedelta(days=1)
    first_day = last_day - timedelta(days=args.days - 1)
    with run_emulator(raw, state_dir=workdir / "emulator") as emulator:
        config = write_project(
            workdir, emulator.endpoints, scenario, DEMO_CONNECTIONS, frozen_clock=None, **DEMO_COST_SETTINGS
        )
        console.print(f"emulator ready at {emulator.endpoints['arm']}; project in {config}")
        home = dagster_home(workdir)
        env = {**os.environ, "DOOW_CONNECTIONS": str(config), "DAGSTER_HOME": str(home)}
        cli = [sys.executable, "-m", "doow_pipeline.cli"]
        # The Retail Prices API answers today's prices only: a schedule running since the first day would have
        # stored the prices in force then. Replay that first run (emulator and pipeline clocks on that day).
        early = f"{first_day + timedelta(days=1)}T06:00:00Z"
        emulator.set_clock(early)
        console.print(
            f"$ doow-azure --frozen-clock {early} sync --from {first_day} --to {first_day}   "
            "(the first daily run, as of then: stores the prices in force then)"
        )
        subprocess.call(
            [*cli, "--frozen-clock", early, "sync", "--from", str(first_day), "--to", str(first_day)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        emulator.set_clock(None)  # back to the real time
        console.print("$ DOOW_CONNECTIONS=" + str(config) + " doow-azure sync --from " + f"{first_day} --to {last_day}")
        code = subprocess.call([*cli, "sync", "--from", str(first_day), "--to", str(last_day)], env=env)
        print_usage_summary(workdir / "doow.duckdb", console)
        console.print(f"$ doow-azure cost --from {first_day} --to {last_day}")
        sys.stdout.flush()
        subprocess.call([*cli, "cost", "--from", str(first_day), "--to", str(last_day)], env=env)
        if args.serve:
            serve_ui(env, home, args.port, console)
        elif args.keep_running:
            console.print(f"The emulator keeps serving {config}'s endpoints. Ctrl-C stops it.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    # Analysts open the read-only copy every write publishes, so an open session never blocks the next sync.
    console.print(
        f"Warehouse: {workdir / 'doow.duckdb'}; for analysts: duckdb -readonly {workdir / 'doow.analyst.duckdb'} "
        "-c 'FROM azure_openai.usage_daily LIMIT 10'"
    )
    # The research connection includes an account its principal cannot read: a failed WARN check is the
    # expected outcome there, so only a failed run (exit 1 with a failed step) is an error.
    return code


if __name__ == "__main__":
    sys.exit(main())
