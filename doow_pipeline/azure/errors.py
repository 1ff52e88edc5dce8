"""Azure SDK exceptions mapped to problems a person can act on (`classify`), and the boundary that turns
them into the product's `AzureError` (`azure_errors`): nothing outside azure/ sees an SDK exception.

The messages never include secrets: SDK exception texts carry none, and only Azure's own error text is
quoted. Azure's error codes come from the wire JSON (`error.code`, or a flat `code` from the metrics API).
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ..core import secrets
from ..core.problems import ROLE_FIX, AzureError, Problem, ProblemCode

SDK_ERRORS = (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
    DeserializationError,
)
MALFORMED_FIX = (
    "Retry later (the next sync asks again); if it persists, check for a proxy or firewall between this "
    "machine and Azure that rewrites answers, and the Azure status page."
)

_AADSTS = {
    "7000215": (
        ProblemCode.WRONG_SECRET,
        "The client secret is wrong (Entra ID AADSTS7000215).",
        "Copy the secret's Value (not its Secret ID) from the app registration's Certificates & secrets "
        "page and reconnect with `doow-azure connect`.",
    ),
    "7000222": (
        ProblemCode.EXPIRED_SECRET,
        "The client secret has expired (Entra ID AADSTS7000222).",
        "Create a new client secret on the app registration and reconnect with `doow-azure connect`.",
    ),
    "700016": (
        ProblemCode.UNKNOWN_APP,
        "The client (application) id is not registered in this tenant (Entra ID AADSTS700016).",
        "Check the Application (client) ID and that the tenant id is the app registration's tenant.",
    ),
    "90002": (
        ProblemCode.UNKNOWN_TENANT,
        "The tenant does not exist in this cloud (Entra ID AADSTS90002).",
        "Check the Directory (tenant) ID and the cloud (AzureCloud, AzureUSGovernment, AzureChinaCloud).",
    ),
}
TOKEN_ERROR_CODES = (
    "ExpiredAuthenticationToken",
    "InvalidAuthenticationToken",
    "AuthenticationFailed",
    "InvalidAuthenticationTokenAudience",
)
UNREACHABLE_FIX = (
    "Check network access to the endpoint (firewall, proxy settings such as HTTPS_PROXY), the "
    "custom endpoints in settings.endpoints, and the CA bundle (settings.endpoints.ca_cert or "
    "REQUESTS_CA_BUNDLE); for the bundled emulator, check that it is running."
)
_TLS_FIX = (
    "Point settings.endpoints.ca_cert (or REQUESTS_CA_BUNDLE) at the CA bundle that signed the endpoint's "
    "certificate, and use the host name the certificate is issued for (a proxy that inspects TLS needs its "
    "own CA there); for the bundled emulator, use the ca_cert of its current run (its ready line)."
)
_CA_FILE_FIX = (
    "Fix settings.endpoints.ca_cert (or REQUESTS_CA_BUNDLE) to name an existing CA bundle file; for the "
    "bundled emulator, paste its current ready line into settings.endpoints."
)
_PROXY_FIX = (
    "Check the proxy in HTTPS_PROXY / HTTP_PROXY (address, port, credentials) and NO_PROXY, or ask the "
    "network team to allow the Azure endpoints through it."
)
_DNS_FIX = (
    "Check the host names in settings.endpoints (or the cloud: AzureCloud, AzureUSGovernment, "
    "AzureChinaCloud) and this machine's DNS."
)
_REFUSED_FIX = (
    "Check that the endpoint's address and port are right (settings.endpoints, the cloud) and that no "
    "firewall blocks it; for the bundled emulator, check that it is running."
)
_TIMEOUT_FIX = (
    "Check network access to the endpoint (firewall, proxy settings such as HTTPS_PROXY); retry later "
    "if the network is slow."
)


def one_line(text: str, limit: int = 600) -> str:
    """One line of at most `limit` characters, registered secrets masked (an endpoint may echo a request)."""
    return secrets.scrub(" ".join(str(text).split()))[:limit]


def body_excerpt(text: str | bytes | None, limit: int = 160) -> str:
    """What an answer's body looked like, for a message: its start, one line, secrets masked."""
    if text is None:
        return "no body"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = one_line(text, limit)
    return f"body {text!r}" if text else "an empty body"


def malformed_answer(call: str, status: int | None, body: str | bytes | None, what: str) -> Problem:
    """An answer that is not the JSON the API documents: which call, which status, what the body looked like."""
    answered = f"answered HTTP {status}" if status is not None else "answered"
    return Problem(
        ProblemCode.MALFORMED_ANSWER,
        f"The {call} {answered} with {what} ({body_excerpt(body)}).",
        MALFORMED_FIX,
        f"{call}: {answered}: {body_excerpt(body, 400)}",
    )


