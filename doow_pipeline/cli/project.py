"""What every command needs from the project: connections.yaml loaded (or a clean usage error), the clock,
one connection by name, and a day given on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import typer

from ..config import Connection, ProjectConfig, export_env_file, load_config, secrets_environment
from ..core.clock import Clock
from ..core.problems import ConfigError
from .output import Output


@dataclass
class CliState:
    """Global options, set by the app's callback."""

    frozen_clock: datetime | None = None


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


def clock(ctx: typer.Context, config: ProjectConfig | None = None) -> Clock:
    """--frozen-clock, else settings.frozen_clock, else the real clock."""
    frozen = state(ctx).frozen_clock
    if frozen is None and config is not None:
        frozen = config.settings.frozen_clock
    return Clock(frozen)


def load_project(
    ctx: typer.Context, output: Output, *, check_secrets: bool = False, export_secrets: bool = False
) -> ProjectConfig:
    try:
        config = load_config(check_secrets=check_secrets)
    except ConfigError as exc:
        raise output.usage_error(str(exc)) from None
    frozen = state(ctx).frozen_clock
    if frozen is not None:
        config.settings.frozen_clock = frozen
    if export_secrets:
        export_env_file(config)
    return config


def connection_or_exit(output: Output, config: ProjectConfig, name: str) -> Connection:
    try:
        return config.connection(name)
    except ConfigError as exc:
        raise output.usage_error(str(exc)) from None


def parse_day(output: Output, value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise output.usage_error(f"{option} {value!r} is not a date; use YYYY-MM-DD (UTC)") from None


def configured_secrets(config: ProjectConfig) -> list[str]:
    """The secret values of every configured connection (to scrub from output and logs)."""
    environ = secrets_environment(Path(config.path)) if config.path else {}
    return [value for c in config.connections if (value := environ.get(c.client_secret_env))]


def warn_if_env_readable(output: Output, config: ProjectConfig) -> None:
    """The `.env` holds every client secret: say so when group or others may read it."""
    env_file = config.env_file
    try:
        mode = env_file.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        output.line(
            f"warning: {env_file} (the client secrets) is readable by others (mode {mode & 0o777:o}); run "
            f"`chmod 600 {env_file}`",
            "yellow",
            stderr=True,
        )
