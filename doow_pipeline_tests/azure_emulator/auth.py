"""Entra ID: OIDC metadata, the client-credentials token endpoint, and access-token checks.

Tokens are JWT-shaped (header.claims.signature, base64url) and signed with HMAC-SHA256 under a per-run key,
so a token altered or made up by a client is rejected as Azure would reject it. Claims follow Entra v1
app tokens: aud, iss, iat, nbf, exp, appid, azp, appidacr, idtyp, oid, sub, tid, ver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .scenario import Principal, Scenario

ARM_AUDIENCES = (
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
)
METRICS_AUDIENCES = ("https://metrics.monitor.azure.com", "https://metrics.monitor.azure.com/")
KNOWN_RESOURCES = ARM_AUDIENCES + METRICS_AUDIENCES
_OBJECT_ID_NS = uuid.UUID("0d6b1f8e-2b63-4a43-8f3e-8e0c9d7a5a11")


def object_id(client_id: str) -> str:
    """The service principal's object id: stable, and different from its appId as in Entra."""
    return str(uuid.uuid5(_OBJECT_ID_NS, client_id.lower()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass
class TokenError(Exception):
    status: int
    body: dict

    def __str__(self) -> str:
        return self.body.get("error_description", "")


def aad_error(status: int, error: str, code: int, text: str, now: datetime) -> TokenError:
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = _aad_time(now)
    return TokenError(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def unknown_tenant(tenant: str, now: datetime) -> TokenError:
    return aad_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there "
        "are no active subscriptions for the tenant.",
        now,
    )


def openid_configuration(base: str, tenant: str) -> dict:
    root = f"{base}/{tenant}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


@dataclass(frozen=True)
class TokenClaims:
    tenant_id: str
    client_id: str
    object_id: str
    audience: str
    expires: datetime
    raw: dict


class TokenService:
    def __init__(self, scenario: Scenario, lifetime_s: int = 3599):
        self.scenario = scenario
        self.lifetime_s = lifetime_s
        self.key = os.urandom(32)

    # ---- issuing --------------------------------------------------------------------------------------------
    def issue(self, tenant: str, form: dict[str, str], now: datetime) -> tuple[dict, Principal]:
        """The token endpoint. Raises TokenError with Entra's status and body."""
        tenant_obj = self.scenario.tenants_by_id.get(tenant.lower())
        if tenant_obj is None:
            raise unknown_tenant(tenant, now)
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            raise aad_error(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.", now
            )
        client_id = form.get("client_id", "")
        principal = next((p for p in tenant_obj.principals if p.client_id.lower() == client_id.lower()), None)
        if principal is None:
            raise aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant. You may have sent your authentication "
                "request to the wrong tenant.",
                now,
            )
        secret = form.get("client_secret")
        if not secret:
            raise aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                now,
            )
        if not hmac.compare_digest(secret.encode(), principal.secret.encode()):
            raise aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                "secret value, not the client secret ID, for a secret added to app "
                f"'{principal.client_id}'.",
                now,
            )
        if principal.secret_expires is not None and principal.secret_expires <= now:
            raise aad_error(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{principal.client_id}' are expired. Visit the "
                "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "
                "using certificate credentials for added security: https://aka.ms/certCreds.",
                now,
            )
        scopes = form.get("scope", "").split()
        resource = next((s[: -len("/.default")] for s in scopes if s.endswith("/.default")), None)
        if resource is None:
            raise aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope', '')} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
                now,
            )
        if resource not in KNOWN_RESOURCES and resource.rstrip("/") not in KNOWN_RESOURCES:
            raise aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}. This "
                "can happen if the application has not been installed by the administrator of the tenant "
                "or consented to by any user in the tenant. You might have sent your authentication "
                "request to the wrong tenant.",
                now,
            )
        token = self._encode(principal, resource, now)
        return {
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "ext_expires_in": self.lifetime_s,
            "access_token": token,
        }, principal

    def _encode(self, principal: Principal, audience: str, now: datetime) -> str:
        iat = int(now.timestamp())
        oid = object_id(principal.client_id)
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{principal.tenant_id}/",
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.lifetime_s,
            "aio": _b64(os.urandom(12)),
            "appid": principal.client_id,
            "azp": principal.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{principal.tenant_id}/",
            "idtyp": "app",
            "oid": oid,
            "sub": oid,
            "tid": principal.tenant_id,
            "uti": _b64(os.urandom(16)),
            "ver": "1.0",
            "xms_tcdt": 1600000000,
        }
        header = {"typ": "JWT", "alg": "HS256", "kid": "azure-emulator"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self.key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    # ---- checking -------------------------------------------------------------------------------------------
    def decode(self, token: str) -> dict | None:
        """Claims of a token this emulator issued, or None when malformed or forged."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            return json.loads(_unb64(parts[1]))
        except (ValueError, json.JSONDecodeError):
            return None


class AuthError(Exception):
    """A 401 from ARM or the metrics data plane."""

    def __init__(self, code: str, message: str, tenant: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.tenant = tenant


def check_bearer(service: TokenService, header: str | None, audiences: tuple[str, ...], now: datetime) -> TokenClaims:
    if not header:
        raise AuthError("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        )
    claims = service.decode(token.strip())
    if claims is None:
        raise AuthError("InvalidAuthenticationToken", "The access token is invalid.")
    expires = datetime.fromtimestamp(int(claims.get("exp", 0)), tz=UTC)
    tenant = claims.get("tid")
    if expires <= now:
        raise AuthError(
            "ExpiredAuthenticationToken",
            f"The access token expiry UTC time '{_dotnet_time(expires)}' is earlier than current UTC time "
            f"'{_dotnet_time(now)}'.",
            tenant,
        )
    audience = claims.get("aud", "")
    if audience not in audiences:
        allowed = ",".join(f"'{a}'" for a in sorted(audiences, key=lambda a: (a.rstrip("/"), not a.endswith("/"))))
        raise AuthError(
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{audience}'. It should "
            f"exactly match with one of the allowed audiences {allowed}.",
            tenant,
        )
    return TokenClaims(tenant, claims.get("appid", ""), claims.get("oid", ""), audience, expires, claims)


def _dotnet_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    hour12 = value.hour % 12 or 12
    return (
        f"{value.month}/{value.day}/{value.year} {hour12}:{value.minute:02d}:{value.second:02d} "
        f"{'AM' if value.hour < 12 else 'PM'}"
    )


def token_lifetime(now: datetime, lifetime_s: int) -> datetime:
    return now + timedelta(seconds=lifetime_s)
