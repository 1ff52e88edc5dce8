"""The emulator's request handling, independent of sockets: routing, auth, RBAC, throttling, faults,
endpoint logic, the request log and the spec-validation hook.

Every endpoint answers with Azure's paths, status codes, headers and JSON shapes (Microsoft's Azure Monitor
and ARM REST API documentation); behaviour the documentation does not pin down is in quirks.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, unquote

from . import arm
from .auth import (
    ARM_AUDIENCES,
    METRICS_AUDIENCES,
    AuthError,
    TokenError,
    TokenService,
    check_bearer,
    object_id,
    openid_configuration,
    unknown_tenant,
)
from .faults import FaultRegistry, FaultSpecError
from .metrics import (
    NAMESPACE_LOWER,
    JsonDoc,
    MetricsEngine,
    MetricsRequest,
    account_metrics,
    effective_filter,
    make_window,
    resolve_metrics,
    resolve_namespace_metrics,
    trimmed_start,
)
from .prices import PricesConfig, RetailPricesAPI
from .query import (
    QueryError,
    parse_aggregations,
    parse_batch_times,
    parse_bool,
    parse_filter,
    parse_interval,
    parse_metric_names,
    parse_orderby,
    parse_timespan,
    parse_top,
)
from .quirks import Quirks
from .rbac import (
    authorization_failed,
    can_read_arm,
    can_read_monitoring,
    covers,
    has_subscription_reader,
    touches_subscription,
)
from .scenario import ACCOUNT_TYPE, Principal, Scenario
from .throttle import Throttler
from .timeutil import format_timespan_dotnet, format_ts_ms, parse_datetime, utc_now

VALIDATED_KINDS = {
    "subscriptions": "subscriptions",
    "accounts": "accounts_list",
    "account": "account",
    "definitions": "metric_definitions",
    "metrics": "metrics",
    "batch": "batch",
    "namespaces": "metric_namespaces",
    "deployments": "deployments_list",
}
# metricNamespaces api-versions in the specs (2017-12-01-preview; 2024-02-01 has GetMetricNamespaces.json too).
METRIC_NAMESPACES_API_VERSIONS = ("2017-12-01-preview", "2024-02-01")
REDACTED = "***REDACTED***"
_SENSITIVE_KEY = re.compile(r"secret|token|password|assertion|signature|sig$|^code$|key", re.IGNORECASE)
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview|-beta|-privatepreview)?$", re.IGNORECASE)


@dataclass
class Request:
    method: str
    path: str  # '//' collapsed, no query string
    query_string: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client: str
    base_url: str  # https://host:port as the client addressed us

    def __post_init__(self):
        self.pairs = parse_qsl(self.query_string, keep_blank_values=True)
        self.params: dict[str, str] = {}
        for key, value in self.pairs:
            self.params[key.lower()] = value
        self.segments = [s for s in self.path.split("/") if s]
        self.lower = [s.lower() for s in self.segments]

    def param(self, *names: str) -> str | None:
        for name in names:
            if name.lower() in self.params:
                return self.params[name.lower()]
        return None


@dataclass
class Response:
    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    validate_kind: str | None = None
    reset: bool = False
    truncate: bool = False  # the connection closes after half the body (a fault)


@dataclass
class Context:
    """What the log records about a request, filled in while it is handled."""

    kind: str = "unknown"
    principal: str | None = None
    tenant: str | None = None
    forbidden: bool = False
    resource_count: int | None = None
    region: str | None = None
    fault: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Reply(Exception):
    """Raised by endpoint code to answer early (errors)."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def _json_error_code(body) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            return inner.get("code")
        if isinstance(inner, str):
            return inner
        return body.get("code")
    return None


FAULT_TEXTS = {
    400: ("BadRequest", "The request is invalid."),
    401: ("ExpiredAuthenticationToken", "The access token has expired."),
    403: ("AuthorizationFailed", "The client does not have authorization to perform this action."),
    404: ("NotFound", "The requested resource was not found."),
    408: ("RequestTimeout", "The request timed out."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - "
        "'Read'. For more information, see - https://aka.ms/msdn-throttling",
    ),
    500: ("InternalServerError", "Detected Internal Error."),
    502: (
        "BadGateway",
        "The gateway did not receive a response from 'Microsoft.Insights' within the specified time period.",
    ),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: (
        "GatewayTimeout",
        "The gateway did not receive a response from 'Microsoft.Insights' within the specified time period.",
    ),
    529: ("TooManyRequests", "The metrics backend is throttling requests. Please retry with exponential backoff."),
}


