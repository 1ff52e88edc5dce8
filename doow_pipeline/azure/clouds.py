"""Endpoints per Azure cloud: authority, ARM, the batch metrics host and the token audiences."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cloud(StrEnum):
    AZURE = "AzureCloud"
    US_GOVERNMENT = "AzureUSGovernment"
    CHINA = "AzureChinaCloud"


@dataclass(frozen=True)
class CloudEndpoints:
    authority: str
    arm: str
    arm_audience: str
    metrics_template: str  # the batch metrics endpoint, with a {region} placeholder
    metrics_audience: str
    ca_cert: str | None = None
    custom: bool = False  # explicit endpoints (the emulator): MSAL must not validate the authority with Microsoft

    @classmethod
    def for_cloud(
        cls,
        cloud: str,
        *,
        authority: str | None = None,
        arm: str | None = None,
        metrics: str | None = None,
        ca_cert: str | None = None,
    ) -> CloudEndpoints:
        """The cloud's public endpoints, or explicit ones (which keep the cloud's token audiences: the emulator
        checks them as Azure does)."""
        public = PUBLIC_CLOUDS[Cloud(cloud)]
        if authority and arm and metrics:
            return cls(authority, arm, public.arm_audience, metrics, public.metrics_audience, ca_cert, custom=True)
        return public


PUBLIC_CLOUDS: dict[Cloud, CloudEndpoints] = {
    Cloud.AZURE: CloudEndpoints(
        "https://login.microsoftonline.com",
        "https://management.azure.com",
        "https://management.azure.com",
        "https://{region}.metrics.monitor.azure.com",
        "https://metrics.monitor.azure.com",
    ),
    Cloud.US_GOVERNMENT: CloudEndpoints(
        "https://login.microsoftonline.us",
        "https://management.usgovcloudapi.net",
        "https://management.usgovcloudapi.net",
        "https://{region}.metrics.monitor.azure.us",
        "https://metrics.monitor.azure.us",
    ),
    Cloud.CHINA: CloudEndpoints(
        "https://login.chinacloudapi.cn",
        "https://management.chinacloudapi.cn",
        "https://management.chinacloudapi.cn",
        "https://{region}.metrics.monitor.azure.cn",
        "https://metrics.monitor.azure.cn",
    ),
}