def _response_text(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        text = response.text()
    except Exception:  # noqa: BLE001 - a body that cannot be read is reported as such
        return None
    return text if isinstance(text, str) else None


def _request_of(exc: BaseException) -> str:
    request = getattr(getattr(exc, "response", None), "request", None)
    url = getattr(request, "url", None)
    if not isinstance(url, str):
        return "Azure call"
    return f"{getattr(request, 'method', 'GET')} {url.split('?', 1)[0]} call"


def _message(exc: BaseException) -> str:
    return one_line(getattr(exc, "message", None) or str(exc))


def wire_error_code(body: object) -> str | None:
    """Azure's error code in a JSON error body: wrapped `{"error": {"code"}}` (ARM, batch) or flat `{"code"}`
    (the metrics API's 400s)."""
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def error_code(exc: BaseException) -> str | None:
    """The Azure error code of an SDK exception (AuthorizationFailed, ResourceNotFound, …), if any."""
    code = getattr(getattr(exc, "error", None), "code", None)
    if isinstance(code, str) and code:
        return code
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            code = wire_error_code(response.text())
        except Exception:  # noqa: BLE001 - a body that cannot be read has no code
            code = None
        if code:
            return code
    match = re.search(r"\(([A-Za-z]+)\)|Code: ([A-Za-z]+)", str(exc))
    return (match.group(1) or match.group(2)) if match else None


def status_code(exc: BaseException) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "inner_exception", None)
        current = current.__cause__ or current.__context__ or (inner if isinstance(inner, BaseException) else None)


def _chain_text(exc: BaseException) -> str:
    return " ".join(str(e) for e in _chain(exc))


def _endpoint_in(text: str) -> str | None:
    """The endpoint an SDK message names: a URL, or urllib3's `host='h', port=p` (a proxy's address aside)."""
    url = re.search(r"https?://[^\s'\"/]+", text)
    if url:
        return url.group(0)
    host = re.search(r"host='([^']+)', port=(\d+)", text)
    return f"https://{host.group(1)}:{host.group(2)}" if host else None


def _unreachable(exc: BaseException, endpoint: str | None = None) -> Problem | None:
    """Network, DNS, proxy and TLS failures: the endpoint was never answered, so no credential was judged."""
    chain = list(_chain(exc))
    text = " ".join(_message(e) for e in chain).lower()
    if "could not find a suitable tls ca certificate bundle" in text or ("no such file" in text and "ca" in text):
        cause, fix = "the CA bundle file configured for it does not exist", _CA_FILE_FIX
    elif (
        any(isinstance(e, ssl.SSLError) for e in chain)
        or "certificate verify failed" in text
        or "ssl" in text
        and ("certificate" in text or "hostname" in text)
    ):
        mismatch = "mismatch" in text or "not valid for" in text or "hostname" in text
        cause = (
            "its TLS certificate does not cover the host name it was reached by"
            if mismatch
            else "its TLS certificate could not be verified with the configured CA bundle"
        )
        fix = _TLS_FIX
    elif "proxy" in text:
        cause, fix = "the proxy refused or failed the connection to it", _PROXY_FIX
    elif any(isinstance(e, TimeoutError) for e in chain) or "timed out" in text or "timeout" in text:
        cause, fix = "it did not answer in time", _TIMEOUT_FIX
    elif (
        "name or service not known" in text
        or "nodename nor servname" in text
        or "getaddrinfo" in text
        or "name resolution" in text
        or "failed to resolve" in text
    ):
        cause, fix = "its host name could not be resolved (DNS)", _DNS_FIX
    elif (
        any(isinstance(e, (ConnectionError, ServiceRequestError)) for e in chain)
        or "connection refused" in text
        or "failed to establish a new connection" in text
        or "max retries exceeded" in text
    ):
        cause, fix = "it refused the connection or could not be reached", _REFUSED_FIX
    else:
        return None
    named = endpoint if "proxy" in text and endpoint else None
    where = named or _endpoint_in(" ".join(_message(e) for e in chain)) or endpoint or "the Azure endpoint"
    return Problem(
        ProblemCode.UNREACHABLE,
        f"Azure could not be reached at {where}: {cause}. No credential was checked.",
        fix,
        _message(exc),
    )


def _token_endpoint_problem(exc: BaseException, text: str) -> Problem | None:
    """The token endpoint answered, but not with a token or a documented Entra ID error: say so (azure-identity
    reports these as 'Authentication failed: ...' with no HTTP status of its own)."""
    if not isinstance(exc, ClientAuthenticationError):
        return None
    aadsts = re.search(r"AADSTS\d+", text)
    if aadsts:
        return Problem(
            ProblemCode.TOKEN_REFUSED,
            f"Entra ID refused the token request ({aadsts.group(0)}).",
            "Check the tenant id, client id and client secret of the connection (the detail has Entra "
            "ID's own words), then reconnect with `doow-azure connect`.",
            text,
        )
    match = re.search(r"HTTP Error: (\d{3})", text)
    if match:
        status = int(match.group(1))
        return Problem(
            ProblemCode.AZURE_ERROR,
            f"The Entra ID token endpoint answered HTTP {status} and retries ran out.",
            "Retry later; if it persists, check the authority in settings.endpoints (or the "
            "cloud) and the Azure status page.",
            text,
        )
    if any(word in text.lower() for word in ("json", "attribute", "expecting value", "keyerror", "not subscriptable")):
        content = text.split("Content:", 1)[1].strip() if "Content:" in text else None
        return malformed_answer(
            "Entra ID token endpoint",
            None,
            content,
            f"an answer that is not a token response ({text.split('Content:', 1)[0].strip()})",
        ).with_detail(text)
    return None


