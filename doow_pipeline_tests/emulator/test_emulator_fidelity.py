"""The emulator answers like Azure for what real clients send (issue 8): each test names the source of the
behaviour it checks (see the emulator README, "Sources"). In-process (EmulatorApp), every JSON answer is
also checked against the committed spec schemas."""

from __future__ import annotations

import copy
import json
from datetime import UTC
from urllib.parse import quote, quote_plus

import pytest

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO, samples
from doow_pipeline_tests.azure_emulator.app import Context, EmulatorApp, Request
from doow_pipeline_tests.azure_emulator.catalogue import METRICS_BY_NAME
from doow_pipeline_tests.azure_emulator.quirks import Quirks
from doow_pipeline_tests.azure_emulator.scenario import load_scenario, scenario_from_dict
from doow_pipeline_tests.azure_emulator.spec_validation import validate_response

AOAI_WEU = samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu")
AOAI_EUS = samples.account_id(samples.SUB_A, "rg-us", "aoai-eus")
METRICS = "/providers/Microsoft.Insights/metrics"
DAY_SPAN = "2026-11-18T00:00:00Z/2026-11-19T00:00:00Z"
BATCH = f"/westeurope/subscriptions/{samples.SUB_A}/metrics:getBatch"


class Client:
    """Calls EmulatorApp in-process with tokens of the main principal; validates every JSON answer."""

    def __init__(self, raw: dict | None = None, **quirks):
        raw = raw or samples.small_scenario()
        self.app = EmulatorApp(scenario_from_dict(raw), Quirks.from_raw(quirks), validator=validate_response)
        self.arm_token = self._token("https%3A%2F%2Fmanagement.azure.com%2F.default")
        self.metrics_token = self._token("https%3A%2F%2Fmetrics.monitor.azure.com%2F.default")

    def _token(self, scope: str) -> str:
        form = (
            f"client_id={samples.MAIN_CLIENT}&client_secret={samples.MAIN_SECRET}"
            f"&grant_type=client_credentials&scope={scope}"
        ).encode()
        response, _ = self.call("POST", f"/{samples.TENANT}/oauth2/v2.0/token", body=form, token=None)
        return response.body["access_token"]

    def call(self, method, path, query="", token="arm", body=b"", validate=True):
        headers = {"host": "127.0.0.1:8443"}
        bearer = {"arm": getattr(self, "arm_token", None), "metrics": getattr(self, "metrics_token", None)}.get(
            token, token
        )
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        ctx = Context()
        response = self.app.handle(
            Request(method, path, query, headers, body, "127.0.0.1", "https://127.0.0.1:8443"), ctx
        )
        kind = self.app.validation_kind(ctx.kind, response) if validate else None
        if kind is not None:
            from doow_pipeline_tests.azure_emulator.app import _sample_for_validation

            body_obj = _sample_for_validation(response.body) if response.status < 400 else response.body
            problems = validate_response(kind, response.status, body_obj)
            assert problems == [], problems
        return response, ctx

    def get(self, path, query, **kw):
        return self.call("GET", path, query, **kw)

    def batch(self, query, ids=(AOAI_WEU,), **kw):
        return self.call(
            "POST", BATCH, query, token="metrics", body=json.dumps({"resourceids": list(ids)}).encode(), **kw
        )


@pytest.fixture(scope="module")
def client():
    return Client()


def _body(response):
    body = response.body
    return body.to_obj() if hasattr(body, "to_obj") else body


# ---- cloud metadata (Azure CLI cloud registration) -------------------------------------------------------------


def test_metadata_endpoints_name_this_emulator(client):
    response, ctx = client.get("/metadata/endpoints", "api-version=2022-09-01", token=None)
    assert response.status == 200 and ctx.kind == "metadata"
    body = response.body
    assert body["resourceManager"] == "https://127.0.0.1:8443/"
    assert body["authentication"]["loginEndpoint"] == "https://127.0.0.1:8443"
    assert body["authentication"]["audiences"][0] == "https://management.core.windows.net/"
    listed, _ = client.get("/metadata/endpoints", "api-version=2019-05-01", token=None)
    assert listed.body == [body]
    missing, _ = client.get("/metadata/endpoints", "", token=None)
    assert missing.status == 400 and missing.body["error"]["code"] == "MissingApiVersionParameter"


# ---- per-resource API as the Azure CLI and azure-monitor-query 1.x send it -------------------------------------


