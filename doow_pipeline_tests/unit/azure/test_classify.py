"""classify() over a table of Azure's real error answers (bodies as Azure sends them), raised the way the SDKs
raise them: azure-core's exceptions around azure-core's own requests-transport response."""

from __future__ import annotations

import json
import ssl

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransportResponse
from azure.core.rest import HttpRequest

from doow_pipeline.azure.errors import classify, error_code, wire_error_code
from doow_pipeline.core.problems import ProblemCode

PRINCIPAL = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e501"
SUB = "3b6e1c2a-5d4f-4a8b-9c7e-0f1a2b3c4d01"


def response(status: int, body: object) -> RequestsTransportResponse:
    raw = requests.Response()
    raw.status_code = status
    raw._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    raw.headers["Content-Type"] = "application/json"
    return RequestsTransportResponse(HttpRequest("GET", "https://management.azure.com/x"), raw)


def http_error(status: int, body: object, kind: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    return kind(response=response(status, body))


AADSTS = (
    "Authentication failed: AADSTS{code}: {text} Trace ID: 4a8c0818 Correlation ID: 021b0d9d "
    "Timestamp: 2026-11-20 06:00:00Z"
)
CASES = {
    "wrong secret": (
        ClientAuthenticationError(
            AADSTS.format(
                code=7000215,
                text="Invalid client secret provided. Ensure the secret being sent in the request is the client "
                "secret value, not the client secret ID",
            )
        ),
        ProblemCode.WRONG_SECRET,
    ),
    "expired secret": (
        ClientAuthenticationError(
            AADSTS.format(code=7000222, text="The provided client secret keys for app '...' are expired.")
        ),
        ProblemCode.EXPIRED_SECRET,
    ),
    "unknown app": (
        ClientAuthenticationError(
            AADSTS.format(
                code=700016, text="Application with identifier '...' was not found in the directory 'contoso'."
            )
        ),
        ProblemCode.UNKNOWN_APP,
    ),
    "unknown tenant (MSAL authority)": (
        ValueError(
            "Unable to get authority configuration for https://login.microsoftonline.com/0000. Authority "
            "would typically "
            "be in a format of https://login.microsoftonline.com/your_tenant"
        ),
        ProblemCode.UNKNOWN_TENANT,
    ),
    "no role (ARM 403)": (
        http_error(
            403,
            {
                "error": {
                    "code": "AuthorizationFailed",
                    "message": (
                        f"The client '{PRINCIPAL}' with object id '{PRINCIPAL}' does not have authorization "
                        "to perform action "
                        "'microsoft.insights/metrics/read' over scope "
                        f"'/subscriptions/{SUB}/resourceGroups/rg' or the scope is "
                        "invalid. If access was recently granted, please refresh your credentials."
                    ),
                }
            },
        ),
        ProblemCode.MISSING_ROLE,
    ),
    "other tenant (ARM 401)": (
        http_error(
            401,
            {
                "error": {
                    "code": "InvalidAuthenticationTokenTenant",
                    "message": (
                        "The access token is from the wrong issuer 'https://sts.windows.net/.../'. It must "
                        "match the tenant "
                        "'https://sts.windows.net/.../' associated with this subscription."
                    ),
                }
            },
            ClientAuthenticationError,
        ),
        ProblemCode.WRONG_TENANT,
    ),
    "token refused (ARM 401)": (
        http_error(
            401,
            {"error": {"code": "InvalidAuthenticationToken", "message": ("The access token is invalid.")}},
            ClientAuthenticationError,
        ),
        ProblemCode.TOKEN_REFUSED,
    ),
    "resource group not found (404)": (
        http_error(
            404,
            {
                "error": {
                    "code": "ResourceGroupNotFound",
                    "message": ("Resource group 'rg-missing' could not be found."),
                }
            },
        ),
        ProblemCode.NOT_FOUND,
    ),
    "throttled (429)": (
        http_error(
            429,
            {
                "error": {
                    "code": "TooManyRequests",
                    "message": (
                        "The request is being throttled as the limit has been reached for operation type - "
                        "Read_ObservationWindow_"
                        "00:05:00."
                    ),
                }
            },
        ),
        ProblemCode.THROTTLED,
    ),
    "metrics backend throttled (529)": (
        http_error(529, {"error": {"code": "Throttled", "message": "busy"}}),
        ProblemCode.THROTTLED,
    ),
    "flat 400 from the metrics API": (
        http_error(
            400,
            {
                "code": "BadRequest",
                "message": (
                    "Metric: TokenTransaction does not support requested dimension combination: modelname, "
                    "supported ones "
                    "are: ModelDeploymentName,ModelVersion,Region, TraceId: {00000000}"
                ),
            },
        ),
        ProblemCode.AZURE_ERROR,
    ),
    "wrapped 500 from getBatch": (
        http_error(
            500,
            {
                "error": {
                    "additionalInfo": [
                        {"type": "string", "info": "TraceId=9c4f"},
                        {"type": "string", "info": "ExceptionType=System.ArgumentOutOfRangeException"},
                    ],
                    "code": "InternalServerError",
                    "message": "Detected Internal Error.",
                }
            },
        ),
        ProblemCode.AZURE_ERROR,
    ),
    "connection refused": (
        ServiceRequestError(
            "<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] "
            "Connection refused"
        ),
        ProblemCode.UNREACHABLE,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_azure_errors_map_to_their_problem(name: str) -> None:
    exc, expected = CASES[name]
    problem = classify(exc)
    assert problem.code is expected, (name, problem)
    assert problem.cause and problem.fix
    assert "HTTP None" not in str(problem)


def test_tls_failures_are_unreachable_not_refused_credentials() -> None:
    try:
        raise ssl.SSLCertVerificationError("certificate verify failed: unable to get local issuer certificate")
    except ssl.SSLError as inner:
        try:
            raise ServiceRequestError(
                "HTTPSConnectionPool(host='127.0.0.1', port=8443): Max retries exceeded"
            ) from inner
        except ServiceRequestError as exc:
            problem = classify(exc)
    assert problem.code is ProblemCode.UNREACHABLE
    assert "TLS certificate" in problem.cause and "CA bundle" in problem.fix


def test_status_and_code_come_from_the_wire_body() -> None:
    exc = http_error(400, {"code": "BadRequest", "message": "Invalid time grain duration: PT3M"})
    assert error_code(exc) == "BadRequest"
    assert "HTTP 400 (BadRequest)" in classify(exc).cause
    assert wire_error_code('{"error": {"code": "ExpiredAuthenticationToken"}}') == "ExpiredAuthenticationToken"
    assert wire_error_code("not json") is None
