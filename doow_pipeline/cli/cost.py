"""`doow-azure cost` and `doow-azure export focus`: the estimated list cost, read from the warehouse (read-only).

An estimate at public list price (Azure Retail Prices), never the invoice. A group with no costed row shows
"n/a" (JSON null, CSV empty), never 0: SQL sums an all-NULL group to NULL, and so does this output.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer

from ..config import ProjectConfig
from ..core.problems import WarehouseError
from ..usage.focus import validate_focus
from ..usage.pricing import AMBIGUOUS, ASSUMED_DEPLOYMENT_TYPE, BILLED_AS_CAPACITY, NO_METER, PRICED
from ..warehouse import queries
from ..warehouse.database import connect
from .output import EXIT_FAILURE, EXIT_OK, Output, new_table, num
from .project import clock, load_project, parse_day

DEFAULT_DAYS = 30
BASIS = (
    "estimate at public list price (Azure Retail Prices), not the invoice: no discounts, reservations, "
    "savings plans, taxes or credits"
)
STATUS_LABELS = {
    PRICED: "priced",
    ASSUMED_DEPLOYMENT_TYPE: "assumed type",
    NO_METER: "no meter",
    AMBIGUOUS: "ambiguous",
    BILLED_AS_CAPACITY: "PTU (per hour)",
}
KEY_COLUMNS = {
    "model": ("model_name", "model_version"),
    "deployment": ("resource_name", "deployment", "model_name"),
    "connection": ("connection",),
    "tag": ("tag_value",),
}
KEY_HEADERS = {
    "model_name": "model",
    "model_version": "version",
    "resource_name": "account",
    "deployment": "deployment",
    "connection": "connection",
}


def money(value: float | None) -> str:
    """A cost for people: "n/a" when unknown (never 0), cents above a cent, else four decimals."""
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:,.4f}"


def cost_line(cost: dict[str, Any] | None) -> str:
    """`status`'s line: the window's estimated list cost of one connection ("n/a" when nothing is costed)."""
    if cost is None:
        return "estimated list cost: n/a (no cost computed yet: `doow-azure sync` prices the synced days)"
    return (
        f"estimated list cost: {money(cost['estimated_cost'])} {cost['currency']} ({cost['costed_rows']:,} of "
        f"{cost['rows']:,} rows priced; an estimate at public list price, not the invoice; `doow-azure cost`)"
    )


def _range(
    ctx: typer.Context, output: Output, config: ProjectConfig, from_: str | None, to: str | None
) -> tuple[date, date]:
    last = parse_day(output, to, "--to") if to else clock(ctx, config).today() - timedelta(days=1)
    first = parse_day(output, from_, "--from") if from_ else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise output.usage_error(f"--from {first} is after --to {last}")
    return first, last


def _parse_by(output: Output, by: str) -> tuple[str, str | None]:
    if by in ("model", "deployment", "connection"):
        return by, None
    if by.startswith("tag:") and by[4:].strip():
        return "tag", by[4:].strip()
    raise output.usage_error(
        f"--by {by!r}: use model, deployment, connection or tag:<name> (an ARM tag, e.g. tag:owner)"
    )


def _open(output: Output, config: ProjectConfig) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    if not config.warehouse_path.exists():
        output.error(f"no warehouse at {config.warehouse_path} yet: run `doow-azure sync --from DATE --to DATE` first")
        raise typer.Exit(EXIT_FAILURE)
    return connect(config.warehouse_path, read_only=True, wait_seconds=10)


def _fail_reading(output: Output, config: ProjectConfig, exc: Exception) -> typer.Exit:
    detail = " ".join(str(exc).split())
    output.error(
        f"cannot read the warehouse {config.warehouse_path}: {type(exc).__name__}: {detail}. If it "
        "predates cost, run `doow-azure sync` for the days you need."
    )
    return typer.Exit(EXIT_FAILURE)


def _statuses(statuses: dict[str, int]) -> str:
    if len(statuses) == 1:
        return STATUS_LABELS.get(next(iter(statuses)), next(iter(statuses)))
    return ", ".join(f"{STATUS_LABELS.get(s, s)} {n}" for s, n in sorted(statuses.items()))


def _key_label(by: str, tag: str | None, row: dict[str, Any]) -> list[str]:
    if by == "tag":
        return [row["tag_value"] if row["tag_value"] is not None else f"(no {tag} tag)"]
    return ["-" if row[k] is None else str(row[k]) for k in KEY_COLUMNS[by]]


def _totals(groups: list[dict[str, Any]]) -> dict[str, Any]:
    known = [g["estimated_cost"] for g in groups if g["estimated_cost"] is not None]
    return {
        "rows": sum(g["rows"] for g in groups),
        "costed_rows": sum(g["costed_rows"] for g in groups),
        "input_tokens": sum(g["input_tokens"] or 0 for g in groups),
        "output_tokens": sum(g["output_tokens"] or 0 for g in groups),
        "uncosted_tokens": sum(g["uncosted_tokens"] or 0 for g in groups),
        "estimated_cost": float(sum(known)) if known else None,
    }


def _csv(groups: list[dict[str, Any]], by: str) -> str:
    keys = list(KEY_COLUMNS[by])
    fields = [
        *keys,
        "currency",
        "rows",
        "costed_rows",
        "input_tokens",
        "output_tokens",
        "input_cost",
        "output_cost",
        "estimated_cost",
        "uncosted_tokens",
        "statuses",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for g in groups:
        statuses = ";".join(f"{s}={n}" for s, n in sorted(g["statuses"].items()))
        writer.writerow(["" if g[f] is None else g[f] for f in fields[:-1]] + [statuses])
    return buffer.getvalue()


COST_EPILOG = """Examples:

  doow-azure cost --from 2026-11-01 --to 2026-11-19

  doow-azure cost --by model

  doow-azure cost --by tag:owner --csv > cost-by-owner.csv

