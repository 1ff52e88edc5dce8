"""Credentials and SDK clients for one service principal: the one place Azure SDK clients are built.

Every client gets the same retry settings: azure-core's RetryPolicy honours Retry-After on 429/503 and,
with `retry_on_status_codes`, the batch API's 529; retries are bounded in count and backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.identity import ClientSecretCredential
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.monitor.querymetrics import MetricsClient

from ..core import secrets
from ..core.problems import AzureError, ProblemCode
from .clouds import CloudEndpoints
from .errors import azure_errors

COGNITIVE_API_VERSION = "2024-10-01"
_Client = TypeVar("_Client")


@dataclass(frozen=True)
class RetrySettings:
    total: int = 5
    backoff_factor: float = 0.5
    backoff_max: int = 30
    token_attempts: int = 3  # the token call, retried like the others on a 5xx or a malformed answer
    # Per attempt: azure-core's defaults (300 s each) would leave an unreachable endpoint unnoticed for long.
    connection_timeout: float = 30
    read_timeout: float = 120

    def transport_kwargs(self) -> dict[str, Any]:
        return {"connection_timeout": self.connection_timeout, "read_timeout": self.read_timeout}

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "retry_total": self.total,
            "retry_backoff_factor": self.backoff_factor,
            "retry_backoff_max": self.backoff_max,
            "retry_on_status_codes": [529],
            **self.transport_kwargs(),
        }

    def with_timeout(self, seconds: float | None) -> RetrySettings:
        """The same retries with both timeouts at `seconds` (None: unchanged)."""
        return self if seconds is None else replace(self, connection_timeout=seconds, read_timeout=seconds)


# connect and doctor answer a person waiting at a terminal: fewer, shorter retries and timeouts.
INTERACTIVE_RETRY = RetrySettings(
    total=2, backoff_factor=0.3, backoff_max=5, token_attempts=2, connection_timeout=10, read_timeout=30
)
METRICS_READ_BLOCK = 1 << 20
# Token failures worth asking again: the endpoint erred or answered garbage; a refused credential is final.
TRANSIENT_TOKEN_CODES = frozenset({ProblemCode.AZURE_ERROR, ProblemCode.MALFORMED_ANSWER, ProblemCode.THROTTLED})


class AzureSession:
    """One service principal against one cloud: a credential plus cached SDK clients."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        endpoints: CloudEndpoints,
        retry: RetrySettings | None = None,
    ):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.endpoints = endpoints
        self.retry = retry or RetrySettings()
        # Whatever an endpoint echoes back (a token endpoint repeating the request), logs and errors show ***.
        secrets.register([client_secret])
        secrets.install_log_scrubber()
        self._common: dict[str, Any] = {"connection_verify": endpoints.ca_cert} if endpoints.ca_cert else {}
        self._secret = client_secret  # kept only to build a credential with an empty token cache
        self.credential = self._new_credential()
        self._clients: dict[tuple[str, ...], Any] = {}
        self._retired: list[Any] = []  # replaced clients and their credentials, closed with the session
        self._lock = threading.Lock()

    def _new_credential(self) -> ClientSecretCredential:
        return ClientSecretCredential(
            self.tenant_id,
            self.client_id,
            self._secret,
            authority=self.endpoints.authority,
            disable_instance_discovery=self.endpoints.custom,
            retry_total=self.retry.total,
            **self._common,
            **self.retry.transport_kwargs(),
        )

    def _cached(self, key: tuple[str, ...], factory: Callable[[], _Client]) -> _Client:
        with self._lock:
            if key not in self._clients:
                self._clients[key] = factory()
            client: _Client = self._clients[key]
            return client

    def _arm_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.endpoints.arm,
            "credential_scopes": [self.endpoints.arm_audience + "/.default"],
            **self._common,
            **self.retry.client_kwargs(),
        }

    def subscriptions(self) -> SubscriptionClient:
        return self._cached(("subscriptions",), lambda: SubscriptionClient(self.credential, **self._arm_kwargs()))

    def cognitive(self, subscription_id: str) -> CognitiveServicesManagementClient:
        return self._cached(
            ("cognitive", subscription_id),
            lambda: CognitiveServicesManagementClient(
                self.credential, subscription_id, api_version=COGNITIVE_API_VERSION, **self._arm_kwargs()
            ),
        )

    def monitor(self, subscription_id: str) -> MonitorManagementClient:
        return self._cached(
            ("monitor", subscription_id),
            lambda: MonitorManagementClient(self.credential, subscription_id, **self._arm_kwargs()),
        )

    def _metrics_client(self, region: str, credential: ClientSecretCredential) -> MetricsClient:
        return MetricsClient(
            self.endpoints.metrics_template.format(region=region),
            credential,
            audience=self.endpoints.metrics_audience,
            # Batch answers run to ~10 MB: read in 1 MiB blocks, not azure-core's 4 KiB (a Python call per block).
            connection_data_block_size=METRICS_READ_BLOCK,
            **self._common,
            **self.retry.client_kwargs(),
        )

    def metrics(self, region: str) -> MetricsClient:
        return self._cached(("metrics", region), lambda: self._metrics_client(region, self.credential))

    def renew_metrics(self, region: str) -> MetricsClient:
        """Replaces the region's batch client with one that asks Entra ID for a new token: a new credential (its
        MSAL cache is empty) behind a new client (its bearer policy holds no token), so a refused call is asked
        again with a token never sent before, and later calls keep the new token."""
        credential = self._new_credential()
        client = self._metrics_client(region, credential)
        with self._lock:
            # The old client stays open until the session closes: other threads may be using it.
            self._retired.append(self._clients.get(("metrics", region)))
            self._retired.append(credential)
            self._clients[("metrics", region)] = client
        return client

    def token(self, audience: str | None = None) -> AccessToken:
        """Acquires a token (ARM audience by default): the cheapest proof that the credential works.
        Raises AzureError (refused secret, unknown tenant, unreachable authority, ...)."""
        scope = (audience or self.endpoints.arm_audience) + "/.default"
        for attempt in range(1, self.retry.token_attempts + 1):
            try:
                with azure_errors(endpoint=self.endpoints.authority):
                    return self.credential.get_token(scope)
            except AzureError as exc:
                if exc.problem.code not in TRANSIENT_TOKEN_CODES or attempt == self.retry.token_attempts:
                    raise
            time.sleep(min(self.retry.backoff_factor * 2 ** (attempt - 1), self.retry.backoff_max))
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for client in [*self._clients.values(), *(r for r in self._retired if r is not None)]:
                client.close()
            self._clients.clear()
            self._retired.clear()
        self.credential.close()

    def __enter__(self) -> AzureSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
