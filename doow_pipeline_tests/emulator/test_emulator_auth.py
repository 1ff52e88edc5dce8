"""Entra ID and token checks through the real SDKs over HTTPS: each failure surfaces as the SDK's own
exception carrying Azure's code and text."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from azure.core.exceptions import ClientAuthenticationError

from doow_pipeline_tests.azure_emulator import samples as S
from doow_pipeline_tests.azure_emulator.harness import run_emulator

ARM_SCOPE = "https://management.azure.com/.default"
ACCOUNT = S.account_id(S.SUB_A, "rg-ai", "aoai-weu")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(S.small_scenario(), state_dir=tmp_path_factory.mktemp("emu-auth")) as running:
        yield running


def _raw(emu, method, path, token=None, data=None):
    request = urllib.request.Request(
        emu.arm + path, data=data, method=method, headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    context = ssl.create_default_context(cafile=emu.ca_cert)
    try:
        with urllib.request.urlopen(request, context=context) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def test_token_is_jwt_shaped_with_tenant_client_audience_expiry(emu):
    cred = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)
    token = cred.get_token(ARM_SCOPE)
    header, claims, _sig = token.token.split(".")
    import base64

    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["tid"] == S.TENANT and decoded["appid"] == S.MAIN_CLIENT == decoded["azp"]
    assert decoded["aud"] == "https://management.azure.com"
    assert decoded["exp"] - decoded["iat"] == 3599
    assert decoded["oid"] != S.MAIN_CLIENT  # the service principal's object id differs from its appId


@pytest.mark.parametrize(
    "tenant, client, secret, status, code, text",
    [
        (S.TENANT, S.MAIN_CLIENT, "wrong-secret", 401, "AADSTS7000215", "Invalid client secret provided."),
        (
            S.TENANT,
            S.EXPIRED_CLIENT,
            S.EXPIRED_SECRET,
            401,
            "AADSTS7000222",
            f"The provided client secret keys for app '{S.EXPIRED_CLIENT}' are expired.",
        ),
        (
            S.TENANT,
            "99999999-9999-4999-8999-999999999999",
            "x",
            400,
            "AADSTS700016",
            "Application with identifier '99999999-9999-4999-8999-999999999999' was not found in the directory",
        ),
    ],
)
def test_token_errors_surface_as_client_authentication_error(emu, tenant, client, secret, status, code, text):
    cred = emu.credential(tenant, client, secret)
    with pytest.raises(ClientAuthenticationError) as err:
        cred.get_token(ARM_SCOPE)
    assert code in str(err.value) and text in str(err.value)
    token_calls = [r for r in emu.requests("token") if r["principal"] == client]
    assert token_calls[-1]["status"] == status


def test_unknown_tenant_fails_at_openid_configuration(emu):
    unknown = "33333333-3333-4333-8333-333333333333"
    cred = emu.credential(unknown, S.MAIN_CLIENT, S.MAIN_SECRET)
    with pytest.raises((ClientAuthenticationError, ValueError)):
        cred.get_token(ARM_SCOPE)
    status, _headers, body = _raw(emu, "GET", f"/{unknown}/v2.0/.well-known/openid-configuration")
    assert status == 400 and body["error"] == "invalid_tenant" and body["error_codes"] == [90002]
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{unknown}' not found.")
    openid = [r for r in emu.requests("openid") if unknown in r["path"]]
    assert openid and openid[-1]["status"] == 400


def test_arm_rejects_missing_and_forged_tokens(emu):
    status, headers, body = _raw(emu, "GET", "/subscriptions?api-version=2022-12-01")
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    assert headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    token = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET).get_token(ARM_SCOPE).token
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    status, _h, body = _raw(emu, "GET", "/subscriptions?api-version=2022-12-01", forged)
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_wrong_audience_is_invalid_authentication_token_audience(emu):
    cred = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)
    monitor = emu.monitor_client(
        cred, S.SUB_A, credential_scopes=["https://metrics.monitor.azure.com/.default"], retry_total=0
    )
    with pytest.raises(ClientAuthenticationError) as err:
        list(monitor.metric_definitions.list(ACCOUNT))
    assert "InvalidAuthenticationTokenAudience" in str(err.value)
    assert "wrong audience or resource 'https://metrics.monitor.azure.com'" in str(err.value)
    batch = emu.metrics_client(cred, "westeurope", audience="https://management.azure.com", retry_total=0)
    with pytest.raises(ClientAuthenticationError) as err:
        batch.query_resources(
            resource_ids=[ACCOUNT],
            metric_namespace="Microsoft.CognitiveServices/accounts",
            metric_names=["InputTokens"],
        )
    assert "InvalidAuthenticationTokenAudience" in str(err.value)


def test_expired_token_is_expired_authentication_token(emu):
    cred = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)
    monitor = emu.monitor_client(cred, S.SUB_A, retry_total=0)
    assert list(monitor.metric_definitions.list(ACCOUNT))
    try:
        emu.advance_clock(2 * 3600)
        with pytest.raises(ClientAuthenticationError) as err:
            list(monitor.metric_definitions.list(ACCOUNT))
        assert "ExpiredAuthenticationToken" in str(err.value)
        assert "is earlier than current UTC time" in str(err.value)
    finally:
        emu.set_clock(S.NOW)


def test_request_log_redacts_secrets_and_tokens(emu):
    emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET).get_token(ARM_SCOPE)
    with pytest.raises(ClientAuthenticationError):
        emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET + "-typo").get_token(ARM_SCOPE)
    token = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET).get_token(ARM_SCOPE).token
    # a client that leaks the secret and the token into a URL still does not get them logged
    _raw(emu, "GET", f"/subscriptions?api-version=2022-12-01&client_secret={S.MAIN_SECRET}&x={token}", token)
    _raw(emu, "GET", f"/subscriptions/{S.MAIN_SECRET}?api-version=2022-12-01", token)
    log = json.dumps(emu.requests())
    assert S.MAIN_SECRET not in log and token not in log and S.MAIN_SECRET[:12] not in log
    assert "***REDACTED***" in log
    tokens = emu.requests("token")
    assert all(r["principal"] == S.MAIN_CLIENT for r in tokens[-3:])