An estimate at public list price, not the invoice (no discounts, reservations, taxes or credits).
"n/a": no row of the group could be priced (see its status, and the tokens_have_meters check).
"""


def cost(
    ctx: typer.Context,
    from_: Annotated[
        str | None, typer.Option("--from", help="First UTC day (YYYY-MM-DD). Default: 30 days before --to.")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last UTC day (YYYY-MM-DD). Default: yesterday.")] = None,
    by: Annotated[
        str,
        typer.Option("--by", help="Group by model, deployment, connection or tag:<name> (an ARM tag of the account)."),
    ] = "deployment",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (null: unknown).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout (empty estimated_cost: unknown).")] = False,
) -> None:
    """Estimated Azure OpenAI cost at public list price, per deployment, model, connection or tag.

    Tokens x the list price of the matched meter on each day (settings.deployment_types say which deployment
    type each deployment is). Not the invoice. Unknown cost shows n/a, never 0.
    """
    output = Output()
    if as_json and as_csv:
        raise output.usage_error("--json and --csv exclude each other")
    config = load_project(ctx, output)
    first, last = _range(ctx, output, config, from_, to)
    dimension, tag = _parse_by(output, by)
    try:
        with _open(output, config) as con:
            groups = queries.cost_groups(con, first, last, dimension, tag)
            prices = queries.last_price_fetch(con)
    except (WarehouseError, duckdb.Error) as exc:
        raise _fail_reading(output, config, exc) from None
    totals = _totals(groups)
    currencies = sorted({g["currency"] for g in groups if g["currency"]}) or [config.settings.currency]
    if as_csv:
        sys.stdout.write(_csv(groups, dimension))
        raise typer.Exit(EXIT_OK)
    if as_json:
        output.json(
            {
                "from": str(first),
                "to": str(last),
                "by": by,
                "basis": BASIS,
                "currency": currencies,
                "groups": groups,
                "total": totals,
                "prices": prices,
            }
        )
        raise typer.Exit(EXIT_OK)
    title = f"Estimated cost at list price, {first} .. {last} (UTC), by {by}"
    keys = [KEY_HEADERS.get(k, tag or k) for k in KEY_COLUMNS[dimension]]
    cost_header = f"est. cost ({'/'.join(currencies)})"
    table = new_table(
        *keys,
        "input tokens",
        "output tokens",
        cost_header,
        "rows priced",
        "status",
        title=title,
        right=("input tokens", "output tokens", cost_header, "rows priced"),
    )
    for g in groups:
        table.add_row(
            *_key_label(dimension, tag, g),
            num(g["input_tokens"]),
            num(g["output_tokens"]),
            money(g["estimated_cost"]),
            f"{g['costed_rows']}/{g['rows']}",
            _statuses(g["statuses"]),
        )
    table.add_row(
        *(["total"] + [""] * (len(keys) - 1)),
        num(totals["input_tokens"]),
        num(totals["output_tokens"]),
        money(totals["estimated_cost"]),
        f"{totals['costed_rows']}/{totals['rows']}",
        "",
    )
    output.table(table)
    if not groups:
        output.line(f"No usage with cost for {first} .. {last}: run `doow-azure sync --from {first} --to {last}`.")
    if totals["uncosted_tokens"]:
        output.line(
            f"{totals['uncosted_tokens']:,} token(s) have no cost (n/a: no meter, ambiguous or provisioned): "
            "see usage_cost_daily.cost_detail and the tokens_have_meters check."
        )
    if prices is not None:
        line = f"Prices: {prices['records']:,} stored record(s), last read {prices['last_ok'] or 'never'} UTC"
        if prices["last_error"]:
            line += f"; the latest read failed ({prices['last_error'][:160]}), stored prices used"
        output.line(line)
    output.line(f"An {BASIS}.")
    raise typer.Exit(EXIT_OK)


# ---- export -----------------------------------------------------------------------------------------------------
export_app = typer.Typer(no_args_is_help=True, help="Export the estimated cost (FOCUS-aligned).")


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


EXPORT_EPILOG = """Examples:

  doow-azure export focus --from 2026-11-01 --to 2026-11-30 --format parquet --output focus-2026-11.parquet

  doow-azure export focus --from 2026-11-01 --to 2026-11-30 --format csv --output -   (CSV on stdout)