class EmulatorApp:
    def __init__(self, scenario: Scenario, quirks: Quirks | None = None, validator=None):
        self.scenario = scenario
        self.quirks = quirks or Quirks()
        self.tokens = TokenService(scenario, self.quirks.token_lifetime_s)
        self.throttler = Throttler(scenario.throttle)
        self.faults = FaultRegistry(scenario.seed)
        self.engine = MetricsEngine(scenario, self.quirks)
        self.prices = RetailPricesAPI(PricesConfig.for_scenario(scenario.source), self.throttler)
        self.validator = validator
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.seq = 0
        self.violations: list[dict] = []
        self.pending_validations = 0
        self.validation_cv = threading.Condition()
        self.frozen_now: datetime | None = scenario.now
        self.started = time.monotonic()
        self.secrets = sorted({p.secret for p in scenario.principals.values() if p.secret}, key=len, reverse=True)

    # ---- clock --------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.frozen_now or utc_now()

    # ---- entry point ----------------------------------------------------------------------------------------
    def handle(self, req: Request, ctx: Context) -> Response:
        route = self.route(req, ctx)
        fault = self.faults.pick(ctx.kind, req.method, req.path, req.query_string)
        if fault is not None:
            ctx.fault = fault.index
            if fault.action == "reset":
                return Response(0, reset=True)
            if fault.action == "delay":
                time.sleep(fault.delay)
        if self.scenario.latency_ms > 0:
            time.sleep(self.scenario.latency_ms / 1000.0)
        if fault is not None and fault.action == "status":
            return self.fault_response(fault, ctx)
        try:
            response = route()
        except Reply as reply:
            response = reply.response
        except QueryError as exc:  # not caught by an endpoint: ARM flat shape
            response = Response(exc.status, {"code": exc.code, "message": exc.message})
        for key, value in ctx.headers.items():
            response.headers.setdefault(key, value)
        response.truncate = fault is not None and fault.action == "truncate"
        return response

    def fault_response(self, fault, ctx: Context) -> Response:
        status = fault.status
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(
                int(fault.retry_after) if float(fault.retry_after).is_integer() else fault.retry_after
            )
        if fault.body_text is not None:
            body = fault.body_text.encode("utf-8")
        elif fault.body is not None:
            body = fault.body
        elif ctx.kind in ("token", "openid"):
            body = {
                "error": "temporarily_unavailable" if status >= 500 else "invalid_request",
                "error_description": "AADSTS90033: A transient error has occurred. Please try again.",
                "error_codes": [90033],
            }
        else:
            code, message = FAULT_TEXTS.get(status, ("Error", f"Injected failure with status {status}."))
            body = arm.error(code, message)
        if status == 401 and ctx.kind not in ("token", "openid"):
            headers["WWW-Authenticate"] = self._www_authenticate(
                ctx.tenant or "common", "The access token has expired."
            )
        if status >= 400 and ctx.kind not in ("token", "openid"):
            headers["x-ms-error-code"] = _json_error_code(body) or "Error"
        validate = "error" if status >= 400 and ctx.kind not in ("token", "openid") and isinstance(body, dict) else None
        return Response(status, body, headers, validate_kind=validate)

    # ---- routing --------------------------------------------------------------------------------------------
    def route(self, req: Request, ctx: Context):
        seg, low, method = req.segments, req.lower, req.method
        n = len(seg)
        if method in ("GET", "HEAD"):
            if n == 4 and low[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                ctx.kind = "openid"
                return lambda: self.openid(req, seg[0])
            if n == 3 and low[1:] == [".well-known", "openid-configuration"]:
                ctx.kind = "openid"
                return lambda: self.openid(req, seg[0])
            if n >= 3 and low[:3] == ["common", "discovery", "instance"]:
                ctx.kind = "openid"
                return lambda: self.instance_discovery(req)
            if low == ["api", "retail", "prices"]:  # the public Retail Prices API (prices.py), anonymous
                ctx.kind = "prices"
                return lambda: Response(
                    *self.prices.answer(req.params, req.pairs, self.base_url_for(req), req.path, req.client, self.now())
                )
            if n == 2 and low == ["metadata", "endpoints"]:
                ctx.kind = "metadata"
                return lambda: self.cloud_metadata(req)
        if method == "POST":
            if (n == 4 and low[1:] == ["oauth2", "v2.0", "token"]) or (n == 3 and low[1:] == ["oauth2", "token"]):
                ctx.kind = "token"
                return lambda: self.token(req, seg[0], ctx)
            if (n == 4 and low[1] == "subscriptions" and low[3] == "metrics:getbatch") or (
                n == 3 and low[0] == "subscriptions" and low[2] == "metrics:getbatch"
            ):
                ctx.resource_count = _count_resource_ids(req.body)
            if n == 4 and low[1] == "subscriptions" and low[3] == "metrics:getbatch":
                ctx.kind, ctx.region = "batch", low[0]
                return lambda: self.batch(req, ctx, seg[2], low[0])
            if n == 3 and low[0] == "subscriptions" and low[2] == "metrics:getbatch":
                ctx.kind = "batch"
                ctx.region = self._host_region(req)
                return lambda: self.batch(req, ctx, seg[1], ctx.region)
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            ctx.kind, ctx.forbidden = "write", True
            return lambda: self.write(req, ctx)
        if method not in ("GET", "HEAD"):
            return lambda: self.not_allowed(req, ctx)
        if n >= 1 and low[0] == "subscriptions":
            return self.route_arm(req, ctx)
        return lambda: self.not_served(req, ctx)

    def route_arm(self, req: Request, ctx: Context):
        seg, low = req.segments, req.lower
        n = len(seg)
        if n == 1:
            ctx.kind = "subscriptions"
            return lambda: self.list_subscriptions(req, ctx)
        sub = seg[1]
        if n == 2:
            ctx.kind = "subscription"
            return lambda: self.get_subscription(req, ctx, sub)
        if n in (3, 4) and low[2] == "resourcegroups":
            ctx.kind = "resource_groups"
            return lambda: self.resource_groups(req, ctx, sub, seg[3] if n == 4 else None)
        if n == 5 and low[2:5] == ["providers", "microsoft.cognitiveservices", "accounts"]:
            ctx.kind = "accounts"
            return lambda: self.list_accounts(req, ctx, sub, None)
        if n >= 7 and low[2] == "resourcegroups" and low[4] == "providers":
            rg = seg[3]
            if low[5] == "microsoft.cognitiveservices" and low[6] == "accounts":
                if n == 7:
                    ctx.kind = "accounts"
                    return lambda: self.list_accounts(req, ctx, sub, rg)
                name = seg[7]
                if n == 8:
                    ctx.kind = "account"
                    return lambda: self.get_account(req, ctx, sub, rg, name)
                if n in (9, 10) and low[8] == "deployments":
                    ctx.kind = "deployments"
                    return lambda: self.deployments(req, ctx, sub, rg, name, seg[9] if n == 10 else None)
            # {resourceId}/providers/Microsoft.Insights/{metrics|metricDefinitions|metricNamespaces} on any resource
            if (
                n >= 11
                and low[-3:-1] == ["providers", "microsoft.insights"]
                and low[-1] in ("metrics", "metricdefinitions", "metricnamespaces")
            ):
                ctx.kind = {"metrics": "metrics", "metricdefinitions": "definitions", "metricnamespaces": "namespaces"}[
                    low[-1]
                ]
                resource_path = "/" + "/".join(seg[:-3])
                return lambda: self.monitor_read(req, ctx, sub, rg, resource_path)
        return lambda: self.not_served(req, ctx)

    @staticmethod
    def _host_region(req: Request) -> str | None:
        host = req.headers.get("host", "").split(":")[0].strip("[]").lower()
        first = host.split(".")[0] if host else ""
        if not first or first in ("localhost", "127", "::1") or first.isdigit():
            return None
        return first

    # ---- helpers --------------------------------------------------------------------------------------------
    def _www_authenticate(self, tenant: str, description: str) -> str:
        description = description.replace('"', "'")
        return (
            f'Bearer authorization_uri="{self.base_url}/{tenant}", error="invalid_token", '
            f'error_description="{description}"'
        )

    base_url = "https://127.0.0.1"

    def _auth(self, req: Request, ctx: Context, audiences: tuple[str, ...], wrap: bool = True):
        try:
            claims = check_bearer(self.tokens, req.headers.get("authorization"), audiences, self.now())
        except AuthError as exc:
            headers = {
                "WWW-Authenticate": self._www_authenticate(exc.tenant or "common", exc.message),
                "x-ms-failure-cause": "gateway",
            }
            raise Reply(Response(401, arm.error(exc.code, exc.message), headers, validate_kind="error")) from exc
        ctx.tenant = claims.tenant_id
        ctx.principal = claims.client_id
        principal = self.scenario.principals.get(claims.client_id.lower())
        if principal is None:
            raise Reply(
                Response(
                    401,
                    arm.error("InvalidAuthenticationToken", "The access token is invalid."),
                    {"WWW-Authenticate": self._www_authenticate(claims.tenant_id, "invalid token")},
                    validate_kind="error",
                )
            )
        return claims, principal

    def _err(self, status: int, body: dict, headers: dict | None = None) -> Reply:
        headers = dict(headers or {})
        code = _json_error_code(body)
        if code:
            headers.setdefault("x-ms-error-code", code)
        return Reply(Response(status, body, headers, validate_kind="error"))

    def _rp_error(self, exc: QueryError) -> Reply:
        """A 400 from the metrics RP on the per-resource ARM API: flat (default) or wrapped."""
        if self.quirks.arm_rp_errors == "wrapped":
            body = {
                "error": {
                    "additionalInfo": [{"type": "string", "info": f"TraceId={uuid.uuid4().hex}"}],
                    "code": exc.code,
                    "message": exc.message,
                }
            }
        else:
            body = {"code": exc.code, "message": exc.message}
        return self._err(exc.status, body)

    def _arm_gate(
        self,
        req: Request,
        ctx: Context,
        claims,
        principal: Principal,
        sub_id: str | None,
        allowed_versions: tuple[str, ...] | None = None,
        type_name: str = "",
    ) -> None:
        """Subscription existence and tenant, api-version, ARM read throttling."""
        if sub_id is not None:
            sub = self.scenario.subscriptions.get(sub_id.lower())
            if sub is None:
                raise self._err(404, arm.subscription_not_found(sub_id))
            if sub.tenant_id.lower() != (claims.tenant_id or "").lower():
                raise self._err(
                    401,
                    arm.wrong_tenant(claims.tenant_id, sub.tenant_id),
                    {"WWW-Authenticate": self._www_authenticate(sub.tenant_id, "wrong issuer")},
                )
        version = req.param("api-version")
        if not version:
            raise self._err(400, arm.missing_api_version())
        if allowed_versions is not None:
            if version not in allowed_versions:
                location = self._location_hint(sub_id)
                raise self._err(400, arm.no_registered_provider(version, location, type_name, allowed_versions))
        elif not _API_VERSION.match(version):
            raise self._err(400, arm.invalid_api_version(version))
        scope_kind, scope_id = ("subscription", sub_id) if sub_id else ("tenant", claims.tenant_id)
        allowed, headers, retry = self.throttler.arm_read(scope_kind, scope_id, principal.client_id)
        ctx.headers.update(headers)
        ctx.headers["x-ms-routing-request-id"] = f"WESTEUROPE:{utc_now().strftime('%Y%m%dT%H%M%SZ')}:{uuid.uuid4()}"
        if not allowed:
            raise self._err(429, arm.too_many_requests(), {"Retry-After": str(retry)})

    def _location_hint(self, sub_id: str | None) -> str:
        for account in self.scenario.accounts:
            if sub_id and account.subscription_id.lower() == sub_id.lower():
                return account.location
        return "westeurope"

    def _forbid(self, principal: Principal, action: str, scope: str) -> Reply:
        return self._err(403, authorization_failed(principal, object_id(principal.client_id), action, scope))

    def _find_rg(self, sub_id: str, rg_name: str):
        sub = self.scenario.subscriptions.get(sub_id.lower())
        if sub is None:
            return None
        return next((rg for rg in sub.resource_groups if rg.name.lower() == rg_name.lower()), None)

    # ---- Entra ID -------------------------------------------------------------------------------------------
    def openid(self, req: Request, tenant: str) -> Response:
        if tenant.lower() not in self.scenario.tenants_by_id and tenant.lower() not in ("common", "organizations"):
            err = unknown_tenant(tenant, self.now())
            return Response(err.status, err.body, {"Cache-Control": "no-store, no-cache"})
        return Response(
            200,
            openid_configuration(self.base_url_for(req), tenant),
            {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"},
        )

    def instance_discovery(self, req: Request) -> Response:
        host = req.base_url.split("://", 1)[-1]
        endpoint = req.param("authorization_endpoint") or ""
        match = re.search(r"https://[^/]+/([^/]+)/", endpoint)
        tenant = match.group(1) if match else "common"
        return Response(
            200,
            {
                "tenant_discovery_endpoint": f"{self.base_url_for(req)}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
        )

    def cloud_metadata(self, req: Request) -> Response:
        """`GET {arm}/metadata/endpoints`: what `az cloud register --endpoint-resource-manager` reads
        (api-version 2022-09-01: one cloud object; 2019-05-01: a list of clouds), naming this emulator's
        endpoints. Keys as in Azure's public-cloud answer; unauthenticated like Azure's."""
        base = self.base_url_for(req)
        cloud = {
            "portal": base,
            "authentication": {
                "loginEndpoint": base,
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": "https://rest.media.azure.net",
            "graphAudience": "https://graph.windows.net/",
            "graph": "https://graph.windows.net/",
            "name": "AzureEmulator",
            "suffixes": {
                "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
                "acrLoginServer": "azurecr.io",
                "sqlServerHostname": "database.windows.net",
                "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "keyVaultDns": "vault.azure.net",
                "storage": "core.windows.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "storageSyncEndpointSuffix": "afs.azure.net",
                "mhsmDns": "managedhsm.azure.net",
                "mysqlServerEndpoint": "mysql.database.azure.com",
                "postgresqlServerEndpoint": "postgres.database.azure.com",
                "mariadbServerEndpoint": "mariadb.database.azure.com",
                "synapseAnalytics": "dev.azuresynapse.net",
                "attestationEndpoint": "attest.azure.net",
            },
            "batch": "https://batch.core.windows.net/",
            "resourceManager": base + "/",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "microsoftGraphResourceId": "https://graph.microsoft.com/",
            "appInsightsResourceId": "https://api.applicationinsights.io",
            "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
            "attestationResourceId": "https://attest.azure.net",
            "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
            "logAnalyticsResourceId": "https://api.loganalytics.io",
            "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        }
        version = req.param("api-version")
        if not version:
            raise self._err(400, arm.missing_api_version())
        body = [cloud] if version == "2019-05-01" else cloud
        # No Microsoft REST spec describes metadata/endpoints: not validated (see README).
        return Response(200, body)

    def token(self, req: Request, tenant: str, ctx: Context) -> Response:
        try:
            form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        except ValueError:
            form = {}
        if "resource" in form and "scope" not in form:  # v1 endpoint
            form["scope"] = form["resource"].rstrip("/") + "/.default"
        ctx.principal = form.get("client_id") or None
        ctx.tenant = tenant
        headers = {
            "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache",
            "x-ms-ests-server": "2.1.19000.3 - WEULR1 ProdSlices",
        }
        try:
            body, principal = self.tokens.issue(tenant, form, self.now())
        except TokenError as exc:
            return Response(exc.status, exc.body, headers)
        return Response(200, body, headers)

    # ---- ARM: subscriptions, resource groups ------------------------------------------------------------
    def list_subscriptions(self, req: Request, ctx: Context) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        self._arm_gate(req, ctx, claims, principal, None)
        tenant = self.scenario.tenants_by_id.get(claims.tenant_id.lower())
        subs = [s for s in (tenant.subscriptions if tenant else ()) if touches_subscription(principal, s.id)]
        return Response(200, {"value": [arm.subscription_json(s) for s in subs]}, validate_kind="subscriptions")

    def get_subscription(self, req: Request, ctx: Context, sub_id: str) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        self._arm_gate(req, ctx, claims, principal, sub_id)
        if not touches_subscription(principal, sub_id):
            raise self._forbid(principal, "Microsoft.Resources/subscriptions/read", f"/subscriptions/{sub_id}")
        return Response(200, arm.subscription_json(self.scenario.subscriptions[sub_id.lower()]))

    def resource_groups(self, req: Request, ctx: Context, sub_id: str, rg_name: str | None) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        self._arm_gate(req, ctx, claims, principal, sub_id)
        sub = self.scenario.subscriptions[sub_id.lower()]
        if rg_name is None:
            if not touches_subscription(principal, sub_id):
                raise self._forbid(
                    principal, "Microsoft.Resources/subscriptions/resourceGroups/read", f"/subscriptions/{sub_id}"
                )
            groups = [
                rg
                for rg in sub.resource_groups
                if self._touches(principal, f"/subscriptions/{sub.id}/resourceGroups/{rg.name}")
            ]
            return Response(200, {"value": [arm.resource_group_json(sub, rg) for rg in groups]})
        scope = f"/subscriptions/{sub_id}/resourceGroups/{rg_name}"
        if not self._touches(principal, scope):
            raise self._forbid(principal, "Microsoft.Resources/subscriptions/resourceGroups/read", scope)
        rg = self._find_rg(sub_id, rg_name)
        if rg is None:
            raise self._err(404, arm.resource_group_not_found(rg_name))
        return Response(200, arm.resource_group_json(sub, rg))

    @staticmethod
    def _touches(principal: Principal, scope: str) -> bool:
        """Some assignment at, above or below the scope (ARM then lists what is readable)."""
        lowered = scope.lower()
        for s in tuple(principal.monitoring_reader) + tuple(principal.list_only):
            if covers(s, scope) or s.lower().startswith(lowered + "/"):
                return True
        return False

    # ---- ARM: accounts ---------------------------------------------------------------------------------------
    def list_accounts(self, req: Request, ctx: Context, sub_id: str, rg_name: str | None) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        self._arm_gate(req, ctx, claims, principal, sub_id)
        sub = self.scenario.subscriptions[sub_id.lower()]
        if rg_name is None:
            if not touches_subscription(principal, sub_id):
                raise self._forbid(principal, "Microsoft.CognitiveServices/accounts/read", f"/subscriptions/{sub_id}")
            accounts = [a for rg in sub.resource_groups for a in rg.accounts]
        else:
            scope = f"/subscriptions/{sub_id}/resourceGroups/{rg_name}"
            if not self._touches(principal, scope):
                raise self._forbid(principal, "Microsoft.CognitiveServices/accounts/read", scope)
            rg = self._find_rg(sub_id, rg_name)
            if rg is None:
                raise self._err(404, arm.resource_group_not_found(rg_name))
            accounts = list(rg.accounts)
        visible = [a for a in accounts if can_read_arm(principal, a.id)]
        offset = self._skip_offset(req)
        size = max(1, self.scenario.accounts_page_size)
        page = visible[offset : offset + size]
        body: dict = {"value": [arm.account_json(a) for a in page]}
        if offset + size < len(visible):
            body["nextLink"] = self._next_link(req, offset + size)
        return Response(200, body, validate_kind="accounts_list")

    def _skip_offset(self, req: Request) -> int:
        token = req.param("$skipToken", "skipToken")
        if not token:
            return 0
        try:
            return int(json.loads(urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"])
        except (ValueError, KeyError, TypeError):
            raise self._err(400, arm.error("InvalidSkipToken", f"The skip token '{token}' is invalid.")) from None

    def _next_link(self, req: Request, offset: int) -> str:
        """An absolute nextLink that keeps the api-version and carries a $skipToken (format unconfirmed)."""
        next_token = urlsafe_b64encode(json.dumps({"o": offset}).encode()).rstrip(b"=").decode()
        return f"{self.base_url_for(req)}{req.path}?api-version={req.param('api-version')}&$skipToken={next_token}"

    def _account_or_404(self, sub_id: str, rg_name: str, name: str):
        rg = self._find_rg(sub_id, rg_name)
        if rg is None:
            raise self._err(404, arm.resource_group_not_found(rg_name))
        account = next((a for a in rg.accounts if a.name.lower() == name.lower()), None)
        if account is None:
            raise self._err(404, arm.resource_not_found("Microsoft.CognitiveServices/accounts", name, rg_name))
        return account

    def get_account(self, req: Request, ctx: Context, sub_id: str, rg_name: str, name: str) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        self._arm_gate(req, ctx, claims, principal, sub_id)
        resource_path = req.path
        if not can_read_arm(principal, resource_path):
            raise self._forbid(principal, "Microsoft.CognitiveServices/accounts/read", resource_path)
        account = self._account_or_404(sub_id, rg_name, name)
        return Response(200, arm.account_json(account), validate_kind="account")

    def deployments(
        self, req: Request, ctx: Context, sub_id: str, rg_name: str, name: str, deployment: str | None
    ) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        self._arm_gate(req, ctx, claims, principal, sub_id)
        resource_path = "/" + "/".join(req.segments[:8])
        if not can_read_arm(principal, resource_path):
            raise self._forbid(principal, "Microsoft.CognitiveServices/accounts/deployments/read", req.path)
        account = self._account_or_404(sub_id, rg_name, name)
        today = self.now().date()
        active = [d for d in account.deployments if d.active_on(today)]
        if deployment is None:
            offset = self._skip_offset(req)
            size = self.scenario.deployments_page_size or max(1, len(active))
            body: dict = {"value": [arm.deployment_json(account, d, today) for d in active[offset : offset + size]]}
            if offset + size < len(active):
                body["nextLink"] = self._next_link(req, offset + size)
            return Response(200, body, validate_kind="deployments_list")
        found = next((d for d in active if d.name.lower() == deployment.lower()), None)
        if found is None:
            raise self._err(
                404,
                arm.resource_not_found(
                    "Microsoft.CognitiveServices/accounts/deployments", f"{name}/{deployment}", rg_name
                ),
            )
        return Response(200, arm.deployment_json(account, found, today))

    # ---- ARM: metric definitions and metrics -----------------------------------------------------------------
    def monitor_read(self, req: Request, ctx: Context, sub_id: str, rg_name: str, resource_path: str) -> Response:
        claims, principal = self._auth(req, ctx, ARM_AUDIENCES)
        definitions = ctx.kind == "definitions"
        namespaces = ctx.kind == "namespaces"
        type_name = "metricDefinitions" if definitions else "metricNamespaces" if namespaces else "metrics"
        versions = METRIC_NAMESPACES_API_VERSIONS if namespaces else self.quirks.arm_metrics_api_versions
        self._arm_gate(req, ctx, claims, principal, sub_id, versions, type_name)
        if definitions:
            allowed, remaining, retry = self.throttler.definitions(sub_id, principal.client_id)
            ctx.headers["x-ms-ratelimit-remaining-subscription-resource-requests"] = str(remaining)
            if not allowed:
                raise self._err(
                    429,
                    arm.definitions_throttled(self.scenario.throttle.definitions_per_5min, retry),
                    {"Retry-After": str(retry)},
                )
        action = (
            "microsoft.insights/metricDefinitions/read"
            if definitions
            else "microsoft.insights/metricNamespaces/read"
            if namespaces
            else "microsoft.insights/metrics/read"
        )
        if not can_read_monitoring(principal, resource_path):
            raise self._forbid(principal, action, f"{resource_path}/providers/microsoft.insights")
        segs = resource_path.strip("/").split("/")
        rg = self._find_rg(sub_id, rg_name)
        if rg is None:
            raise self._err(404, arm.resource_group_not_found(rg_name))
        account = self.scenario.account(resource_path)
        if account is None:
            type_path = "/".join([segs[5]] + segs[6::2])
            raise self._err(404, arm.resource_not_found(type_path, "/".join(segs[7::2]), rg_name))
        if namespaces:
            return Response(200, arm.metric_namespaces_json(account), validate_kind="metric_namespaces")
        if definitions:
            namespace = req.param("metricnamespace")
            if namespace and namespace.lower() != NAMESPACE_LOWER:
                return Response(200, {"value": []}, validate_kind="metric_definitions")
            # `namespace` echoes the metricnamespace parameter as sent, else the resource type (Azure CLI
            # recording test_monitor_metrics_scenario; spec examples GetMetricDefinitions*.json).
            return Response(
                200, arm.metric_definitions_json(account, namespace or ACCOUNT_TYPE), validate_kind="metric_definitions"
            )
        try:
            return self._arm_metrics(req, account)
        except QueryError as exc:
            raise self._rp_error(exc) from exc

    def _arm_metrics(self, req: Request, account) -> Response:
        namespace = req.param("metricnamespace")
        if namespace and namespace.lower() != NAMESPACE_LOWER:
            raise QueryError(
                f"Metric namespace: {namespace} is not supported for resource type: "
                "Microsoft.CognitiveServices/accounts"
            )
        now = self.now()
        timespan = req.param("timespan")
        if timespan and "%" in timespan:
            # The Azure CLI sends the timespan URL-encoded twice (quote_plus, then the query encoding); ARM
            # decodes it again and answers 200 (Azure CLI recording test_monitor_metrics_scenario).
            timespan = unquote(timespan)
        start, end = parse_timespan(timespan, now)
        auto_adjust = parse_bool(req.param("AutoAdjustTimegrain"), False)
        grain = parse_interval(req.param("interval"), auto_adjust)
        raw_names = req.param("metricnames")
        names = parse_metric_names(raw_names) if raw_names is not None else []
        specs = resolve_metrics(account, names) if names else list(account_metrics(account)[:1])
        aggregations = parse_aggregations(req.param("aggregation"))
        top = parse_top(req.param("top"))
        order_agg, desc = parse_orderby(req.param("orderby"), self.quirks.default_orderby)
        flt = parse_filter(req.param("$filter", "filter"))
        validate = parse_bool(req.param("ValidateDimensions"), True)
        result_type = (req.param("resultType") or "Data").lower()
        if result_type not in ("data", "metadata"):
            raise QueryError(f"Invalid resultType: {req.param('resultType')}, supported ones are: Data,Metadata")
        rollup = frozenset(d.strip().lower() for d in (req.param("rollupby") or "").split(",") if d.strip())
        request = MetricsRequest(
            names,
            start,
            end,
            grain,
            aggregations,
            flt,
            top,
            desc,
            metadata_only=result_type == "metadata",
            validate_dimensions=validate,
            rollupby=rollup,
        )
        filters = effective_filter(specs, flt, validate)
        request.start = trimmed_start(request, self.quirks)
        window = make_window(request, now, self.scenario)
        values = self.engine.resource_results(account, specs, request, filters, window)
        # 2018-01-01 echoes metricnamespace as sent (else the resource type); later versions lower-case it
        # (Azure CLI recording test_monitor_metrics_scenario; 2023-10-01/2024-02-01 spec examples).
        version = req.param("api-version")
        out_namespace = (namespace or ACCOUNT_TYPE) if version == "2018-01-01" else NAMESPACE_LOWER
        if request.metadata_only:
            body = {
                "timespan": window.timespan,
                "value": values,
                "namespace": out_namespace,
                "resourceregion": account.location,
            }
        else:
            body = {
                "cost": _cost(window, values),
                "timespan": window.timespan,
                "interval": window.interval,
                "value": values,
                "namespace": out_namespace,
                "resourceregion": account.location,
            }
        return Response(200, JsonDoc(body), validate_kind="metrics")

    # ---- batch -------------------------------------------------------------------------------------------------
    def _batch_error(self, status: int, code: str, message: str, headers: dict | None = None) -> Reply:
        body = {
            "error": {
                "additionalInfo": [{"type": "string", "info": f"TraceId={uuid.uuid4().hex}"}],
                "code": code,
                "message": message,
            }
        }
        return self._err(status, body, headers)

    def batch(self, req: Request, ctx: Context, sub_id: str, region: str | None) -> Response:
        claims, principal = self._auth(req, ctx, METRICS_AUDIENCES)
        version = req.param("api-version")
        if not version:
            raise self._batch_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in self.quirks.batch_api_versions:
            raise self._batch_error(
                400,
                "BadRequest",
                f"The api-version '{version}' is not supported. Supported "
                f"api-versions: {', '.join(self.quirks.batch_api_versions)}.",
            )
        if region is None:
            raise self._batch_error(
                400,
                "BadRequest",
                "The regional endpoint could not be determined: use "
                "https://{region}.metrics.monitor.azure.com (here: a /{region} path prefix).",
            )
        if not has_subscription_reader(principal, sub_id):
            raise self._batch_error(
                401,
                "Unauthorized",
                f"The client '{principal.client_id}' with object id '{object_id(principal.client_id)}' does not have "
                f"authorization to perform action 'Microsoft.Insights/Metrics/Read' over scope "
                f"'/subscriptions/{sub_id}' or the scope is invalid. The metrics batch API requires the role at "
                "subscription scope.",
                {"WWW-Authenticate": self._www_authenticate(claims.tenant_id, "insufficient scope")},
            )
        allowed, remaining, retry = self.throttler.batch(sub_id, principal.client_id)
        if not allowed:
            raise self._batch_error(
                529,
                "TooManyRequests",
                "The server is throttling the metrics batch requests of "
                f"this client. Please retry after {retry} seconds.",
                {"Retry-After": str(retry)},
            )
        try:
            body = json.loads(req.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._batch_error(400, "BadRequest", f"The request body is not valid JSON: {exc}.") from exc
        if not isinstance(body, dict) or "resourceids" not in body or not isinstance(body["resourceids"], list):
            raise self._batch_error(
                400,
                "BadRequest",
                "The request body must be a JSON object with the property 'resourceids' (a list of resource ids).",
            )
        ids = body["resourceids"]
        ctx.resource_count = len(ids)
        if not ids:
            raise self._batch_error(400, "BadRequest", "The list of resource ids must not be empty.")
        if len(ids) > 50:
            raise self._batch_error(
                400,
                "BadRequest",
                f"Maximum list of resource ids supported is 50. Number of resource ids in the request: {len(ids)}.",
            )
        namespace = req.param("metricnamespace")
        if not namespace:
            raise self._batch_error(400, "BadRequest", "The metricnamespace query parameter is required.")
        unique: list[str] = []
        seen = set()
        for rid in ids:
            if not isinstance(rid, str) or not rid.strip():
                raise self._batch_error(400, "BadRequest", f"Invalid resource id: {rid!r}.")
            if rid.lower() not in seen:
                seen.add(rid.lower())
                unique.append(rid)
        accounts = []
        for rid in unique:
            parts = rid.strip("/").split("/")
            if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[4].lower() != "providers":
                raise self._batch_error(400, "BadRequest", f"Invalid resource id: {rid}.")
            if parts[1].lower() != sub_id.lower():
                raise self._batch_error(
                    400,
                    "BadRequest",
                    f"Resource id '{rid}' does not belong to subscription "
                    f"'{sub_id}' of the request: all resources of a batch must be in the same "
                    "subscription.",
                )
            rtype = f"{parts[5]}/{parts[6]}"
            if rtype.lower() != namespace.lower():
                raise self._batch_error(
                    400,
                    "BadRequest",
                    f"Resource id '{rid}' is of type '{rtype}', which does not "
                    f"match the metric namespace '{namespace}': all resources of a batch must be "
                    "of the same resource type.",
                )
            account = self.scenario.account(rid)
            if account is not None and account.location.lower() != region.lower():
                raise self._batch_error(
                    400,
                    "BadRequest",
                    f"Resource id '{rid}' is in region '{account.location}', "
                    f"which does not match the endpoint region '{region}': all resources of a "
                    "batch must be in the region of the endpoint.",
                )
            if account is None and self.quirks.batch_unknown_resource == "error":
                raise self._batch_error(400, "BadRequest", f"Resource id '{rid}' was not found.")
            accounts.append((rid, account))
        try:
            response = self._batch_values(req, version, namespace, accounts, region)
        except QueryError as exc:
            raise self._batch_error(exc.status, exc.code, exc.message) from exc
        return response

    def _batch_values(self, req: Request, version: str, namespace: str, accounts, region: str) -> Response:
        if namespace.lower() != NAMESPACE_LOWER:
            raise QueryError(f"Metric namespace: {namespace} is not supported.")
        now = self.now()
        timespan = req.param("timespan")
        if timespan:
            mode = self.quirks.batch_timespan
            if mode == "reject" or (mode == "by_version" and version >= "2024-02-01"):
                raise QueryError(
                    f"Detected invalid time range parameters for API version {version}. Please use "
                    "only starttime and endtime to specify a time range."
                )
            start, end = parse_timespan(timespan, now)
        else:
            start, end = parse_batch_times(req.param("starttime"), req.param("endtime"), now)
        grain = parse_interval(req.param("interval"), False)
        names = parse_metric_names(req.param("metricnames"))
        specs = resolve_namespace_metrics(names)
        aggregations = parse_aggregations(req.param("aggregation"))
        top = parse_top(req.param("top"))
        _agg, desc = parse_orderby(req.param("orderby"), self.quirks.default_orderby)
        flt = parse_filter(req.param("filter", "$filter"))
        validate = parse_bool(req.param("ValidateDimensions"), True)
        rollup = frozenset(d.strip().lower() for d in (req.param("rollupby") or "").split(",") if d.strip())
        retention_end = now - timedelta(days=self.scenario.retention_days)
        if end < retention_end:
            # Text of the 400 in the spec example MetricBatchExample.json (2024-02-01 and 2023-10-01).
            raise QueryError(
                f"Query endTime: {end.strftime('%m/%d/%Y %H:%M:%S')} is out of the Max metrics "
                f"retention period: {format_timespan_dotnet(timedelta(days=self.scenario.retention_days))}"
                f", traceId: {{{uuid.uuid4()}}}"
            )
        request = MetricsRequest(
            names, start, end, grain, aggregations, flt, top, desc, validate_dimensions=validate, rollupby=rollup
        )
        filters = effective_filter(specs, flt, validate)
        if self.quirks.trim_batch:
            request.start = start = trimmed_start(request, self.quirks)
        window = make_window(request, now, self.scenario)
        for _rid, account in accounts:
            if account is not None:
                resolve_metrics(account, names)
        mode = self.quirks.batch_namespace_echo
        out_namespace = (
            namespace
            if mode == "as_requested" or (mode == "by_version" and version == "2023-10-01")
            else NAMESPACE_LOWER
        )
        values = []
        for rid, account in accounts:
            if account is None:
                metric_values = [
                    {
                        "id": f"{rid}/providers/Microsoft.Insights/metrics/{spec.name}",
                        "type": "Microsoft.Insights/metrics",
                        "name": {"value": spec.name, "localizedValue": spec.display_name},
                        "displayDescription": spec.description,
                        "unit": "Count",
                        "timeseries": [],
                        "errorCode": "Success",
                    }
                    for spec in specs
                ]
                location = region
            else:
                metric_values = self.engine.resource_results(account, specs, request, filters, window)
                location = account.location
            item = {
                "starttime": format_ts_ms(start),
                "endtime": format_ts_ms(end),
                "interval": window.interval,
                "value": metric_values,
                "namespace": out_namespace,
                "resourceregion": location,
                "resourceid": rid,
            }
            if version == "2023-10-01":  # the Learn migration sample (2023-10-01) carries a per-item cost
                item = {"cost": _cost(window, metric_values), **item}
            values.append(item)
        return Response(200, JsonDoc({"values": values}), validate_kind="batch")

    # ---- forbidden and unknown -------------------------------------------------------------------------------
    def write(self, req: Request, ctx: Context) -> Response:
        if req.lower and req.lower[0] in ("subscriptions", "providers"):
            claims, principal = self._auth(req, ctx, ARM_AUDIENCES + METRICS_AUDIENCES)
            action, scope = _write_action(req)
            raise self._forbid(principal, action, scope)
        raise self._err(
            403,
            arm.error(
                "AuthorizationFailed", f"The emulated Azure refuses {req.method} {req.path}: the pipeline is read-only."
            ),
        )

    def not_served(self, req: Request, ctx: Context) -> Response:
        ctx.kind = "unknown"
        raise self._err(404, arm.error("NotFound", f"The emulator does not serve {req.method} {req.path}."))

    def not_allowed(self, req: Request, ctx: Context) -> Response:
        ctx.kind = "unknown"
        raise self._err(
            405,
            arm.error("MethodNotAllowed", f"The requested resource does not support http method '{req.method}'."),
            {"Allow": "GET, HEAD, POST, PUT, PATCH, DELETE"},
        )

    def base_url_for(self, req: Request) -> str:
        return req.base_url or self.base_url

    # ---- log, redaction, validation ----------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret and secret in text:
                text = text.replace(secret, REDACTED)
        return _JWT.sub(REDACTED, text)

    def record(self, req: Request, ctx: Context, response: Response, duration_ms: float) -> dict:
        query = {}
        for key, value in req.pairs:
            query[key] = REDACTED if _SENSITIVE_KEY.search(key) else self.redact(value)
        entry = {
            "time": utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "emulator_now": self.now().isoformat().replace("+00:00", "Z"),
            "method": req.method,
            "path": self.redact(req.path),
            "query": query,
            "status": "reset" if response.reset else "truncated" if response.truncate else response.status,
            "kind": ctx.kind,
            "principal": ctx.principal,
            "tenant": ctx.tenant,
            "duration_ms": round(duration_ms, 3),
            "forbidden": ctx.forbidden,
            "error_code": None if response.reset or response.status < 400 else _json_error_code(response.body),
        }
        if ctx.resource_count is not None:
            entry["resource_count"] = ctx.resource_count
        if ctx.region is not None:
            entry["region"] = ctx.region
        if ctx.fault is not None:
            entry["fault"] = ctx.fault
        client_request_id = req.headers.get("x-ms-client-request-id") or req.headers.get("client-request-id")
        if client_request_id:
            entry["client_request_id"] = self.redact(client_request_id)
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.log.append(entry)
        return entry

    def validation_kind(self, kind: str, response: Response) -> str | None:
        """The spec_validation kind for a response, or None when it is not validated.

        Success bodies are validated as their endpoint's kind; error bodies as their endpoint's kind too
        (it knows whether that endpoint answers flat or wrapped errors), else as "error".
        """
        if self.validator is None or response.reset or kind in ("token", "openid"):
            return None
        if response.status >= 400:
            if not isinstance(response.body, dict):
                return None
            return VALIDATED_KINDS.get(kind, "error")
        return response.validate_kind

    def begin_validation(self) -> None:
        with self.validation_cv:
            self.pending_validations += 1

    def validate(self, entry: dict, response: Response, kind: str) -> None:
        try:
            try:
                body = _sample_for_validation(response.body) if response.status < 400 else response.body
                problems = list(self.validator(kind, response.status, body) or [])
            except Exception as exc:  # noqa: BLE001 - last resort: a validator bug must show, not pass silently
                problems = [f"validator raised {type(exc).__name__}: {exc}"]
            if problems:
                with self.lock:
                    self.violations.append(
                        {
                            "seq": entry["seq"],
                            "kind": kind,
                            "status": response.status,
                            "method": entry["method"],
                            "path": entry["path"],
                            "problems": problems[:20],
                        }
                    )
        finally:
            with self.validation_cv:
                self.pending_validations -= 1
                self.validation_cv.notify_all()

    def wait_validations(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self.validation_cv:
            while self.pending_validations > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.validation_cv.wait(left)

    # ---- control API -------------------------------------------------------------------------------------------
    def control(self, req: Request) -> Response:
        name = "/".join(req.lower[1:])
        method = req.method
        try:
            payload = json.loads(req.body.decode("utf-8")) if req.body else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Response(400, {"error": f"invalid JSON body: {exc}"})
        if name == "health" and method == "GET":
            return Response(
                200,
                {
                    "status": "ok",
                    "uptime_s": round(time.monotonic() - self.started, 3),
                    "requests": len(self.log),
                    "now": self.now().isoformat(),
                    "frozen": self.frozen_now is not None,
                    "scenario": self.scenario.source,
                    "spec_validation": self.validator is not None,
                },
            )
        if name == "requests":
            if method == "GET":
                with self.lock:
                    entries = list(self.log)
                kind = req.param("kind")
                if kind:
                    entries = [e for e in entries if e["kind"] == kind]
                since = req.param("since")
                if since:
                    entries = [e for e in entries if e["seq"] > int(since)]
                return Response(200, entries)
            if method == "DELETE":
                with self.lock:
                    cleared = len(self.log)
                    self.log.clear()
                return Response(200, {"cleared": cleared})
        if name == "faults":
            if method == "GET":
                return Response(200, self.faults.list())
            if method == "POST":
                try:
                    ids = self.faults.add(payload)
                except (FaultSpecError, ValueError, TypeError) as exc:
                    return Response(400, {"error": str(exc)})
                return Response(200, {"added": ids})
            if method == "DELETE":
                self.faults.clear()
                return Response(200, {"cleared": True})
        if name == "clock":
            if method == "GET":
                return Response(200, {"now": self.now().isoformat(), "frozen": self.frozen_now is not None})
            if method == "POST":
                payload = payload or {}
                if "advance_seconds" in payload:
                    self.frozen_now = self.now() + timedelta(seconds=float(payload["advance_seconds"]))
                elif payload.get("now") is None:
                    self.frozen_now = None
                else:
                    value = parse_datetime(str(payload["now"]))
                    if value is None:
                        return Response(400, {"error": f"not an ISO datetime: {payload['now']!r}"})
                    self.frozen_now = value
                return Response(200, {"now": self.now().isoformat(), "frozen": self.frozen_now is not None})
        if name == "reset" and method == "POST":
            with self.lock:
                self.log.clear()
            self.faults.clear()
            self.throttler.reset()
            self.frozen_now = self.scenario.now
            return Response(200, {"reset": True})
        if name == "violations":
            if method == "GET":
                self.wait_validations()
                with self.lock:
                    return Response(200, list(self.violations))
            if method == "DELETE":
                self.wait_validations()
                with self.lock:
                    self.violations.clear()
                return Response(200, {"cleared": True})
        return Response(404, {"error": f"unknown control endpoint {method} /_emulator/{name}"})


VALIDATION_SAMPLE_POINTS = 20_000


def _cost(window, values) -> int:
    """`cost` = (minutes in the answered window - 1) per metric that succeeded: 2 metrics over 5 h gave 598
    (GetMetric.json), one of two failing over 4 h gave 239 (GetMetricError.json), 2 metrics over 31 days of
    PT1M gave 89278 (Azure CLI recording)."""
    ok = 0
    for value in values:
        code = value.error_code if hasattr(value, "error_code") else value.get("errorCode")
        if code == "Success":
            ok += 1
    return window.cost * ok


def _sample_for_validation(body):
    """Large metrics/batch bodies are validated on a structural sample: every resource and metric, but
    the first and last few series and points of each (all of them come from the same code path). Keeps
    jsonschema from costing seconds per 10 MB body."""
    if isinstance(body, JsonDoc):
        return body.to_obj(sample=body.points() > VALIDATION_SAMPLE_POINTS)
    return body


def _count_resource_ids(body: bytes) -> int | None:
    try:
        ids = json.loads(body.decode("utf-8")).get("resourceids")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return len(ids) if isinstance(ids, list) else None


def _write_action(req: Request) -> tuple[str, str]:
    """The RBAC action and scope ARM names in the 403 for a write, delete or POST action."""
    seg, low = req.segments, req.lower
    verb = {"PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(req.method, "action")
    providers = [i for i, s in enumerate(low) if s == "providers"]
    if providers and providers[-1] + 1 < len(seg):
        i = providers[-1]
        namespace, rest, prefix = seg[i + 1], seg[i + 2 :], seg[: i + 2]
    else:
        namespace, rest, prefix = "Microsoft.Resources", seg, []
    types = rest[0::2]
    if req.method == "POST" and len(rest) % 2 == 1 and len(rest) > 1:
        return f"{namespace}/{'/'.join(types)}/action", "/" + "/".join(prefix + rest[:-1])
    return f"{namespace}/{'/'.join(types)}/{verb}", "/" + "/".join(seg)
