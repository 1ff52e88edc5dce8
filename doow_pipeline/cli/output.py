"""The CLI's one output layer: consoles (rich on a terminal, plain wide text otherwise), tables, the
secret scrubber every text and log record passes through, and the exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core.secrets import install_log_scrubber, register, scrub

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as typer exits on Ctrl-C
SPARK = "▁▂▃▄▅▆▇█"


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with these secrets and every secret registered in this process (core.secrets) masked."""
    return scrub(text, secrets)


class Output:
    """stdout/stderr consoles for one command: rich when a TTY, plain text (no colours, no live display,
    wide lines) otherwise. Every text passes through `scrub` first."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: list[str] = [s for s in secrets if s]
        self.out = self._console(sys.stdout, stderr=False)
        self.err = self._console(sys.stderr, stderr=True)
        self.tty = self.out.is_terminal

    def add_secret(self, secret: str | None) -> None:
        if secret:
            self.secrets.append(secret)
            register([secret])

    @staticmethod
    def _console(stream: IO[str], stderr: bool) -> Console:
        tty = hasattr(stream, "isatty") and stream.isatty()
        return Console(
            stderr=stderr,
            highlight=False,
            width=None if tty else 200,
            no_color=not tty,
            force_terminal=None if tty else False,
            soft_wrap=not tty,
        )

    def scrub(self, text: object) -> str:
        return scrub_text(str(text), self.secrets)

    def line(self, text: str = "", style: str | None = None, stderr: bool = False) -> None:
        console = self.err if stderr else self.out
        console.print(Text(self.scrub(text), style=style or ""), soft_wrap=True)

    def table(self, table: Table) -> None:
        self.out.print(table)

    def json(self, payload: Any) -> None:
        sys.stdout.write(self.scrub(json.dumps(payload, default=str, indent=1)) + "\n")

    def error(self, text: str) -> None:
        self.line(f"error: {text}", "bold red", stderr=True)

    def usage_error(self, message: str) -> typer.Exit:
        self.error(message)
        return typer.Exit(EXIT_USAGE)


def new_table(*columns: str, title: str | None = None, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return table


def num(value: object) -> str:
    return "" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


def when(value: object) -> str:
    if value is None:
        return "never"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return f"{value} UTC"


def sparkline(values: list[int | None]) -> str:
    """One character per day: ▁..█ scaled to the window's maximum; a space where there is no data."""
    present = [v for v in values if v is not None]
    top = max(present) if present else 0
    chars = []
    for value in values:
        if value is None:
            chars.append(" ")
        elif top <= 0:
            chars.append(SPARK[0])
        else:
            chars.append(SPARK[min(len(SPARK) - 1, int(value / top * (len(SPARK) - 1) + 0.5))])
    return "".join(chars)


def usage_table(rows: list[dict[str, Any]], title: str) -> Table:
    numbers = ("accounts", "deployments", "rows", "input_tokens", "output_tokens", "total_tokens", "requests")
    table = new_table("connection", *numbers, title=title, right=numbers)
    for row in rows:
        table.add_row(str(row["connection"]), *(num(v) for k, v in row.items() if k != "connection"))
    return table


# ---- logging ---------------------------------------------------------------------------------------------------


class SecretScrubber(logging.Filter):
    """Replaces the configured secrets in every record's message (SDK warnings included)."""

    def __init__(self, output: Output):
        super().__init__()
        self.output = output

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.output.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


class ReportedByVerification(logging.Filter):
    """connect and doctor report a refused token themselves: azure-identity's own warning about it would say
    the same thing twice. Every other record (retries, throttling) still reaches the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("azure.identity") and ".get_token" in record.getMessage())


def configure_logging(output: Output, verbose: bool, *, verification: bool = False) -> None:
    """Warnings (and with --verbose, debug) of the product and the Azure SDK on stderr, scrubbed of secrets."""
    register(output.secrets)
    install_log_scrubber()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretScrubber(output))
    if verification:
        handler.addFilter(ReportedByVerification())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "_doow", False)]:
        root.removeHandler(existing)
    handler._doow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