FOCUS-aligned, not conformant: BilledCost and EffectiveCost are empty (they come from Cost Management, which
is never read); ListUnitPrice and ListCost are the public list price estimate (x_CostBasis).
"""


def _write_atomic(path: Path, write: Callable[[str], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@export_app.command("focus", epilog=EXPORT_EPILOG)
def export_focus(
    ctx: typer.Context,
    from_: Annotated[str, typer.Option("--from", help="First UTC day (YYYY-MM-DD), inclusive.")],
    to: Annotated[str, typer.Option("--to", help="Last UTC day (YYYY-MM-DD), inclusive.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="parquet or csv.")] = ExportFormat.PARQUET,
    output_path: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="File to write ('-': stdout, csv only). Default: focus_<from>_<to>.<format>."
        ),
    ] = None,
) -> None:
    """Export FOCUS-aligned rows of the estimated list cost (validated against the column rules first)."""
    output = Output()
    config = load_project(ctx, output)
    first, last = parse_day(output, from_, "--from"), parse_day(output, to, "--to")
    if first > last:
        raise output.usage_error(f"--from {first} is after --to {last}")
    if output_path == "-" and fmt is not ExportFormat.CSV:
        raise output.usage_error("--output - (stdout) needs --format csv")
    try:
        with _open(output, config) as con:
            frame = queries.focus_rows(con, first, last)
    except (WarehouseError, duckdb.Error) as exc:
        raise _fail_reading(output, config, exc) from None
    problems = validate_focus(frame)
    if problems:
        output.error("the FOCUS-aligned rows break their column rules, nothing written: " + "; ".join(problems))
        raise typer.Exit(EXIT_FAILURE)
    if output_path == "-":
        sys.stdout.write(frame.write_csv())
        raise typer.Exit(EXIT_OK)
    path = Path(output_path or f"focus_{first}_{last}.{fmt.value}")
    if fmt is ExportFormat.PARQUET:
        _write_atomic(path, lambda tmp: frame.write_parquet(tmp, compression="zstd"))
    else:
        _write_atomic(path, lambda tmp: frame.write_csv(tmp))
    costed = frame.filter(frame["ListCost"].is_not_null())
    total = float(costed["ListCost"].sum()) if costed.height else None
    output.line(
        f"Wrote {frame.height:,} FOCUS-aligned row(s) for {first} .. {last} to {path} ({fmt.value}); ListCost "
        f"{money(total)} over {costed.height:,} priced row(s). FOCUS-aligned, not conformant: BilledCost and "
        "EffectiveCost are empty.",
        stderr=False,
    )
    if frame.is_empty():
        output.line(
            f"note: no cost rows in {first} .. {last}; run `doow-azure sync` for these days", "yellow", stderr=True
        )
    raise typer.Exit(EXIT_OK)
