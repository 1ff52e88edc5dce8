"""azure-monitor-query 1.4 (a client nobody on this project wrote; dev dependency) against the emulator:
ClientSecretCredential login, MetricsQueryClient metric definitions, namespaces and P1D metrics with
dimension splits on the per-resource API, and its MetricsClient on getBatch. Values must equal the
generator's expected usage."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.monitor.query import MetricAggregationType, MetricsClient, MetricsQueryClient

from doow_pipeline_tests.azure_emulator import samples
from doow_pipeline_tests.azure_emulator.fixture import run_emulator
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import day_usage

AOAI_WEU = samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu")
FOUNDRY_WEU = samples.account_id(samples.SUB_A, "rg-ai", "foundry-weu")
NAMESPACE = "Microsoft.CognitiveServices/accounts"
FIRST, LAST = date(2026, 11, 16), date(2026, 11, 18)
START = datetime.combine(FIRST, time(0), tzinfo=UTC)
END = datetime.combine(LAST + timedelta(days=1), time(0), tzinfo=UTC)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    raw = samples.small_scenario()
    with run_emulator(raw, state_dir=tmp_path_factory.mktemp("emulator-amq")) as emu:
        credential = emu.credential(samples.TENANT, samples.MAIN_CLIENT, samples.MAIN_SECRET)
        # The scope comes from the endpoint unless the audience is given (Entra refuses 127.0.0.1 as a resource).
        client = MetricsQueryClient(
            credential,
            endpoint=emu.arm,
            audience="https://management.azure.com",
            connection_verify=emu.ca_cert,
            retry_total=0,
        )
        yield emu, client, credential, scenario_from_dict(raw)


def _expected(scenario, account_id, quantity_index, key):
    account = scenario.account(account_id)
    out = {}
    for dep in account.deployments:
        day = FIRST
        while day <= LAST:
            usage = day_usage(scenario.seed, account, dep, day)
            out[(*key(dep, day), day.isoformat())] = usage[quantity_index]
            day += timedelta(days=1)
    return out


def _points(metric, *dims):
    got = {}
    for ts in metric.timeseries:
        for point in ts.data:
            got[(*(ts.metadata_values[d] for d in dims), point.timestamp.date().isoformat())] = point.total or 0
    return got


def test_metric_definitions_carry_model_name_on_the_request_metric(running):
    emu, client, _cred, _scenario = running
    definitions = {d.name: d for d in client.list_metric_definitions(AOAI_WEU, namespace=NAMESPACE)}
    assert set(definitions) >= {"ProcessedPromptTokens", "AzureOpenAIRequests", "InputTokens"}
    assert {"ModelDeploymentName", "ModelName", "ModelVersion"} <= set(definitions["AzureOpenAIRequests"].dimensions)
    assert "ModelName" not in definitions["ProcessedPromptTokens"].dimensions
    assert definitions["AzureOpenAIRequests"].namespace == NAMESPACE
    assert definitions["AzureOpenAIRequests"].primary_aggregation_type == MetricAggregationType.TOTAL


def test_metric_namespaces(running):
    _emu, client, _cred, _scenario = running
    namespaces = list(client.list_metric_namespaces(AOAI_WEU))
    assert [n.fully_qualified_namespace for n in namespaces] == ["microsoft.cognitiveservices/accounts"]


def test_p1d_requests_split_by_deployment_model_name_and_version(running):
    emu, client, _cred, scenario = running
    emu.clear_requests()
    result = client.query_resource(
        AOAI_WEU,
        ["AzureOpenAIRequests"],
        timespan=(START, END),
        granularity=timedelta(days=1),
        aggregations=[MetricAggregationType.TOTAL],
        metric_namespace=NAMESPACE,
        max_results=100,
        filter="ModelDeploymentName eq '*' and ModelName eq '*' and ModelVersion eq '*'",
    )
    assert result.granularity == timedelta(days=1)
    assert result.cost == 3 * 1440 - 1
    (metric,) = result.metrics
    got = _points(metric, "modeldeploymentname", "modelname", "modelversion")
    assert got == _expected(scenario, AOAI_WEU, 2, lambda d, day: (d.name, d.model, d.version_on(day)))
    (call,) = emu.requests(kind="metrics")
    assert call["status"] == 200 and call["query"]["api-version"] == "2024-02-01"  # what 1.4.1 sends


def test_p1d_models_family_tokens_on_a_foundry_account(running):
    _emu, client, _cred, scenario = running
    result = client.query_resource(
        FOUNDRY_WEU,
        ["InputTokens", "OutputTokens"],
        timespan=(START, END),
        granularity=timedelta(days=1),
        aggregations=[MetricAggregationType.TOTAL],
        metric_namespace=NAMESPACE,
        max_results=100,
        filter="ModelDeploymentName eq '*' and ModelName eq '*'",
    )
    assert result.cost == 2 * (3 * 1440 - 1)
    by_name = {m.name: m for m in result.metrics}
    key = lambda d, day: (d.name, d.model)  # noqa: E731
    for name, index in (("InputTokens", 0), ("OutputTokens", 1)):
        expected = _expected(scenario, FOUNDRY_WEU, index, key)
        assert _points(by_name[name], "modeldeploymentname", "modelname") == expected


def test_an_unsupported_split_is_a_400(running):
    _emu, client, _cred, _scenario = running
    with pytest.raises(HttpResponseError) as info:
        client.query_resource(
            AOAI_WEU,
            ["TokenTransaction"],
            timespan=(START, END),
            granularity=timedelta(days=1),
            filter="ModelName eq '*'",
        )
    assert info.value.status_code == 400
    assert "does not support requested dimension combination" in str(info.value)


def test_batch_client_of_the_same_package(running):
    emu, _client, credential, scenario = running
    batch = MetricsClient(emu.metrics_endpoint("westeurope"), credential, connection_verify=emu.ca_cert, retry_total=0)
    results = batch.query_resources(
        resource_ids=[AOAI_WEU],
        metric_namespace=NAMESPACE,
        metric_names=["AzureOpenAIRequests"],
        timespan=(START, END),
        granularity=timedelta(days=1),
        aggregations=[MetricAggregationType.TOTAL],
        filter="ModelDeploymentName eq '*' and ModelName eq '*'",
        max_results=100,
    )
    (result,) = results
    assert result.namespace == "microsoft.cognitiveservices/accounts"
    (metric,) = result.metrics
    assert _points(metric, "modeldeploymentname", "modelname") == _expected(
        scenario, AOAI_WEU, 2, lambda d, day: (d.name, d.model)
    )
