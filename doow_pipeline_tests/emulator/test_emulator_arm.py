"""ARM through the real management SDKs: subscriptions, paged account lists, accounts, deployments,
metric definitions, RBAC (403 AuthorizationFailed, 404 texts) and forbidden writes."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from doow_pipeline_tests.azure_emulator import samples as S
from doow_pipeline_tests.azure_emulator.auth import object_id
from doow_pipeline_tests.azure_emulator.harness import run_emulator

ARM_SCOPE = "https://management.azure.com/.default"
WEU = S.account_id(S.SUB_A, "rg-ai", "aoai-weu")
SEC = S.account_id(S.SUB_A, "rg-ai", "aoai-sec")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(S.small_scenario(), state_dir=tmp_path_factory.mktemp("emu-arm")) as running:
        yield running


@pytest.fixture(scope="module")
def main(emu):
    return emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)


def _raw(emu, method, url, token, data=None):
    request = urllib.request.Request(
        url if url.startswith("https") else emu.arm + url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=emu.ca_cert)
    try:
        with urllib.request.urlopen(request, context=context) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def test_subscriptions_lists_only_those_with_an_assignment(emu, main):
    token = main.get_token(ARM_SCOPE).token
    status, headers, body = _raw(emu, "GET", "/subscriptions?api-version=2022-12-01", token)
    assert status == 200
    assert [s["subscriptionId"] for s in body["value"]] == [S.SUB_A, S.SUB_B]
    assert body["value"][0]["displayName"] == "Contoso Prod" and body["value"][0]["tenantId"] == S.TENANT
    assert int(headers["x-ms-ratelimit-remaining-tenant-reads"]) < 250
    rg_only = emu.credential(S.TENANT, S.RG_CLIENT, S.RG_SECRET).get_token(ARM_SCOPE).token
    _s, _h, body = _raw(emu, "GET", "/subscriptions?api-version=2022-12-01", rg_only)
    assert [s["subscriptionId"] for s in body["value"]] == [S.SUB_A]


def test_accounts_are_paged_with_absolute_next_links_and_include_other_kinds(emu, main):
    client = emu.cognitive_client(main, S.SUB_A, retry_total=1)
    accounts = list(client.accounts.list())
    assert [(a.name, a.kind, a.location) for a in accounts] == [
        ("aoai-weu", "OpenAI", "westeurope"),
        ("foundry-weu", "AIServices", "westeurope"),
        ("aoai-sec", "OpenAI", "westeurope"),
        ("speech-1", "SpeechServices", "westeurope"),
        ("aoai-eus", "OpenAI", "eastus"),
    ]
    pages = [
        r
        for r in emu.requests("accounts")
        if r["path"].endswith(f"{S.SUB_A}/providers/Microsoft.CognitiveServices/accounts")
    ]
    assert len(pages) >= 3 and any("$skipToken" in r["query"] for r in pages)
    token = main.get_token(ARM_SCOPE).token
    _s, _h, first = _raw(
        emu,
        "GET",
        f"/subscriptions/{S.SUB_A}/providers/Microsoft.CognitiveServices/accounts?api-version=2024-10-01",
        token,
    )
    assert len(first["value"]) == 2
    assert first["nextLink"].startswith(emu.arm + "/subscriptions/") and "api-version=2024-10-01" in first["nextLink"]
    assert "$skipToken=" in first["nextLink"]
    by_rg = [a.name for a in client.accounts.list_by_resource_group("rg-ai")]
    assert by_rg == ["aoai-weu", "foundry-weu", "aoai-sec", "speech-1"]


def test_resource_group_principal_sees_only_its_group(emu):
    cred = emu.credential(S.TENANT, S.RG_CLIENT, S.RG_SECRET)
    client = emu.cognitive_client(cred, S.SUB_A, retry_total=1)
    assert [a.name for a in client.accounts.list()] == ["aoai-weu", "foundry-weu", "aoai-sec", "speech-1"]
    with pytest.raises(HttpResponseError) as err:
        list(client.accounts.list_by_resource_group("rg-us"))
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    other = emu.cognitive_client(cred, S.SUB_B, retry_total=1)
    with pytest.raises(HttpResponseError) as err:
        list(other.accounts.list())
    assert err.value.status_code == 403
    assert f"over scope '/subscriptions/{S.SUB_B}'" in err.value.message


def test_get_account_deployments_and_not_found_texts(emu, main):
    client = emu.cognitive_client(main, S.SUB_A, retry_total=1)
    account = client.accounts.get("rg-ai", "aoai-weu")
    assert account.id == WEU and account.kind == "OpenAI" and account.properties.endpoint.startswith("https://")
    deployments = {
        d.name: (d.properties.model.name, d.properties.model.version)
        for d in client.deployments.list("rg-ai", "aoai-weu")
    }
    assert deployments == {"gpt-4o-prod": ("gpt-4o", "2024-11-20"), "mini": ("gpt-4o-mini", "2024-07-18")}
    with pytest.raises(ResourceNotFoundError) as err:
        client.accounts.get("rg-ai", "nope")
    assert err.value.error.code == "ResourceNotFound"
    assert err.value.error.message == (
        "The Resource 'Microsoft.CognitiveServices/accounts/nope' under resource "
        "group 'rg-ai' was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix"
    )
    with pytest.raises(ResourceNotFoundError) as err:
        client.accounts.get("rg-missing", "nope")
    assert err.value.error.code == "ResourceGroupNotFound"
    assert err.value.error.message == "Resource group 'rg-missing' could not be found."


def test_metric_definitions_list_exactly_the_account_families(emu, main):
    monitor = emu.monitor_client(main, S.SUB_A, retry_total=1)
    defs = list(monitor.metric_definitions.list(WEU, metricnamespace="Microsoft.CognitiveServices/accounts"))
    assert [d.name.value for d in defs] == [
        "ProcessedPromptTokens",
        "GeneratedTokens",
        "TokenTransaction",
        "AzureOpenAIRequests",
        "InputTokens",
        "OutputTokens",
        "TotalTokens",
        "ModelRequests",
    ]
    prompt = defs[0]
    assert prompt.id == WEU + "/providers/microsoft.insights/metricdefinitions/ProcessedPromptTokens"
    assert prompt.primary_aggregation_type == "Total" and prompt.supported_aggregation_types == ["Total"]
    assert [(a.time_grain, a.retention) for a in prompt.metric_availabilities] == [
        (timedelta(minutes=m), timedelta(days=93)) for m in (1, 5, 15, 30, 60, 360, 720, 1440)
    ]
    assert "ModelName" not in [d.value for d in prompt.dimensions]
    assert "ModelName" in [d.value for d in defs[4].dimensions]
    foundry = list(monitor.metric_definitions.list(S.account_id(S.SUB_A, "rg-ai", "foundry-weu")))
    assert [d.name.value for d in foundry] == ["InputTokens", "OutputTokens", "TotalTokens", "ModelRequests"]


def test_metrics_on_an_uncovered_resource_are_authorization_failed(emu):
    cred = emu.credential(S.TENANT, S.LIST_CLIENT, S.LIST_SECRET)
    client = emu.cognitive_client(cred, S.SUB_A, retry_total=1)
    assert [a.name for a in client.accounts.list()] == ["aoai-weu", "aoai-sec"]
    monitor = emu.monitor_client(cred, S.SUB_A, retry_total=1)
    assert list(monitor.metric_definitions.list(WEU))
    with pytest.raises(HttpResponseError) as err:
        monitor.metrics.list(SEC, metricnames="TokenTransaction", timespan="P1D")
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    assert err.value.error.message == (
        f"The client '{S.LIST_CLIENT}' with object id '{object_id(S.LIST_CLIENT)}' does not have authorization to "
        f"perform action 'microsoft.insights/metrics/read' over scope '{SEC}/providers/microsoft.insights' or the "
        "scope is invalid. If access was recently granted, please refresh your credentials."
    )
    with pytest.raises(HttpResponseError) as err:
        list(monitor.metric_definitions.list(SEC))
    assert "microsoft.insights/metricDefinitions/read" in err.value.message


def test_unsupported_api_version_is_rejected(emu, main):
    monitor = emu.monitor_client(main, S.SUB_A, retry_total=1)
    with pytest.raises(HttpResponseError) as err:
        monitor.metrics.list(WEU, metricnames="TokenTransaction", timespan="P1D", api_version="2019-07-01")
    assert err.value.status_code == 400 and err.value.error.code == "NoRegisteredProviderFound"
    assert "API version '2019-07-01' for type 'metrics'" in err.value.message
    ok = monitor.metrics.list(WEU, metricnames="TokenTransaction", timespan="P1D", api_version="2023-10-01")
    assert ok.namespace == "microsoft.cognitiveservices/accounts"


def test_writes_and_list_keys_are_forbidden_and_flagged(emu, main):
    client = emu.cognitive_client(main, S.SUB_A, retry_total=0)
    emu.clear_requests()
    with pytest.raises(HttpResponseError) as err:
        client.accounts.list_keys("rg-ai", "aoai-weu")
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.CognitiveServices/accounts/listKeys/action'" in err.value.message
    assert f"over scope '{WEU}'" in err.value.message
    token = main.get_token(ARM_SCOPE).token
    for method in ("PUT", "PATCH", "DELETE"):
        status, _h, body = _raw(emu, method, WEU + "?api-version=2024-10-01", token, data=b"{}")
        assert status == 403 and body["error"]["code"] == "AuthorizationFailed"
        verb = "delete" if method == "DELETE" else "write"
        assert f"'Microsoft.CognitiveServices/accounts/{verb}'" in body["error"]["message"]
    log = emu.requests()
    assert [
        (r["method"], r["status"], r["kind"], r["forbidden"]) for r in log if r["kind"] not in ("token", "openid")
    ] == [
        ("POST", 403, "write", True),
        ("PUT", 403, "write", True),
        ("PATCH", 403, "write", True),
        ("DELETE", 403, "write", True),
    ]
    assert not any(r["forbidden"] for r in log if r["kind"] == "token")
