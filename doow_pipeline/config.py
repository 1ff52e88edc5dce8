"""connections.yaml: the connected Azure scopes and the pipeline settings, validated at load.

Every problem in the file is collected and reported once, naming the file, the field and the fix,
so a data engineer fixes the whole file in one pass. Secrets never live here: a connection names the
environment variable that holds its client secret (kept by `doow-azure connect` in a 0600 `.env`).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .core.clock import Clock, as_utc
from .core.deployments import DEPLOYMENT_TYPES, unknown_deployment_types
from .core.landing_location import LandingLocation, LandingLocationError
from .core.problems import ConfigError
from .core.scope import Scope, is_guid, normalise_scope, parse_scope

DEFAULT_CONFIG_PATH = "connections.yaml"
CONNECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CLOUDS = ("AzureCloud", "AzureUSGovernment", "AzureChinaCloud")


def secret_env_name(connection: str) -> str:
    """The environment variable holding a connection's client secret: DOOW_SECRET_<NAME>."""
    return f"DOOW_SECRET_{connection.upper()}"


class Endpoints(BaseModel):
    """Explicit endpoints, e.g. the Azure emulator's ready line pasted as is."""

    model_config = ConfigDict(extra="forbid")
    authority: str
    arm: str
    metrics: str = Field(description="batch metrics endpoint template containing {region}")
    prices: str | None = Field(default=None, description="the Retail Prices API's base URL (the emulator's)")
    ca_cert: str | None = None

    @field_validator("authority", "arm", "metrics", "prices")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError(f"{value!r} must be an https:// URL (Azure SDKs refuse bearer tokens over http)")
        return value.rstrip("/")

    @field_validator("metrics")
    @classmethod
    def _region_placeholder(cls, value: str) -> str:
        if "{region}" not in value:
            raise ValueError(f"{value!r} must contain the {{region}} placeholder")
        return value