def test_2018_01_01_accepts_the_double_encoded_timespan_of_the_azure_cli(client):
    timespan = quote(quote_plus("2026-11-18T00:00:00+00:00/2026-11-19T00:00:00+00:00"), safe="")
    query = f"timespan={timespan}&interval=P1D&metricnames=TokenTransaction&aggregation=Total&api-version=2018-01-01"
    response, _ = client.get(AOAI_WEU + METRICS, query)
    assert response.status == 200
    body = _body(response)
    assert body["timespan"] == DAY_SPAN and body["interval"] == "P1D"
    # 2018-01-01 without metricnamespace names the resource type (Azure CLI recording).
    assert body["namespace"] == "Microsoft.CognitiveServices/accounts"


@pytest.mark.parametrize(
    "version,sent,echoed",
    [
        ("2018-01-01", "microsoft.cognitiveservices/accounts", "microsoft.cognitiveservices/accounts"),
        ("2018-01-01", "Microsoft.CognitiveServices/accounts", "Microsoft.CognitiveServices/accounts"),
        ("2024-02-01", "Microsoft.CognitiveServices/accounts", "microsoft.cognitiveservices/accounts"),
    ],
)
def test_namespace_of_the_per_resource_answer(client, version, sent, echoed):
    query = (
        f"timespan={DAY_SPAN}&interval=P1D&metricnames=TokenTransaction&metricnamespace={sent}&api-version={version}"
    )
    response, _ = client.get(AOAI_WEU + METRICS, query)
    assert response.status == 200 and _body(response)["namespace"] == echoed


def test_definitions_echo_the_namespace_parameter(client):
    sent, _ = client.get(
        AOAI_WEU + "/providers/Microsoft.Insights/metricDefinitions",
        "api-version=2018-01-01&metricnamespace=microsoft.cognitiveservices%2Faccounts",
    )
    assert {d["namespace"] for d in sent.body["value"]} == {"microsoft.cognitiveservices/accounts"}
    absent, _ = client.get(AOAI_WEU + "/providers/Microsoft.Insights/metricDefinitions", "api-version=2024-02-01")
    assert {d["namespace"] for d in absent.body["value"]} == {"Microsoft.CognitiveServices/accounts"}


def test_cost_counts_the_metrics_that_succeeded():
    raw = samples.small_scenario(metric_errors=[{"account": "aoai-weu", "metric": "GeneratedTokens"}])
    client = Client(raw)
    two, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D&metricnames=ProcessedPromptTokens,TokenTransaction",
    )
    assert _body(two)["cost"] == 2 * 1439  # GetMetric.json: 2 metrics x 5 h -> 598
    failing, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D&metricnames=GeneratedTokens,TokenTransaction",
    )
    assert _body(failing)["cost"] == 1439  # GetMetricError.json: one of two failing -> 239 over 4 h


# ---- metricNamespaces ------------------------------------------------------------------------------------------


def test_metric_namespaces_as_recorded(client):
    response, ctx = client.get(
        AOAI_WEU + "/providers/microsoft.insights/metricNamespaces", "api-version=2017-12-01-preview"
    )
    assert response.status == 200 and ctx.kind == "namespaces"
    assert response.body == {
        "value": [
            {
                "id": f"{AOAI_WEU}/providers/microsoft.insights/metricNamespaces/microsoft.cognitiveservices-accounts",
                "name": "microsoft.cognitiveservices-accounts",
                "type": "Microsoft.Insights/metricNamespaces",
                "classification": "Platform",
                "properties": {"metricNamespaceName": "microsoft.cognitiveservices/accounts"},
            }
        ]
    }
    old, _ = client.get(AOAI_WEU + "/providers/microsoft.insights/metricNamespaces", "api-version=2016-03-01")
    assert old.status == 400 and old.body["error"]["code"] == "NoRegisteredProviderFound"


def test_metric_namespaces_need_monitoring_read():
    client = Client()
    form = (
        f"client_id={samples.LIST_CLIENT}&client_secret={samples.LIST_SECRET}&grant_type=client_credentials"
        "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
    ).encode()
    token = client.call("POST", f"/{samples.TENANT}/oauth2/v2.0/token", body=form, token=None)[0].body["access_token"]
    secret = samples.account_id(samples.SUB_A, "rg-ai", "aoai-sec")
    response, _ = client.get(
        secret + "/providers/microsoft.insights/metricNamespaces", "api-version=2017-12-01-preview", token=token
    )
    assert response.status == 403 and "microsoft.insights/metricNamespaces/read" in response.body["error"]["message"]


# ---- filters ---------------------------------------------------------------------------------------------------


