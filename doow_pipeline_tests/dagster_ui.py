"""`dagster dev` (webserver + daemon) for the tests, written once: started on 127.0.0.1 with a free port on a
project's connections.yaml and a DAGSTER_HOME, ready when its GraphQL API lists the code location's assets,
stopped (its whole process group) at exit.

    with dagster_ui(connections_yaml, home, tmp_path / "dagster-dev.log") as ui:
        ui.graphql("{ assetNodes { id } }")
        ui.url  # for a browser

The start is waited for by condition, not by a fixed time: the webserver answering GraphQL with the assets of
the code location (the code server has loaded the definitions). A loaded 2-core machine can need minutes for
that, so the budget is generous (START_BUDGET); a `dagster dev` that exits early fails at once, and one that
is not ready within the budget fails naming the budget, with the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .demo import start_dagster_dev
from .servers import free_port, wait_until

START_BUDGET = 600.0  # seconds; generous for a loaded machine, still a clear failure when exceeded
STOP_TIMEOUT = 60.0


class GraphQLError(RuntimeError):
    pass


@dataclass
class DagsterUI:
    port: int
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, timeout: float = 30) -> dict[str, Any]:
        """The `data` of a GraphQL answer; GraphQLError when the answer carries errors."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"])[:2000])
        return answer["data"]

    def assets_loaded(self) -> bool:
        try:
            return bool(self.graphql("{ assetNodes { id } }", timeout=10).get("assetNodes"))
        except (OSError, ValueError, GraphQLError):
            return False

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def dagster_ui(connections: Path, home: Path, log: Path, budget: float = START_BUDGET) -> Iterator[DagsterUI]:
    """`dagster dev` on `connections` (its `.env` supplies the secrets) with DAGSTER_HOME=`home`."""
    # The secrets come from the project's .env, as for a user; none of the test process's own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOOW_SECRET_")}
    env["DOOW_CONNECTIONS"] = str(connections)
    port = free_port()
    with log.open("wb") as out:
        process = start_dagster_dev(env, home, port, stdout=out, stderr=subprocess.STDOUT)
    ui = DagsterUI(port, home, log, process)
    try:
        wait_until(ui.assets_loaded, process, f"dagster dev on port {port}", log, timeout=budget)
        yield ui
    finally:
        _stop(process)
