"""Credentials and SDK clients for one connection, per cloud or explicit endpoints (the emulator).

Every client gets the same retry settings: azure-core's RetryPolicy honours Retry-After on 429/503
and, with `retry_on_status_codes`, the batch API's 529; retries are bounded in count and backoff.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from azure.identity import ClientSecretCredential
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.monitor.querymetrics import MetricsClient

COGNITIVE_API_VERSION = "2024-10-01"

# (authority host, ARM endpoint, ARM audience, batch metrics endpoint template, metrics audience)
CLOUD_ENDPOINTS = {
    "AzureCloud": ("https://login.microsoftonline.com", "https://management.azure.com", "https://management.azure.com",
                   "https://{region}.metrics.monitor.azure.com", "https://metrics.monitor.azure.com"),
    "AzureUSGovernment": ("https://login.microsoftonline.us", "https://management.usgovcloudapi.net",
                          "https://management.usgovcloudapi.net", "https://{region}.metrics.monitor.azure.us",
                          "https://metrics.monitor.azure.us"),
    "AzureChinaCloud": ("https://login.chinacloudapi.cn", "https://management.chinacloudapi.cn",
                        "https://management.chinacloudapi.cn", "https://{region}.metrics.monitor.azure.cn",
                        "https://metrics.monitor.azure.cn"),
}


@dataclass(frozen=True)
class CloudEndpoints:
    authority: str
    arm: str
    arm_audience: str
    metrics_template: str
    metrics_audience: str
    ca_cert: str | None = None
    custom: bool = False  # explicit endpoints (emulator): MSAL must not validate the authority with Microsoft

    @classmethod
    def for_cloud(cls, cloud: str, explicit=None) -> "CloudEndpoints":
        authority, arm, arm_audience, metrics, metrics_audience = CLOUD_ENDPOINTS[cloud]
        if explicit is None:
            return cls(authority, arm, arm_audience, metrics, metrics_audience)
        # Explicit endpoints keep the cloud's token audiences: the emulator checks them as Azure does.
        return cls(explicit.authority, explicit.arm, arm_audience, explicit.metrics, metrics_audience,
                   explicit.ca_cert, custom=True)


@dataclass(frozen=True)
class RetrySettings:
    total: int = 5
    backoff_factor: float = 0.5
    backoff_max: int = 30

    def client_kwargs(self) -> dict:
        return {"retry_total": self.total, "retry_backoff_factor": self.backoff_factor,
                "retry_backoff_max": self.backoff_max, "retry_on_status_codes": [529]}


class AzureSession:
    """One service principal against one cloud: a credential plus cached SDK clients."""

    def __init__(self, tenant_id: str, client_id: str, client_secret: str, endpoints: CloudEndpoints,
                 retry: RetrySettings | None = None):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.endpoints = endpoints
        self.retry = retry or RetrySettings()
        self._common = {"connection_verify": endpoints.ca_cert} if endpoints.ca_cert else {}
        self.credential = ClientSecretCredential(
            tenant_id, client_id, client_secret,
            authority=endpoints.authority,
            disable_instance_discovery=endpoints.custom,
            **self._common,
        )
        self._clients: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple, factory):
        with self._lock:
            if key not in self._clients:
                self._clients[key] = factory()
            return self._clients[key]

    def _arm_kwargs(self) -> dict:
        return {"base_url": self.endpoints.arm, "credential_scopes": [self.endpoints.arm_audience + "/.default"],
                **self._common, **self.retry.client_kwargs()}

    def subscriptions(self) -> SubscriptionClient:
        return self._cached(("subscriptions",), lambda: SubscriptionClient(self.credential, **self._arm_kwargs()))

    def cognitive(self, subscription_id: str) -> CognitiveServicesManagementClient:
        return self._cached(("cognitive", subscription_id), lambda: CognitiveServicesManagementClient(
            self.credential, subscription_id, api_version=COGNITIVE_API_VERSION, **self._arm_kwargs()))

    def monitor(self, subscription_id: str) -> MonitorManagementClient:
        return self._cached(("monitor", subscription_id), lambda: MonitorManagementClient(
            self.credential, subscription_id, **self._arm_kwargs()))

    def metrics(self, region: str) -> MetricsClient:
        endpoint = self.endpoints.metrics_template.format(region=region)
        return self._cached(("metrics", region), lambda: MetricsClient(
            endpoint, self.credential, audience=self.endpoints.metrics_audience,
            **self._common, **self.retry.client_kwargs()))

    def token(self, audience: str | None = None):
        """Acquires a token (ARM audience by default): the cheapest proof that the credential works."""
        return self.credential.get_token((audience or self.endpoints.arm_audience) + "/.default")

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        self.credential.close()

    def __enter__(self) -> "AzureSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
