"""Dagster resources: one per connection (credentials + scope + endpoints), the warehouse, the sync settings."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..azure.session import AzureSession
from ..config import Connection, Endpoints, ProjectConfig, Settings
from ..core.clock import Clock, parse_utc
from ..core.landing_location import LandingLocation
from ..services.sessions import open_session
from ..warehouse.landing import Landing


class AzureConnectionResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """One connected scope: the service principal (Monitoring Reader) and the scope it connects.

    The client secret is configured as an `EnvVar`, so run config and the event log only ever hold the
    variable's name.
    """

    name: str
    tenant_id: str
    client_id: str
    client_secret: str
    client_secret_env: str
    scope: str
    cloud: str = "AzureCloud"
    authority: str | None = None
    arm: str | None = None
    metrics: str | None = None
    ca_cert: str | None = None

    @classmethod
    def for_connection(cls, connection: Connection, endpoints: Endpoints | None) -> AzureConnectionResource:
        # the Retail Prices endpoint is no connection's: the cost settings carry it
        explicit = endpoints.model_dump(exclude={"prices"}) if endpoints else {}
        return cls(
            name=connection.name,
            tenant_id=connection.tenant_id,
            client_id=connection.client_id,
            client_secret=dg.EnvVar(connection.client_secret_env),
            client_secret_env=connection.client_secret_env,
            scope=connection.scope,
            cloud=connection.cloud,
            **explicit,
        )

    def connection(self) -> Connection:
        # model_validate (what the constructor runs): the str cloud is checked against the Literal there
        return Connection.model_validate(
            {
                "name": self.name,
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "client_secret_env": self.client_secret_env,
                "scope": self.scope,
                "cloud": self.cloud,
            }
        )

    def endpoints(self) -> Endpoints | None:
        if self.authority and self.arm and self.metrics:
            return Endpoints(authority=self.authority, arm=self.arm, metrics=self.metrics, ca_cert=self.ca_cert)
        return None

    def session(self) -> AzureSession:
        return open_session(self.connection(), self.client_secret, self.endpoints())


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The DuckDB file, the landing zone (a local folder, or an az:// container) and the read-only analyst copy
    every write publishes. No credential here: the landing store gets it from azure-identity or the environment,
    inside the process that uses it."""

    path: str
    landing: str  # an absolute folder, or az://<container>/<prefix>
    landing_account: str | None = None
    landing_endpoint: str | None = None
    analyst_copy: str | None = None  # None: not published (settings.analyst_copy 'off')

    @classmethod
    def from_config(cls, config: ProjectConfig) -> WarehouseResource:
        location = config.landing_location
        return cls(
            path=str(config.warehouse_path),
            landing=str(location.local_root) if location.local_root is not None else location.url,
            landing_account=location.account,
            landing_endpoint=location.endpoint,
            analyst_copy=str(config.analyst_copy_path) if config.analyst_copy_path else None,
        )

    @property
    def warehouse_path(self) -> Path:
        return Path(self.path)

    @property
    def landing_location(self) -> LandingLocation:
        return LandingLocation.parse(self.landing, self.landing_account, self.landing_endpoint)

    def landing_zone(self) -> Landing:
        return Landing(self.landing_location)

    @property
    def analyst_copy_path(self) -> Path | None:
        return Path(self.analyst_copy) if self.analyst_copy else None


class SyncSettingsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """How syncs query Azure and judge days (settings in connections.yaml)."""

    top: int = 1000
    concurrency: int = 4
    settle_hours: int = 48
    definitions_max_age_days: int = 7
    frozen_clock: str | None = None  # ISO 8601; unset: the real clock

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncSettingsResource:
        return cls(
            top=settings.top,
            concurrency=settings.concurrency,
            settle_hours=settings.settle_hours,
            definitions_max_age_days=settings.definitions_max_age_days,
            frozen_clock=settings.frozen_clock.isoformat() if settings.frozen_clock else None,
        )

    def settings(self) -> Settings:
        # model_validate (what the constructor runs): frozen_clock is the ISO text, parsed by pydantic there
        return Settings.model_validate(
            {
                "top": self.top,
                "concurrency": self.concurrency,
                "settle_hours": self.settle_hours,
                "definitions_max_age_days": self.definitions_max_age_days,
                "frozen_clock": self.frozen_clock,
            }
        )

    @property
    def clock(self) -> Clock:
        return Clock(parse_utc(self.frozen_clock) if self.frozen_clock else None)


def shared_resources(config: ProjectConfig) -> dict[str, dg.ConfigurableResource]:  # type: ignore[type-arg]
    return {
        "warehouse": WarehouseResource.from_config(config),
        "sync_settings": SyncSettingsResource.from_settings(config.settings),
    }
