"""Metrics through the real SDKs (azure-mgmt-monitor per resource, azure-monitor-querymetrics getBatch):
values equal the generator's expected daily usage, and Azure's quirks and 400s are reproduced."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.rest import HttpRequest

from doow_pipeline_tests.azure_emulator import samples as S
from doow_pipeline_tests.azure_emulator.harness import run_emulator
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import expected_daily_usage

UTC = UTC
NS = "Microsoft.CognitiveServices/accounts"
WEU = S.account_id(S.SUB_A, "rg-ai", "aoai-weu")
FOUNDRY = S.account_id(S.SUB_A, "rg-ai", "foundry-weu")
MANY = S.account_id(S.SUB_A, "rg-ai", "aoai-many")
EUS = S.account_id(S.SUB_A, "rg-us", "aoai-eus")
RAW = S.many_deployments_scenario(15)
SCENARIO = scenario_from_dict(RAW)
FAMILY_METRICS = {
    "azure_openai": ("ProcessedPromptTokens", "GeneratedTokens", "TokenTransaction", "AzureOpenAIRequests"),
    "models": ("InputTokens", "OutputTokens", "TotalTokens", "ModelRequests"),
}
QUANTITY = {
    "ProcessedPromptTokens": "input_tokens",
    "GeneratedTokens": "output_tokens",
    "TokenTransaction": "total_tokens",
    "AzureOpenAIRequests": "requests",
    "InputTokens": "input_tokens",
    "OutputTokens": "output_tokens",
    "TotalTokens": "total_tokens",
    "ModelRequests": "requests",
}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(RAW, state_dir=tmp_path_factory.mktemp("emu-metrics")) as running:
        yield running


@pytest.fixture(scope="module")
def main(emu):
    return emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)


@pytest.fixture(scope="module")
def monitor(emu, main):
    return emu.monitor_client(main, S.SUB_A, retry_total=1)


@pytest.fixture(scope="module")
def batch(emu, main):
    return emu.metrics_client(main, "westeurope", retry_total=1)


def _expected(first: date, last: date, resource_ids: set[str]) -> dict:
    """{(resource, family, metric, day, deployment, version, region): value} from the generator."""
    out = {}
    for row in expected_daily_usage(SCENARIO, first, last):
        if row["resource_id"] not in resource_ids:
            continue
        for metric in FAMILY_METRICS[row["family"]]:
            key = (
                row["resource_id"],
                row["family"],
                metric,
                row["day"],
                row["deployment"],
                row["version"],
                row["region"],
            )
            out[key] = out.get(key, 0) + row[QUANTITY[metric]]
    return out


def _family(metric: str) -> str:
    return "azure_openai" if metric in FAMILY_METRICS["azure_openai"] else "models"


SPLIT = "ModelDeploymentName eq '*' and ModelVersion eq '*' and Region eq '*'"


def test_per_resource_split_values_equal_expected_daily_usage(monitor):
    first, last = date(2026, 11, 8), date(2026, 11, 12)  # spans the gpt-4o-prod upgrade on 2026-11-10
    got = {}
    for resource in (WEU, FOUNDRY):
        account = SCENARIO.account(resource)
        metrics = [m for fam in account.families for m in FAMILY_METRICS[fam]]
        response = monitor.metrics.list(
            resource,
            timespan="2026-11-08T00:00:00Z/2026-11-13T00:00:00Z",
            interval="P1D",
            metricnames=",".join(metrics),
            aggregation="Total",
            filter=SPLIT,
            top=1000,
            orderby="Total desc",
            metricnamespace=NS,
        )
        assert response.interval == "P1D" and response.resourceregion == "westeurope"
        for metric in response.value:
            assert metric.error_code == "Success"
            for ts in metric.timeseries:
                dims = {md.name.value: md.value for md in ts.metadatavalues}
                assert set(dims) == {"modeldeploymentname", "modelversion", "region"}
                for point in ts.data:
                    if point.total:
                        key = (
                            resource,
                            _family(metric.name.value),
                            metric.name.value,
                            point.time_stamp.date(),
                            dims["modeldeploymentname"],
                            dims["modelversion"],
                            dims["region"],
                        )
                        got[key] = got.get(key, 0) + int(point.total)
    assert got == _expected(first, last, {WEU, FOUNDRY})
    versions = {k[5] for k in got if k[4] == "gpt-4o-prod"}
    assert versions == {"2024-08-06", "2024-11-20"}


def test_batch_split_values_equal_expected_daily_usage_and_carry_resource_ids(emu, batch):
    first, last = date(2026, 11, 15), date(2026, 11, 19)
    results = batch.query_resources(
        resource_ids=[WEU, FOUNDRY, MANY],
        metric_namespace=NS,
        metric_names=list(FAMILY_METRICS["models"]),
        timespan=(datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)),
        granularity=timedelta(days=1),
        aggregations=["Total"],
        filter=SPLIT,
        max_results=1000,
        order_by="Total desc",
    )
    got = {}
    for result in results:
        assert result.namespace == "microsoft.cognitiveservices/accounts" and result.resource_region == "westeurope"
        for metric in result.metrics:
            resource = metric.id.split("/providers/Microsoft.Insights/metrics/")[0]
            for ts in metric.timeseries:
                dims = ts.metadata_values
                for point in ts.data:
                    if point.total:
                        key = (
                            resource,
                            "models",
                            metric.name,
                            point.timestamp.date(),
                            dims["modeldeploymentname"],
                            dims["modelversion"],
                            dims["region"],
                        )
                        got[key] = got.get(key, 0) + int(point.total)
    expected = {k: v for k, v in _expected(first, last, {WEU, FOUNDRY, MANY}).items() if k[1] == "models"}
    assert got == expected and got
    # the raw body carries resourceid per item (the SDK drops it)
    client = emu.metrics_client(emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET), "westeurope")
    request = HttpRequest(
        "POST",
        f"/subscriptions/{S.SUB_A}/metrics:getBatch",
        params={
            "api-version": "2024-02-01",
            "metricnamespace": NS,
            "metricnames": "InputTokens",
            "starttime": "2026-11-18T00:00:00.000Z",
            "endtime": "2026-11-19T00:00:00.000Z",
            "interval": "P1D",
        },
        json={"resourceids": [WEU, FOUNDRY]},
    )
    body = client.send_request(request).json()
    assert [v["resourceid"] for v in body["values"]] == [WEU, FOUNDRY]
    assert body["values"][0]["starttime"] == "2026-11-18T00:00:00Z"
    assert body["values"][0]["value"][0]["timeseries"][0]["metadatavalues"] == []


def test_default_top_truncates_to_ten_series_silently(monitor, batch):
    timespan = "2026-11-18T00:00:00Z/2026-11-19T00:00:00Z"
    default = monitor.metrics.list(
        MANY,
        timespan=timespan,
        interval="P1D",
        metricnames="InputTokens",
        aggregation="Total",
        filter="ModelDeploymentName eq '*'",
    )
    assert len(default.value[0].timeseries) == 10
    explicit = monitor.metrics.list(
        MANY,
        timespan=timespan,
        interval="P1D",
        metricnames="InputTokens",
        aggregation="Total",
        filter="ModelDeploymentName eq '*'",
        top=100,
    )
    series = explicit.value[0].timeseries
    assert len(series) == 15
    largest = sorted(series, key=lambda s: -s.data[0].total)[:10]
    assert {s.metadatavalues[0].value for s in default.value[0].timeseries} == {
        s.metadatavalues[0].value for s in largest
    }
    results = batch.query_resources(
        resource_ids=[MANY, WEU],
        metric_namespace=NS,
        metric_names=["InputTokens", "OutputTokens"],
        timespan=(datetime(2026, 11, 18, tzinfo=UTC), timedelta(days=1)),
        granularity=timedelta(days=1),
        filter="ModelDeploymentName eq '*'",
    )
    counts = [len(m.timeseries) for r in results for m in r.metrics]
    assert counts == [10, 10, 2, 2]  # per metric per resource


def test_p1d_from_noon_buckets_at_noon_and_dimension_names_lower_cased(monitor, batch):
    response = monitor.metrics.list(
        WEU,
        timespan="2026-11-17T12:00:00Z/2026-11-19T12:00:00Z",
        interval="P1D",
        metricnames="ProcessedPromptTokens",
        aggregation="Total",
        filter="modelDEPLOYMENTname eq '*'",
        top=50,
    )
    assert response.timespan == "2026-11-17T12:00:00Z/2026-11-19T12:00:00Z"
    for ts in response.value[0].timeseries:
        assert [p.time_stamp for p in ts.data] == [
            datetime(2026, 11, 17, 12, tzinfo=UTC),
            datetime(2026, 11, 18, 12, tzinfo=UTC),
        ]
        assert ts.metadatavalues[0].name.value == "modeldeploymentname"
        assert ts.metadatavalues[0].name.localized_value == "modeldeploymentname"
    results = batch.query_resources(
        resource_ids=[FOUNDRY],
        metric_namespace=NS,
        metric_names=["TotalTokens"],
        timespan=(datetime(2026, 11, 17, 12, tzinfo=UTC), datetime(2026, 11, 19, 12, tzinfo=UTC)),
        granularity=timedelta(days=1),
        filter="Region eq '*' and ModelName eq '*'",
    )
    series = results[0].metrics[0].timeseries
    assert {tuple(sorted(s.metadata_values.items())) for s in series} == {
        (("modelname", "Phi-4"), ("region", "westeurope")),
        (("modelname", "gpt-5"), ("region", "Sweden Central")),
    }
    assert {p.timestamp.hour for s in series for p in s.data} == {12}


def test_metrics_400s_are_azure_texts(monitor):
    def fails(**kwargs) -> HttpResponseError:
        params = {"timespan": "P1D", "metricnames": "TokenTransaction"}
        params.update(kwargs)
        with pytest.raises(HttpResponseError) as err:
            monitor.metrics.list(WEU, **params)
        assert err.value.status_code == 400
        return err.value

    err = fails(metricnames="TokenTransaction,Bogus")
    assert err.error.code == "BadRequest"
    assert err.error.message.startswith(
        "Failed to find metric configuration for provider: Microsoft.CognitiveServices,"
        " resource Type: accounts, metric: Bogus, Valid metrics: ProcessedPromptTokens,"
    )
    with pytest.raises(HttpResponseError) as foundry_err:
        monitor.metrics.list(FOUNDRY, timespan="P1D", metricnames="TokenTransaction")
    assert foundry_err.value.error.message.endswith("Valid metrics: InputTokens,OutputTokens,TotalTokens,ModelRequests")
    assert (
        "Requested metrics count: 21 bigger than allowed max: 20"
        in fails(metricnames=",".join(["TokenTransaction"] * 21)).message
    )
    assert "Invalid time grain duration: PT2H, supported ones are: 00:01:00," in fails(interval="PT2H").message
    assert "Detected invalid TopN value" in fails(top=2147483648, filter="ModelDeploymentName eq '*'").message
    assert "does not support requested dimension combination: modelname" in fails(filter="ModelName eq '*'").message
    assert (
        "cannot separate two different metadata names"
        in fails(filter="ModelDeploymentName eq 'a' or ModelVersion eq 'b'").message
    )
    assert "Detected invalid time interval input: yesterday" in fails(timespan="yesterday").message
    relaxed = monitor.metrics.list(
        WEU,
        timespan="2026-11-18T00:00:00Z/2026-11-19T00:00:00Z",
        interval="P1D",
        metricnames="TokenTransaction",
        filter="ModelName eq '*'",
        validate_dimensions=False,
    )
    assert len(relaxed.value[0].timeseries) == 1 and relaxed.value[0].timeseries[0].metadatavalues == []


def test_full_interval_and_no_data(monitor):
    response = monitor.metrics.list(
        WEU,
        timespan="2026-11-18T00:00:00Z/2026-11-18T04:00:00Z",
        interval="FULL",
        metricnames="TokenTransaction",
        aggregation="Total",
    )
    assert response.interval == "PT4H" and len(response.value[0].timeseries[0].data) == 1
    empty = monitor.metrics.list(
        WEU,
        timespan="2026-01-01T00:00:00Z/2026-01-02T00:00:00Z",
        interval="P1D",
        metricnames="TokenTransaction",
        aggregation="Total",
    )
    assert empty.value[0].timeseries == [] and empty.value[0].error_code == "Success"


def test_batch_limits_fail_as_azure_does(emu, main, batch):
    fake = [
        f"/subscriptions/{S.SUB_A}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/x{i}"
        for i in range(51)
    ]
    with pytest.raises(HttpResponseError) as err:
        batch.query_resources(resource_ids=fake, metric_namespace=NS, metric_names=["InputTokens"])
    assert err.value.status_code == 400 and "Maximum list of resource ids supported is 50" in err.value.message
    with pytest.raises(HttpResponseError) as err:
        batch.query_resources(resource_ids=[WEU, EUS], metric_namespace=NS, metric_names=["TokenTransaction"])
    assert err.value.status_code == 400 and "does not match the endpoint region 'westeurope'" in err.value.message
    other_sub = S.account_id(S.SUB_B, "rg-b1", "aoai-b1")
    with pytest.raises(HttpResponseError) as err:
        batch.query_resources(resource_ids=[WEU, other_sub], metric_namespace=NS, metric_names=["TokenTransaction"])
    assert err.value.status_code == 400 and "same subscription" in err.value.message
    with pytest.raises(HttpResponseError) as err:
        batch.query_resources(
            resource_ids=[WEU], metric_namespace="Microsoft.Storage/storageAccounts", metric_names=["TokenTransaction"]
        )
    assert err.value.status_code == 400 and "same resource type" in err.value.message
    with pytest.raises(HttpResponseError) as err:
        batch.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["Nope"])
    assert err.value.status_code == 400 and "Failed to find metric configuration" in err.value.message
    rg_principal = emu.credential(S.TENANT, S.RG_CLIENT, S.RG_SECRET)
    with pytest.raises(ClientAuthenticationError) as err:
        emu.metrics_client(rg_principal, "westeurope", retry_total=0).query_resources(
            resource_ids=[WEU], metric_namespace=NS, metric_names=["TokenTransaction"]
        )
    assert err.value.status_code == 401
    eastus = emu.metrics_client(main, "eastus")
    assert (
        eastus.query_resources(
            resource_ids=[EUS], metric_namespace=NS, metric_names=["TokenTransaction"], timespan=timedelta(days=1)
        )[0].resource_region
        == "eastus"
    )
    client = emu.metrics_client(main, "westeurope", retry_total=0)
    wrong_key = HttpRequest(
        "POST",
        f"/subscriptions/{S.SUB_A}/metrics:getBatch",
        params={"api-version": "2024-02-01", "metricnamespace": NS, "metricnames": "InputTokens"},
        json={"resourceIds": [WEU]},
    )
    response = client.send_request(wrong_key)
    assert response.status_code == 400 and "'resourceids'" in response.json()["error"]["message"]
    timespan = HttpRequest(
        "POST",
        f"/subscriptions/{S.SUB_A}/metrics:getBatch",
        params={"api-version": "2024-02-01", "metricnamespace": NS, "metricnames": "InputTokens", "timespan": "P1D"},
        json={"resourceids": [WEU]},
    )
    response = client.send_request(timespan)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Detected invalid time range parameters for API version "
        "2024-02-01. Please use only starttime and endtime to specify a "
        "time range."
    )
    assert response.headers["x-ms-error-code"] == "BadRequest"