def classify(exc: BaseException, endpoint: str | None = None) -> Problem:
    """`endpoint`: the endpoint the call was made to, named in messages about reaching it."""
    text = _message(exc)
    if isinstance(exc, (DecodeError, DeserializationError)):
        return malformed_answer(
            _request_of(exc), status_code(exc), _response_text(exc), "a body that could not be read as the API's JSON"
        ).with_detail(text)
    match = re.search(r"AADSTS(\d+)", text)
    if match and match.group(1) in _AADSTS:
        code, cause, fix = _AADSTS[match.group(1)]
        return Problem(code, cause, fix, text)
    if (
        isinstance(exc, ValueError) and "authority" in text.lower()
    ) or "unable to get authority configuration" in text.lower():
        # MSAL raises ValueError when the tenant's OpenID configuration answers 400 (unknown tenant);
        # azure-identity wraps it in ClientAuthenticationError ("Unable to get authority configuration").
        code, cause, fix = _AADSTS["90002"]
        return Problem(code, cause, fix, text)
    token_problem = _token_endpoint_problem(exc, text)
    if token_problem is not None:
        return token_problem
    status = status_code(exc)
    if status is None:
        unreachable = _unreachable(exc, endpoint)
        if unreachable is not None:
            return unreachable
    azure_code = error_code(exc) or ""
    if azure_code == "InvalidAuthenticationTokenTenant":
        return Problem(
            ProblemCode.WRONG_TENANT,
            "The subscription belongs to another Entra ID tenant than the "
            "credential (InvalidAuthenticationTokenTenant).",
            "Use the Directory (tenant) ID of the subscription's tenant, with a service principal "
            "registered in that tenant, and reconnect with `doow-azure connect`.",
            text,
        )
    if azure_code == "AuthorizationFailed" or status == 403:
        return Problem(
            ProblemCode.MISSING_ROLE,
            "The service principal is not allowed to read this scope's Azure Monitor data (AuthorizationFailed).",
            ROLE_FIX,
            text,
        )
    if azure_code in ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound") or status == 404:
        return Problem(
            ProblemCode.NOT_FOUND,
            "The scope does not exist or the principal cannot see it.",
            "Check the subscription id, resource group and account name in the scope.",
            text,
        )
    if status in (429, 529):
        return Problem(
            ProblemCode.THROTTLED,
            "Azure throttled the requests and retries ran out.",
            "Lower settings.concurrency or sync fewer days per run; the next run resumes.",
            text,
        )
    if isinstance(exc, ClientAuthenticationError) and status == 401:
        return Problem(ProblemCode.TOKEN_REFUSED, "Azure refused the access token (401).", ROLE_FIX, text)
    if isinstance(exc, HttpResponseError) and status is not None:
        return Problem(
            ProblemCode.AZURE_ERROR,
            f"Azure answered HTTP {status} ({azure_code or 'no code'}).",
            "Retry later; if it persists, check the Azure status page.",
            text,
        )
    unreachable = _unreachable(exc, endpoint)
    if unreachable is not None:
        return unreachable
    return Problem(
        ProblemCode.AZURE_ERROR,
        f"The Azure call failed without an HTTP answer ({type(exc).__name__}).",
        "Retry later; if it persists, run `doow-azure doctor` and check the detail.",
        text,
    )


@contextmanager
def azure_errors(keep: tuple[type[BaseException], ...] = (), endpoint: str | None = None) -> Iterator[None]:
    """Turns SDK exceptions raised inside into `AzureError(classify(exc, endpoint))`; those of a type in `keep`
    pass unchanged (a caller that handles them itself). `endpoint`: where the calls inside go."""
    problem: Problem | None = None
    cause: BaseException | None = None
    try:
        yield
    except keep:
        raise
    except SDK_ERRORS as exc:
        problem, cause = classify(exc, endpoint), exc
    except ValueError as exc:
        # MSAL's authority validation raises ValueError for an unknown tenant; anything else is a bug.
        problem = classify(exc, endpoint)
        if problem.code is not ProblemCode.UNKNOWN_TENANT:
            raise
        cause = exc
    if problem is not None:
        # Raised outside the except block: an SDK exception whose text echoes a secret (a token endpoint that
        # repeats the request) must not travel on as the cause or context, into Dagster's event log.
        chained = cause if cause is not None and not secrets.holds_secret(_chain_text(cause)) else None
        raise AzureError(problem) from chained
