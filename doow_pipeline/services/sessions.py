"""Building an `AzureSession` for a configured connection (the cloud's endpoints or explicit ones)."""

from __future__ import annotations

import os

from ..azure.clouds import CloudEndpoints
from ..azure.session import AzureSession, RetrySettings
from ..config import Connection, Endpoints
from ..core.problems import ConfigError

# Seconds each HTTP attempt may wait to connect and to read (both), for every Azure call: lower it where a
# network drops packets silently (a hung endpoint is then reported unreachable sooner).
TIMEOUT_ENV = "DOOW_HTTP_TIMEOUT_SECONDS"


def http_timeout() -> float | None:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise ConfigError(
            TIMEOUT_ENV,
            [f"{TIMEOUT_ENV}={raw!r} must be a number of seconds between 0 and 3600; unset it for the defaults"],
        )
    return seconds


def cloud_endpoints(cloud: str, endpoints: Endpoints | None) -> CloudEndpoints:
    if endpoints is None:
        return CloudEndpoints.for_cloud(cloud)
    return CloudEndpoints.for_cloud(
        cloud, authority=endpoints.authority, arm=endpoints.arm, metrics=endpoints.metrics, ca_cert=endpoints.ca_cert
    )


def open_session(
    connection: Connection, secret: str, endpoints: Endpoints | None, retry: RetrySettings | None = None
) -> AzureSession:
    return AzureSession(
        connection.tenant_id,
        connection.client_id,
        secret,
        cloud_endpoints(connection.cloud, endpoints),
        (retry or RetrySettings()).with_timeout(http_timeout()),
    )
