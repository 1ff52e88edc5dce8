"""Building an `AzureSession` for a configured connection (the cloud's endpoints or explicit ones)."""

from __future__ import annotations

from ..azure.clouds import CloudEndpoints
from ..azure.session import AzureSession, RetrySettings
from ..config import Connection, Endpoints


def cloud_endpoints(cloud: str, endpoints: Endpoints | None) -> CloudEndpoints:
    if endpoints is None:
        return CloudEndpoints.for_cloud(cloud)
    return CloudEndpoints.for_cloud(cloud, authority=endpoints.authority, arm=endpoints.arm,
                                    metrics=endpoints.metrics, ca_cert=endpoints.ca_cert)


def open_session(connection: Connection, secret: str, endpoints: Endpoints | None,
                 retry: RetrySettings | None = None) -> AzureSession:
    return AzureSession(connection.tenant_id, connection.client_id, secret,
                        cloud_endpoints(connection.cloud, endpoints), retry)
