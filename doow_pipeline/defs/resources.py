"""Dagster resources: one per connected Azure scope, and the warehouse."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..azure.session import AzureSession, CloudEndpoints
from ..config import Connection, Endpoints, ProjectConfig


class AzureConnectionResource(dg.ConfigurableResource):
    """A read-only service principal (Monitoring Reader) and the scope it connects.

    The client secret is configured as an `EnvVar`, so run config and the event log only ever hold the
    variable's name.
    """

    name: str
    tenant_id: str
    client_id: str
    client_secret: str
    scope: str
    cloud: str = "AzureCloud"
    authority: str | None = None
    arm: str | None = None
    metrics: str | None = None
    ca_cert: str | None = None

    def connection(self, secret_env: str = "") -> Connection:
        return Connection(name=self.name, tenant_id=self.tenant_id, client_id=self.client_id,
                          client_secret_env=secret_env or "UNUSED", scope=self.scope, cloud=self.cloud)

    def session(self) -> AzureSession:
        explicit = (Endpoints(authority=self.authority, arm=self.arm, metrics=self.metrics, ca_cert=self.ca_cert)
                    if self.authority and self.arm and self.metrics else None)
        return AzureSession(self.tenant_id, self.client_id, self.client_secret,
                            CloudEndpoints.for_cloud(self.cloud, explicit))


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file and the landing zone beside it, plus the sync settings that shape writes."""

    path: str
    landing_dir: str
    top: int = 1000
    concurrency: int = 4
    settle_hours: int = 48

    @property
    def warehouse_path(self) -> Path:
        return Path(self.path)

    @property
    def landing_path(self) -> Path:
        return Path(self.landing_dir)


def resource_key(connection_name: str) -> str:
    return f"azure_{connection_name}"


def build_resources(config: ProjectConfig) -> dict[str, dg.ConfigurableResource]:
    endpoints = config.settings.endpoints
    explicit = endpoints.model_dump() if endpoints else {}
    resources: dict[str, dg.ConfigurableResource] = {
        resource_key(c.name): AzureConnectionResource(
            name=c.name, tenant_id=c.tenant_id, client_id=c.client_id,
            client_secret=dg.EnvVar(c.client_secret_env), scope=c.scope, cloud=c.cloud, **explicit)
        for c in config.connections
    }
    resources["warehouse"] = WarehouseResource(
        path=str(config.warehouse_path), landing_dir=str(config.landing_dir), top=config.settings.top,
        concurrency=config.settings.concurrency, settle_hours=config.settings.settle_hours)
    return resources