class DeploymentTypeSettings(BaseModel):
    """Deployment types for cost: Azure Monitor does not report them and deployment configuration is never
    read. Keys are "account/deployment" or a bare "deployment" (any account), case-insensitive."""

    model_config = ConfigDict(extra="forbid")
    default: str = "GlobalStandard"
    overrides: dict[str, str] = Field(default_factory=dict)
    provisioned: list[str] = Field(
        default_factory=list,
        description="PTU deployments: billed per hour, not per token (their token cost stays NULL)",
    )

    @model_validator(mode="after")
    def _known_types(self) -> DeploymentTypeSettings:
        unknown = unknown_deployment_types([self.default, *self.overrides.values()])
        if unknown:
            raise ValueError(f"unknown deployment types {unknown}; use {sorted(DEPLOYMENT_TYPES)}")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warehouse: str = "data/doow.duckdb"
    analyst_copy: str | None = Field(
        default=None,
        min_length=1,
        description="where every write publishes a read-only copy of the warehouse for BI tools and notebooks "
        "(relative paths are relative to connections.yaml); unset: <warehouse name>.analyst.duckdb beside the "
        "warehouse; 'off': not published",
    )
    start_date: date = date(2026, 1, 1)
    resync_days: int = Field(default=3, ge=1, le=93)
    settle_hours: int = Field(default=48, ge=0, le=24 * 93)
    top: int = Field(default=1000, ge=1, le=2_147_483_647)
    concurrency: int = Field(default=4, ge=1, le=64)
    definitions_max_age_days: int = Field(
        default=7,
        ge=0,
        le=365,
        description="each account's metricDefinitions are kept in the landing zone and read again after at most "
        "this many days (spread per account over the last half); 0: read on every sync",
    )
    step_retries: int = Field(default=2, ge=0, le=10)
    step_retry_delay_seconds: int = Field(default=30, ge=0, le=3600)
    # Anomaly checks on usage_daily (usage/anomalies.py): k, the trailing window, and the days of use that make
    # a baseline "steady".
    anomaly_factor: float = Field(default=3.0, gt=1.0, le=1000.0)
    anomaly_window_days: int = Field(default=14, ge=2, le=93)
    anomaly_min_days: int = Field(default=7, ge=1, le=93)
    endpoints: Endpoints | None = None
    # ---- the landing zone (README "Landing zone on Azure Blob Storage")
    landing: str | None = Field(
        default=None,
        description="where raw points land: a folder or file:// URL (default: `landing/` beside the warehouse), "
        "or az://<container>/<prefix> on Azure Blob Storage",
    )
    landing_account: str | None = Field(default=None, description="the storage account of an az:// landing zone")
    landing_endpoint: str | None = Field(
        default=None,
        description="the blob service endpoint, when not https://<account>.blob.core.windows.net "
        "(sovereign clouds, private endpoints, Azurite)",
    )
    # ---- cost and ownership (estimates at public list price; see README "Cost")
    owner_tag: str = Field(default="owner", min_length=1, description="the ARM tag naming an account's owner")
    cost_centre_tag: str = Field(default="cost-center", min_length=1, description="the ARM tag naming its cost centre")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="currency of the Retail Prices read")
    deployment_types: DeploymentTypeSettings = Field(default_factory=DeploymentTypeSettings)
    deployment_models: dict[str, str] = Field(
        default_factory=dict,
        description="model name per 'account/deployment' (or bare deployment) whose metrics "
        "name none (accounts emitting only the Azure OpenAI metrics family)",
    )
    prices_urls: dict[Literal["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"], str] = Field(
        default_factory=dict,
        description="Retail Prices API base URL per cloud, overriding the public one "
        "(none is published for AzureChinaCloud)",
    )
    prices_max_age_days: int = Field(default=7, ge=1, le=365, description="stored prices older than this: a WARN check")
    prices_retries: int = Field(default=4, ge=0, le=10, description="retries of a Retail Prices API call (429, 5xx)")
    frozen_clock: datetime | None = Field(
        default=None,
        description="Freeze the pipeline's clock at this UTC instant: for replays of a past day, the tests "
        "and the emulator's frozen clock. Unset (the default): the real clock.",
    )

    @field_validator("prices_urls")
    @classmethod
    def _prices_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for cloud, url in value.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{cloud}: {url!r} must be an absolute http(s) URL of the Retail Prices API")
        return {cloud: url.rstrip("/") for cloud, url in value.items()}

    @field_validator("frozen_clock")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    @model_validator(mode="after")
    def _landing(self) -> Settings:
        if self.landing is None and (self.landing_account or self.landing_endpoint):
            raise ValueError(
                "landing_account/landing_endpoint are set but settings.landing is not; set "
                "landing: az://<container>/<prefix>, or remove them for the local default"
            )
        if self.landing is not None:
            try:
                LandingLocation.parse(self.landing, self.landing_account, self.landing_endpoint, base=Path("/"))
            except LandingLocationError as exc:
                raise ValueError(f"landing: {exc}") from None
        return self

    @model_validator(mode="after")
    def _anomaly_days(self) -> Settings:
        if self.anomaly_min_days > self.anomaly_window_days:
            raise ValueError(
                f"anomaly_min_days ({self.anomaly_min_days}) must not exceed anomaly_window_days "
                f"({self.anomaly_window_days}): a baseline cannot hold more days than its window"
            )
        return self

    @property
    def clock(self) -> Clock:
        return Clock(self.frozen_clock)


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    tenant_id: str
    client_id: str
    client_secret_env: str
    scope: str
    cloud: Literal["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"] = "AzureCloud"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CONNECTION_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} must be lower-case letters, digits and underscores, starting with a letter "
                "(it becomes part of Dagster asset keys)"
            )
        return value

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not is_guid(value):
            raise ValueError(
                f"{value!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); copy it from the app "
                "registration's Overview page"
            )
        return value.lower()

    @field_validator("client_secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_VAR_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an environment variable name; name the variable that holds the "
                "secret (for example DOOW_SECRET_PROD), never the secret itself"
            )
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        parse_scope(value)
        return normalise_scope(value)

    @property
    def parsed_scope(self) -> Scope:
        return parse_scope(self.scope)


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connections: list[Connection] = Field(default_factory=list)
    settings: Settings = Field(default_factory=Settings)
    path: str | None = None

    def connection(self, name: str) -> Connection:
        for connection in self.connections:
            if connection.name == name:
                return connection
        known = ", ".join(c.name for c in self.connections) or "none"
        raise ConfigError(self.path or DEFAULT_CONFIG_PATH, [f"no connection named {name!r}; known: {known}"])

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    @property
    def warehouse_path(self) -> Path:
        path = Path(self.settings.warehouse)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def landing_location(self) -> LandingLocation:
        """Raw metric points land here as Parquet, outside DuckDB, so Azure calls never hold the database: the
        folder `landing/` beside the warehouse unless settings.landing names another folder or a blob container."""
        settings = self.settings
        if settings.landing is None:
            return LandingLocation.parse(self.warehouse_path.parent / "landing")
        return LandingLocation.parse(
            settings.landing, settings.landing_account, settings.landing_endpoint, self.base_dir
        )

    @property
    def analyst_copy_path(self) -> Path | None:
        """The read-only analyst copy the writers publish (README "Analysts and BI tools"); None when 'off'."""
        setting = self.settings.analyst_copy
        if setting is None:
            warehouse = self.warehouse_path
            return warehouse.with_name(f"{warehouse.stem}.analyst{warehouse.suffix or '.duckdb'}")
        if setting.strip().lower() == "off":
            return None
        path = Path(setting)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def landing_dir(self) -> Path:
        """The local landing folder (a blob landing zone has none: ConfigError)."""
        root = self.landing_location.local_root
        if root is None:
            raise ConfigError(
                self.path or DEFAULT_CONFIG_PATH,
                [f"settings.landing: {self.landing_location} is not a local folder"],
            )
        return root

    @property
    def env_file(self) -> Path:
        return self.base_dir / ".env"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("DOOW_CONNECTIONS") or DEFAULT_CONFIG_PATH)