def test_two_sw_values_on_one_dimension_are_refused(client):
    flt = quote("ModelDeploymentName sw 'gpt' and ModelDeploymentName sw 'mi'")
    response, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D&metricnames=TokenTransaction&$filter={flt}",
    )
    assert response.status == 400 and response.body == {
        "code": "BadRequest",
        "message": "Dimension name detected in multiple 'sw' values",
    }
    batch, _ = client.batch(
        "api-version=2024-02-01&metricnamespace=Microsoft.CognitiveServices/accounts"
        "&metricnames=TokenTransaction&starttime=2026-11-18T00:00:00Z&endtime=2026-11-19T00:00:00Z"
        f"&interval=P1D&filter={flt}"
    )
    assert batch.status == 400 and batch.body["error"]["message"] == "Dimension name detected in multiple 'sw' values"
    one, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D&metricnames=TokenTransaction&$filter={quote(SW_ONE)}",
    )
    assert one.status == 200


SW_ONE = "ModelDeploymentName sw 'gpt'"
SPLIT_DEPLOYMENT = "ModelDeploymentName eq '*'"
SPLIT_DEPLOYMENT_MODEL = "ModelDeploymentName eq '*' and ModelName eq '*'"


# ---- getBatch --------------------------------------------------------------------------------------------------

BATCH_DAY = (
    "metricnamespace={ns}&metricnames=AzureOpenAIRequests,TokenTransaction&starttime=2026-11-18T00:00:00.000Z"
    "&endtime=2026-11-19T00:00:00.000Z&interval=P1D&api-version={version}"
)


def test_batch_endtime_past_retention_is_a_400_with_the_spec_text(client):
    response, _ = client.batch(
        "api-version=2024-02-01&metricnamespace=Microsoft.CognitiveServices/accounts"
        "&metricnames=TokenTransaction&starttime=2026-08-01T00:00:00Z"
        "&endtime=2026-08-18T00:00:00Z&interval=P1D"
    )
    assert response.status == 400
    message = response.body["error"]["message"]
    assert message.startswith(
        "Query endTime: 08/18/2026 00:00:00 is out of the Max metrics retention period: 93.00:00:00, traceId: {"
    )
    inside, _ = client.batch(
        "api-version=2024-02-01&metricnamespace=Microsoft.CognitiveServices/accounts"
        "&metricnames=TokenTransaction&starttime=2026-08-01T00:00:00Z"
        "&endtime=2026-08-20T00:00:00Z&interval=P1D"
    )
    assert inside.status == 200  # the end is inside retention: the part before it is clipped, not refused


@pytest.mark.parametrize(
    "mode,version,echoed",
    [
        ("lower", "2023-10-01", "microsoft.cognitiveservices/accounts"),
        ("lower", "2024-02-01", "microsoft.cognitiveservices/accounts"),
        ("by_version", "2023-10-01", "Microsoft.CognitiveServices/accounts"),
        ("by_version", "2024-02-01", "microsoft.cognitiveservices/accounts"),
        ("as_requested", "2024-02-01", "Microsoft.CognitiveServices/accounts"),
    ],
)
def test_batch_namespace_echo_switch(mode, version, echoed):
    client = Client(batch_namespace_echo=mode)
    response, _ = client.batch(BATCH_DAY.format(ns="Microsoft.CognitiveServices/accounts", version=version))
    assert response.status == 200 and _body(response)["values"][0]["namespace"] == echoed


def test_batch_cost_on_2023_10_01_only(client):
    old, _ = client.batch(BATCH_DAY.format(ns="Microsoft.CognitiveServices/accounts", version="2023-10-01"))
    assert _body(old)["values"][0]["cost"] == 2 * 1439  # Learn sample: 2 metrics x 48 h -> 11516
    new, _ = client.batch(BATCH_DAY.format(ns="Microsoft.CognitiveServices/accounts", version="2024-02-01"))
    assert "cost" not in _body(new)["values"][0]  # MetricBatchExample.json (2024-02-01) has none


# ---- trimmed windows (switch) ---------------------------------------------------------------------------------


def test_trim_max_span_reproduces_the_recorded_pt1m_answer():
    client = Client(trim_max_span="P31D")
    response, _ = client.get(
        AOAI_WEU + METRICS,
        "api-version=2018-01-01&interval=PT1M"
        "&metricnames=ProcessedPromptTokens,GeneratedTokens"
        "&timespan=2018-01-01T00:00:00Z/2026-11-20T00:00:00Z",
    )
    body = _body(response)
    assert response.status == 200
    assert body["timespan"] == "2026-10-20T00:00:00Z/2026-11-20T00:00:00Z"
    assert body["cost"] == 89278  # the recorded cost: 2 metrics x 31 days of minutes, less one each
    assert len(body["value"][0]["timeseries"][0]["data"]) == 31 * 1440


