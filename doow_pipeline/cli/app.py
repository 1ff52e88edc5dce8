"""The `doow-azure` command: the typer app, its global options, and one module per command.

Exit codes: 0 ok, 1 a finding or failure, 2 usage error (bad arguments or configuration), 130 interrupted
(Ctrl-C, or SIGTERM, which ends a command the same way). No traceback reaches a user without --verbose: an
unexpected error is reported in one line, scrubbed of secrets.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime
from typing import Annotated

import typer

from ..core.clock import parse_utc
from . import connect, cost, disconnect, doctor, status, sync
from .output import EXIT_FAILURE, EXIT_INTERRUPTED, Output
from .project import CliState

app = typer.Typer(
    name="doow-azure",
    no_args_is_help=True,
    add_completion=False,
    help="Connect Azure scopes and sync Azure OpenAI usage into DuckDB.",
    pretty_exceptions_enable=False,
)  # a pretty traceback could print a secret held in a local


def _frozen_clock(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-11-20T06:00:00Z") from None


@app.callback()
def main_options(
    ctx: typer.Context,
    frozen_clock: Annotated[
        str | None,
        typer.Option(
            "--frozen-clock",
            metavar="ISO_TIME",
            help="Freeze the pipeline's clock at this UTC time (replays of past days, tests). Default: "
            "settings.frozen_clock, else the real clock.",
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(frozen_clock=_frozen_clock(frozen_clock))


app.command(epilog=connect.CONNECT_EPILOG)(connect.connect)
app.command()(sync.sync)
app.command(epilog=status.STATUS_EPILOG)(status.status)
app.command(epilog=doctor.DOCTOR_EPILOG)(doctor.doctor)
app.command(epilog=disconnect.DISCONNECT_EPILOG)(disconnect.disconnect)
app.command(epilog=cost.COST_EPILOG)(cost.cost)
app.add_typer(cost.export_app, name="export")


def main() -> None:
    verbose = any(arg in ("--verbose", "-v") for arg in sys.argv[1:])
    # A scheduler's stop (systemd, Kubernetes, `timeout`) ends a command as Ctrl-C does: finally blocks run, so
    # staged answers and temporary folders go and an open write rolls back (Dagster maps SIGTERM the same way).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        Output().error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # the last resort: a bug or an unforeseen failure, said in one line
        if verbose:
            raise
        secrets = [value for key, value in os.environ.items() if key.startswith("DOOW_SECRET_")]
        Output(secrets).error(
            f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:400]} (rerun with --verbose "
            "for the trace, and report it)"
        )
        sys.exit(EXIT_FAILURE)
