"""The Azure CLI (pip package azure-cli, pinned in client_venvs.py, in a virtualenv of its own) against the
emulator registered as a custom cloud: cloud registration through `{arm}/metadata/endpoints`, service
principal login, account listing, metric definitions and namespaces, and P1D metrics split by dimensions
(api-version 2018-01-01, double-encoded timespan). Values must equal the generator's expected usage.

The first run installs the CLI from PyPI (about a minute; later runs reuse it).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, timedelta
from urllib.parse import unquote

import pytest

from doow_pipeline_tests.azure_emulator import samples
from doow_pipeline_tests.azure_emulator.fixture import run_emulator
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import day_usage
from doow_pipeline_tests.client_venvs import AZURE_CLI_VERSION, ensure_azure_cli

pytestmark = pytest.mark.slow

AOAI_WEU = samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu")
FIRST, LAST = date(2026, 11, 16), date(2026, 11, 18)  # three complete days before the frozen now (11-20)


class Az:
    def __init__(self, exe, env):
        self.exe, self.env = exe, env

    def run(self, *args, check=True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.exe), *args, "--output", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"az {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def json(self, *args):
        return json.loads(self.run(*args).stdout or "null")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    exe = ensure_azure_cli()
    state = tmp_path_factory.mktemp("emulator-cli")
    scenario = samples.small_scenario()
    with run_emulator(scenario, state_dir=state / "emulator") as emu:
        config = state / "azure-config"
        config.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSAL_", "ARM_"))}
        env.update(
            {
                "AZURE_CONFIG_DIR": str(config),  # never the user's ~/.azure
                "REQUESTS_CA_BUNDLE": emu.ca_cert,  # requests (ARM clients, MSAL) trust the test CA
                "SSL_CERT_FILE": emu.ca_cert,
                "AZURE_CORE_INSTANCE_DISCOVERY": "false",  # MSAL must not ask login.microsoftonline.com
                "AZURE_CORE_COLLECT_TELEMETRY": "false",
                "AZURE_CORE_NO_COLOR": "true",
                "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
                "AZURE_CORE_SURVEY_MESSAGE": "false",
                "AZURE_CORE_LOGIN_EXPERIENCE_V2": "off",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        az = Az(exe, env)
        az.run("cloud", "register", "--name", "DoowEmulator", "--endpoint-resource-manager", emu.arm)
        az.run("cloud", "set", "--name", "DoowEmulator")
        login = az.json(
            "login",
            "--service-principal",
            "--username",
            samples.MAIN_CLIENT,
            "--password",
            samples.MAIN_SECRET,
            "--tenant",
            samples.TENANT,
        )
        yield az, emu, scenario_from_dict(scenario), login


def test_cli_version_is_the_pinned_one(cli):
    az, *_ = cli
    assert az.json("version")["azure-cli"] == AZURE_CLI_VERSION


def test_cloud_registration_reads_the_metadata_endpoint(cli):
    az, emu, _scenario, _login = cli
    cloud = az.json("cloud", "show", "--name", "DoowEmulator")
    assert cloud["isActive"] is True
    assert cloud["endpoints"]["activeDirectory"].rstrip("/") == emu.authority
    assert cloud["endpoints"]["resourceManager"].rstrip("/") == emu.arm
    assert cloud["endpoints"]["activeDirectoryResourceId"] == "https://management.core.windows.net/"
    metadata = [e for e in emu.requests(kind="metadata")]
    assert metadata and metadata[0]["path"] == "/metadata/endpoints" and metadata[0]["status"] == 200
    assert metadata[0]["query"]["api-version"] == "2022-09-01"


def test_login_and_account_list_show_the_principals_subscriptions(cli):
    az, emu, _scenario, login = cli
    expected = {samples.SUB_A: "Contoso Prod", samples.SUB_B: "Contoso Dev"}
    assert {s["id"]: s["name"] for s in login} == expected
    accounts = az.json("account", "list")
    assert {s["id"]: s["name"] for s in accounts} == expected
    assert all(
        s["tenantId"] == samples.TENANT and s["user"] == {"name": samples.MAIN_CLIENT, "type": "servicePrincipal"}
        for s in accounts
    )
    tokens = [e for e in emu.requests(kind="token") if e["status"] == 200]
    assert tokens and all(e["tenant"] == samples.TENANT for e in tokens)


def test_cognitiveservices_account_list_pages_through_all_accounts(cli):
    az, emu, _scenario, _login = cli
    accounts = az.json("cognitiveservices", "account", "list", "--subscription", samples.SUB_A)
    assert {(a["name"], a["kind"], a["location"]) for a in accounts} == {
        ("aoai-weu", "OpenAI", "westeurope"),
        ("foundry-weu", "AIServices", "westeurope"),
        ("aoai-sec", "OpenAI", "westeurope"),
        ("speech-1", "SpeechServices", "westeurope"),
        ("aoai-eus", "OpenAI", "eastus"),
    }
    pages = [e for e in emu.requests(kind="accounts") if f"/subscriptions/{samples.SUB_A}/" in e["path"]]
    assert len(pages) >= 3  # page size 2: the CLI followed nextLink


def test_list_definitions_show_model_name_on_the_request_metric_only(cli):
    az, emu, _scenario, _login = cli
    definitions = {
        d["name"]["value"]: d for d in az.json("monitor", "metrics", "list-definitions", "--resource", AOAI_WEU)
    }
    assert {
        "ProcessedPromptTokens",
        "GeneratedTokens",
        "TokenTransaction",
        "AzureOpenAIRequests",
        "InputTokens",
        "OutputTokens",
        "TotalTokens",
        "ModelRequests",
    } == set(definitions)
    dims = {name: {d["value"] for d in definition["dimensions"]} for name, definition in definitions.items()}
    assert {"ModelDeploymentName", "ModelName", "ModelVersion"} <= dims["AzureOpenAIRequests"]
    assert "ModelName" not in dims["ProcessedPromptTokens"] and "ModelVersion" in dims["ProcessedPromptTokens"]
    assert definitions["TokenTransaction"]["primaryAggregationType"] == "Total"
    calls = emu.requests(kind="definitions")
    assert calls and calls[-1]["query"]["api-version"] == "2018-01-01" and calls[-1]["status"] == 200


def test_list_namespaces(cli):
    az, emu, _scenario, _login = cli
    namespaces = az.json("monitor", "metrics", "list-namespaces", "--resource", AOAI_WEU)
    assert [(n["properties"]["metricNamespaceName"], n["classification"]) for n in namespaces] == [
        ("microsoft.cognitiveservices/accounts", "Platform")
    ]


def _expected(scenario, deployment_names, quantity_index, version_of=None):
    account = scenario.account(AOAI_WEU)
    out = {}
    for dep in account.deployments:
        if dep.name not in deployment_names:
            continue
        day = FIRST
        while day <= LAST:
            out[(dep.name, dep.model if version_of is None else dep.version_on(day), day.isoformat())] = day_usage(
                scenario.seed, account, dep, day
            )[quantity_index]
            day += timedelta(days=1)
    return out


def _series(result, *dims):
    (metric,) = result["value"]
    assert metric["errorCode"] == "Success"
    got = {}
    for ts in metric["timeseries"]:
        meta = {m["name"]["value"]: m["value"] for m in ts["metadatavalues"]}
        for point in ts["data"]:
            got[(*(meta[d] for d in dims), point["timeStamp"][:10])] = point.get("total", 0)
    return got


def test_p1d_requests_split_by_deployment_and_model_name(cli):
    az, emu, scenario, _login = cli
    emu.clear_requests()
    result = az.json(
        "monitor",
        "metrics",
        "list",
        "--resource",
        AOAI_WEU,
        "--metrics",
        "AzureOpenAIRequests",
        "--aggregation",
        "Total",
        "--interval",
        "P1D",
        "--start-time",
        f"{FIRST}T00:00:00Z",
        "--end-time",
        f"{LAST + timedelta(days=1)}T00:00:00Z",
        "--dimension",
        "ModelDeploymentName",
        "ModelName",
        "--top",
        "100",
    )
    assert result["interval"] == "P1D"
    assert result["timespan"] == f"{FIRST}T00:00:00Z/{LAST + timedelta(days=1)}T00:00:00Z"
    assert result["cost"] == 3 * 1440 - 1
    assert result["namespace"] == "Microsoft.CognitiveServices/accounts"  # 2018-01-01, no --namespace sent
    assert _series(result, "modeldeploymentname", "modelname") == _expected(scenario, {"gpt-4o-prod", "mini"}, 2)
    (call,) = emu.requests(kind="metrics")
    assert call["status"] == 200 and call["query"]["api-version"] == "2018-01-01"
    # The CLI quotes the timespan itself before the query is encoded: one decode still leaves %3A.
    assert "%3A" in call["query"]["timespan"]
    assert unquote(call["query"]["timespan"]).startswith(f"{FIRST}T00:00:00")


def test_p1d_prompt_tokens_with_a_filter_and_a_version_split(cli):
    az, _emu, scenario, _login = cli
    result = az.json(
        "monitor",
        "metrics",
        "list",
        "--resource",
        AOAI_WEU,
        "--metrics",
        "ProcessedPromptTokens",
        "--aggregation",
        "Total",
        "--interval",
        "P1D",
        "--start-time",
        f"{FIRST}T00:00:00Z",
        "--end-time",
        f"{LAST + timedelta(days=1)}T00:00:00Z",
        "--filter",
        "ModelDeploymentName eq 'mini' and ModelVersion eq '*'",
    )
    assert _series(result, "modeldeploymentname", "modelversion") == _expected(scenario, {"mini"}, 0, version_of=True)


def test_legacy_token_metric_refuses_a_model_name_split(cli):
    az, *_ = cli
    result = az.run(
        "monitor",
        "metrics",
        "list",
        "--resource",
        AOAI_WEU,
        "--metrics",
        "GeneratedTokens",
        "--interval",
        "P1D",
        "--start-time",
        f"{FIRST}T00:00:00Z",
        "--dimension",
        "ModelName",
        check=False,
    )
    assert result.returncode != 0
    assert "does not support requested dimension combination" in result.stderr