def test_trim_max_buckets_on_p1d_and_on_getbatch():
    client = Client(trim_max_buckets=10)
    response, _ = client.get(
        AOAI_WEU + METRICS,
        "api-version=2024-02-01&interval=P1D&metricnames=TokenTransaction"
        "&timespan=2026-10-01T00:00:00Z/2026-11-20T00:00:00Z",
    )
    body = _body(response)
    assert body["timespan"] == "2026-11-10T00:00:00Z/2026-11-20T00:00:00Z"
    stamps = [p["timeStamp"][:10] for p in body["value"][0]["timeseries"][0]["data"]]
    assert stamps[:2] == ["2026-11-10", "2026-11-11"] and len(stamps) == 10
    batch, _ = client.batch(
        "api-version=2024-02-01&metricnamespace=Microsoft.CognitiveServices/accounts"
        "&metricnames=TokenTransaction&starttime=2026-10-01T00:00:00.000Z"
        "&endtime=2026-11-20T00:00:00.000Z&interval=P1D"
    )
    item = _body(batch)["values"][0]
    assert (item["starttime"], item["endtime"]) == ("2026-11-10T00:00:00Z", "2026-11-20T00:00:00Z")
    assert len(item["value"][0]["timeseries"][0]["data"]) == 10
    exempt = Client(trim_max_buckets=10, trim_batch=False)
    item = _body(
        exempt.batch(
            "api-version=2024-02-01&metricnamespace=Microsoft.CognitiveServices/accounts"
            "&metricnames=TokenTransaction&starttime=2026-10-01T00:00:00.000Z"
            "&endtime=2026-11-20T00:00:00.000Z&interval=P1D"
        )[0]
    )["values"][0]
    assert item["starttime"] == "2026-10-01T00:00:00Z" and len(item["value"][0]["timeseries"][0]["data"]) == 50


def test_no_trimming_by_default(client):
    response, _ = client.get(
        AOAI_WEU + METRICS,
        "api-version=2024-02-01&interval=P1D&metricnames=TokenTransaction"
        "&timespan=2026-08-20T00:00:00Z/2026-11-20T00:00:00Z",
    )
    assert _body(response)["timespan"] == "2026-08-20T00:00:00Z/2026-11-20T00:00:00Z"


# ---- deployments ------------------------------------------------------------------------------------------------


def test_deployment_lists_page_with_next_link():
    client = Client(samples.many_deployments_scenario(5))
    path = samples.account_id(samples.SUB_A, "rg-ai", "aoai-many") + "/deployments"
    names, query, pages = [], "api-version=2024-10-01", 0
    while True:
        response, ctx = client.get(path, query)
        assert response.status == 200 and ctx.kind == "deployments"
        pages += 1
        names += [d["name"] for d in response.body["value"]]
        link = response.body.get("nextLink")
        if not link:
            break
        assert link.startswith(f"https://127.0.0.1:8443{path}?api-version=2024-10-01&$skipToken=")
        query = link.split("?", 1)[1]
    assert names == [f"dep-{i:02d}" for i in range(5)] and pages == 3


def test_dalle_and_whisper_report_empty_deployment_names():
    client = Client(samples.empty_deployment_names_scenario())
    response, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D"
        f"&metricnames=AzureOpenAIRequests&top=100&$filter={quote(SPLIT_DEPLOYMENT_MODEL)}",
    )
    series = {
        tuple(m["value"] for m in ts["metadatavalues"]): ts["data"][0]["total"]
        for ts in _body(response)["value"][0]["timeseries"]
    }
    assert ("__Empty", "dall-e-3") in series and ("__Empty", "whisper") in series
    assert not any(dep in ("dalle", "whisper") for dep, _model in series)
    deployments, _ = client.get(AOAI_WEU + "/deployments", "api-version=2024-10-01")
    assert {"dalle", "whisper"} <= {d["name"] for d in deployments.body["value"]}  # ARM still names them
    assert "nextLink" not in deployments.body  # deployments_page_size 0: one page


# ---- dimensions that return nothing when split on (switch) ------------------------------------------------------