def _field_name(loc: tuple[str | int, ...], raw: dict[str, Any]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1] = f"{parts[-1]}[{part}]"
            if loc[:i] == ("connections",):
                name = (raw.get("connections") or [{}])[part]
                if isinstance(name, dict) and name.get("name"):
                    parts[-1] += f" ({name['name']})"
        else:
            parts.append(str(part))
    return ".".join(parts)


def _pydantic_problems(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    problems = []
    for item in error.errors():
        field = _field_name(tuple(item["loc"]), raw)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "literal_error" and field.endswith("cloud"):
            message = f"unknown cloud {item.get('input')!r}; use one of {', '.join(CLOUDS)}"
        problems.append(f"{field}: {message}")
    return problems


def _semantic_problems(config: ProjectConfig, environ: Mapping[str, str], check_secrets: bool) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for i, connection in enumerate(config.connections):
        if connection.name in seen:
            problems.append(
                f"connections[{i}].name: duplicate name {connection.name!r} (also connections"
                f"[{seen[connection.name]}]); give each connection a unique name"
            )
        seen.setdefault(connection.name, i)
        if check_secrets and not environ.get(connection.client_secret_env):
            problems.append(
                f"connections[{i}] ({connection.name}).client_secret_env: environment variable "
                f"{connection.client_secret_env} is unset or empty; put the client secret in it (for example in "
                f"{config.env_file}, which `doow-azure connect` writes) or reconnect with `doow-azure connect`"
            )
    analyst_copy = config.analyst_copy_path
    if analyst_copy is not None and analyst_copy.resolve() == config.warehouse_path.resolve():
        problems.append(
            f"settings.analyst_copy: {config.settings.analyst_copy!r} is the warehouse itself; name another file "
            "(for example data/doow.analyst.duckdb), or 'off'"
        )
    ca_cert = config.settings.endpoints.ca_cert if config.settings.endpoints else None
    if ca_cert and not Path(ca_cert).is_file():
        problems.append(
            f"settings.endpoints.ca_cert: file {ca_cert} does not exist; paste the emulator's current "
            "ready line (its CA is regenerated at each start)"
        )
    return problems


def read_env_file(env_file: Path) -> dict[str, str]:
    """The entries of a `.env` file; ConfigError naming the file when it cannot be read as UTF-8 text."""
    if not env_file.exists():
        return {}
    if not env_file.is_file():
        raise ConfigError(env_file, ["is not a file; it must be the file holding the client secrets (or absent)"])
    try:
        text = env_file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            env_file,
            [
                f"is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 or "
                "reconnect the connections with `doow-azure connect`"
            ],
        ) from None
    except OSError as exc:
        raise ConfigError(env_file, [f"cannot be read ({exc.strerror}); check its owner and mode (0600)"]) from None
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def secrets_environment(config_file: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment overlaid on the `.env` beside the config (the process environment wins)."""
    env_file = config_file.resolve().parent / ".env"
    values = read_env_file(env_file)
    values.update(environ if environ is not None else os.environ)
    return values


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None, check_secrets: bool = True
) -> ProjectConfig:
    """Loads and validates connections.yaml; raises ConfigError listing every problem."""
    file = config_path(path)
    if not file.exists():
        raise ConfigError(
            file,
            [
                f"file not found; create it (see README, 'Connecting a real Azure scope') or set "
                f"DOOW_CONNECTIONS to its path (current directory: {Path.cwd()})"
            ],
        )
    if not file.is_file():
        raise ConfigError(file, ["is not a file; point DOOW_CONNECTIONS at the connections.yaml file itself"])
    try:
        text = file.read_text(encoding="utf-8")
        if not text.strip():
            raise ConfigError(
                file,
                ["is empty; add a connection with `doow-azure connect` (see README, 'Connecting a real Azure scope')"],
            )
        raw = yaml.safe_load(text) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(file, [f"is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError(file, [f"cannot be read ({exc.strerror}); check its owner and mode"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(file, ["the top level must be a mapping with 'connections' and 'settings'"])
    try:
        config = ProjectConfig.model_validate({**raw, "path": str(file)})
    except ValidationError as exc:
        raise ConfigError(file, _pydantic_problems(exc, raw)) from None
    environ = secrets_environment(file, environ)
    problems = _semantic_problems(config, environ, check_secrets)
    if problems:
        raise ConfigError(file, problems)
    return config


def export_env_file(config: ProjectConfig) -> None:
    """Puts the `.env` secrets into this process's environment (without overriding it), where Dagster's
    `EnvVar` reads them at run time."""
    for key, value in read_env_file(config.env_file).items():
        os.environ.setdefault(key, value)