def test_silent_split_dimension_switch():
    client = Client(empty_split_dimensions={"AzureOpenAIRequests": ["ModelName"]})
    flt = quote(SPLIT_DEPLOYMENT_MODEL)
    response, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D"
        f"&metricnames=AzureOpenAIRequests,ModelRequests&$filter={flt}&top=100",
    )
    legacy, models = _body(response)["value"]
    assert legacy["timeseries"] == [] and legacy["errorCode"] == "Success"
    assert models["timeseries"]  # the switch names one metric only
    definitions, _ = client.get(AOAI_WEU + "/providers/Microsoft.Insights/metricDefinitions", "api-version=2024-02-01")
    defined = {d["name"]["value"]: [x["value"] for x in d["dimensions"]] for d in definitions.body["value"]}
    assert "ModelName" in defined["AzureOpenAIRequests"]  # still defined
    by_deployment, _ = client.get(
        AOAI_WEU + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D"
        f"&metricnames=AzureOpenAIRequests&$filter={quote(SPLIT_DEPLOYMENT)}",
    )
    assert len(_body(by_deployment)["value"][0]["timeseries"]) == 2


# ---- model names on the legacy family's request metric ----------------------------------------------------------


def test_request_metric_of_the_legacy_family_reports_model_name(client):
    flt = quote("ModelDeploymentName eq '*' and ModelName eq '*' and ModelVersion eq '*'")
    response, _ = client.get(
        AOAI_EUS + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D"
        f"&metricnames=AzureOpenAIRequests&$filter={flt}&top=100",
    )
    (ts,) = _body(response)["value"][0]["timeseries"]
    assert {m["name"]["value"]: m["value"] for m in ts["metadatavalues"]} == {
        "modeldeploymentname": "gpt-4o-us",
        "modelname": "gpt-4o",
        "modelversion": "2024-08-06",
    }
    tokens, _ = client.get(
        AOAI_EUS + METRICS,
        f"api-version=2024-02-01&timespan={DAY_SPAN}&interval=P1D&metricnames=ProcessedPromptTokens&$filter={flt}",
    )
    assert tokens.status == 400 and "does not support requested dimension combination" in tokens.body["message"]


def test_every_legacy_account_of_the_demo_defines_model_name_on_azure_openai_requests():
    demo = load_scenario(DEMO_SCENARIO)
    assert "ModelName" in METRICS_BY_NAME["AzureOpenAIRequests"].dimensions
    assert "ModelName" not in METRICS_BY_NAME["ProcessedPromptTokens"].dimensions
    from doow_pipeline_tests.azure_emulator.arm import metric_definitions_json

    legacy = [a for a in demo.accounts if a.families == ("azure_openai",)]
    assert legacy
    for account in legacy:
        defs = {
            d["name"]["value"]: [x["value"] for x in d["dimensions"]] for d in metric_definitions_json(account)["value"]
        }
        assert {"ModelDeploymentName", "ModelName", "ModelVersion"} <= set(defs["AzureOpenAIRequests"])


def test_quirks_reject_bad_values():
    with pytest.raises(ValueError, match="batch_namespace_echo"):
        Quirks.from_raw({"batch_namespace_echo": "upper"})
    with pytest.raises(ValueError, match="trim_max_span"):
        Quirks.from_raw({"trim_max_span": "a month"})
    assert copy.deepcopy(Quirks()).trim_max_span is None


# ---- through the emulator process and the project's own SDKs -----------------------------------------------------


def test_switches_from_the_scenario_file_reach_the_sdks(emulator_factory):
    from datetime import datetime, timedelta

    raw = samples.empty_deployment_names_scenario(quirks={"trim_max_buckets": 10})
    emu = emulator_factory(raw)
    cred = emu.credential(samples.TENANT, samples.MAIN_CLIENT, samples.MAIN_SECRET)
    monitor = emu.monitor_client(cred, samples.SUB_A, retry_total=0)
    answer = monitor.metrics.list(
        AOAI_WEU,
        timespan="2026-10-01T00:00:00Z/2026-11-20T00:00:00Z",
        interval="P1D",
        metricnames="AzureOpenAIRequests",
        aggregation="Total",
        top=100,
        filter="ModelDeploymentName eq '*'",
    )
    assert answer.timespan == "2026-11-10T00:00:00Z/2026-11-20T00:00:00Z"  # trimmed, 200
    names = {ts.metadatavalues[0].value for ts in answer.value[0].timeseries}
    assert names == {"gpt-4o-prod", "mini", "__Empty"}
    batch = emu.metrics_client(cred, "westeurope", retry_total=0)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    (result,) = batch.query_resources(
        resource_ids=[AOAI_WEU],
        metric_namespace="Microsoft.CognitiveServices/accounts",
        metric_names=["AzureOpenAIRequests"],
        timespan=(start, timedelta(days=50)),
        granularity=timedelta(days=1),
        aggregations=["Total"],
        max_results=100,
        filter="ModelDeploymentName eq '*'",
    )
    (metric,) = result.metrics
    assert {len(ts.data) for ts in metric.timeseries} == {10}
    assert {ts.metadata_values["modeldeploymentname"] for ts in metric.timeseries} == names
