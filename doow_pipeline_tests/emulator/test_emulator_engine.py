"""The emulator's metrics engine and query parsing, in process (no HTTP): exact bucket values against the
generator's atom_amount, bucket layout, the $filter grammar, and Azure's 400 texts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from doow_pipeline_tests.azure_emulator import samples
from doow_pipeline_tests.azure_emulator.app import Context, EmulatorApp, Request
from doow_pipeline_tests.azure_emulator.catalogue import METRICS_BY_NAME
from doow_pipeline_tests.azure_emulator.metrics import (
    MetricsEngine,
    MetricsRequest,
    effective_filter,
    make_window,
    resolve_metrics,
)
from doow_pipeline_tests.azure_emulator.query import (
    QueryError,
    parse_filter,
    parse_interval,
    parse_orderby,
    parse_timespan,
    parse_top,
)
from doow_pipeline_tests.azure_emulator.quirks import Quirks
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import atom_amount, metric_atoms

UTC = UTC
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scenario():
    return scenario_from_dict(samples.many_deployments_scenario(12))


def _request(names, start, end, grain, flt=None, top=1000, desc=True, **kw):
    return MetricsRequest(names, start, end, grain, ["total"], parse_filter(flt), top, desc, **kw)


def _series(engine, scenario, account, names, start, end, grain, flt=None, top=1000, **kw):
    request = _request(names, start, end, grain, flt, top, **kw)
    specs = resolve_metrics(account, names)
    window = make_window(request, NOW, scenario)
    return engine.resource_values(account, specs, request, effective_filter(specs, request.filter, True), window)


def test_bucket_values_equal_atom_amount_over_random_windows(scenario):
    """Every bucket of a deployment x version split is atom_amount over the bucket clipped to the visible
    window [now - retention, now - ingestion delay), for random starts, ends and grains."""
    engine = MetricsEngine(scenario, Quirks())
    rng = random.Random(20261120)
    grains = [timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 360, 720, 1440)] + [None]
    visible_lo = NOW - timedelta(days=scenario.retention_days)
    visible_hi = NOW - timedelta(minutes=scenario.ingestion_delay_minutes)
    accounts = [a for a in scenario.accounts if a.deployments and a.families]
    checked = 0
    for _ in range(60):
        account = rng.choice(accounts)
        metric = rng.choice([m for m in METRICS_BY_NAME.values() if m.family in account.families])
        grain = rng.choice(grains)
        span_minutes = rng.randint(1, 60) if grain == timedelta(minutes=1) else rng.randint(30, 6 * 1440)
        start = NOW - timedelta(days=rng.uniform(0, 100)) + timedelta(seconds=rng.choice([0, 17, 59]))
        end = start + timedelta(minutes=span_minutes, seconds=rng.choice([0, 30]))
        values = _series(
            engine,
            scenario,
            account,
            [metric.name],
            start,
            end,
            grain,
            "ModelDeploymentName eq '*' and ModelVersion eq '*'",
        )[0]
        b0 = start.replace(second=0, microsecond=0)
        end_m = end.replace(second=0, microsecond=0)
        got = {
            (s["metadatavalues"][0]["value"], s["metadatavalues"][1]["value"]): s["data"] for s in values["timeseries"]
        }
        lo, hi = max(b0, visible_lo.replace(second=0, microsecond=0)), min(end_m, visible_hi)
        for atom in metric_atoms(account, metric, lo, hi) if hi > lo else []:
            key = (atom.deployment.name, atom.version)
            size = grain or (end_m - b0 if end_m > b0 else timedelta(minutes=1))
            t, expected_points = b0, []
            while t < end_m or (grain is None and not expected_points):
                t1 = min(t + size, end_m)
                w0, w1 = max(t, lo), min(t1, hi)
                expected_points.append(
                    atom_amount(scenario.seed, account, atom, metric.quantity, w0, w1) if w1 > w0 else 0
                )
                t += size
            if not any(expected_points):
                assert key not in got
                continue
            assert [p.get("total", 0.0) for p in got[key]] == [float(v) for v in expected_points], (
                account.name,
                metric.name,
                start,
                end,
                grain,
            )
            checked += 1
    assert checked > 20


def test_p1d_buckets_are_aligned_to_the_query_start_not_midnight(scenario):
    engine = MetricsEngine(scenario, Quirks())
    account = scenario.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    start = datetime(2026, 11, 17, 12, 0, 30, tzinfo=UTC)
    values = _series(
        engine, scenario, account, ["TokenTransaction"], start, start + timedelta(days=2), timedelta(days=1)
    )
    stamps = [p["timeStamp"] for p in values[0]["timeseries"][0]["data"]]
    assert stamps == ["2026-11-17T12:00:00Z", "2026-11-18T12:00:00Z"]
    assert values[0]["timeseries"][0]["metadatavalues"] == []


def test_full_is_one_bucket_and_end_is_exclusive(scenario):
    engine = MetricsEngine(scenario, Quirks())
    account = scenario.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    start = datetime(2026, 11, 18, 11, 5, tzinfo=UTC)
    one_minute = _series(
        engine, scenario, account, ["ProcessedPromptTokens"], start, start + timedelta(minutes=5), timedelta(minutes=1)
    )[0]["timeseries"][0]["data"]
    assert len(one_minute) == 5
    short = _series(
        engine,
        scenario,
        account,
        ["ProcessedPromptTokens"],
        start,
        start + timedelta(minutes=4, seconds=59),
        timedelta(minutes=1),
    )[0]["timeseries"][0]["data"]
    assert len(short) == 4
    full = _series(engine, scenario, account, ["ProcessedPromptTokens"], start, start + timedelta(minutes=5), None)[0][
        "timeseries"
    ][0]["data"]
    assert len(full) == 1 and full[0]["total"] == sum(p["total"] for p in one_minute)


def test_ingestion_delay_retention_and_gap_filling(scenario):
    account = scenario.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    engine = MetricsEngine(scenario, Quirks())
    start = NOW - timedelta(minutes=10)
    data = _series(engine, scenario, account, ["InputTokens"], start, NOW, timedelta(minutes=1))[0]["timeseries"][0][
        "data"
    ]
    assert [("total" in p) for p in data] == [True] * 5 + [False] * 5  # nothing newer than now - 5 min
    old = _series(
        engine,
        scenario,
        account,
        ["InputTokens"],
        NOW - timedelta(days=120),
        NOW - timedelta(days=94),
        timedelta(days=1),
    )[0]
    assert old["timeseries"] == []  # beyond the 93-day retention: no data, no series
    filled = scenario_from_dict(dict(samples.many_deployments_scenario(12), fill_gaps_with_zero=True))
    data = _series(
        MetricsEngine(filled, Quirks()),
        filled,
        filled.account(account.id),
        ["InputTokens"],
        start,
        NOW,
        timedelta(minutes=1),
    )[0]["timeseries"][0]["data"]
    assert [p["total"] == 0.0 for p in data] == [False] * 5 + [True] * 5


def test_top_truncates_silently_and_orders(scenario):
    engine = MetricsEngine(scenario, Quirks())
    account = scenario.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-many"))
    start, end = datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC)
    everything = _series(
        engine, scenario, account, ["GeneratedTokens"], start, end, timedelta(days=1), "ModelDeploymentName eq '*'"
    )[0]["timeseries"]
    assert len(everything) == 12
    totals = [s["data"][0]["total"] for s in everything]
    assert totals == sorted(totals, reverse=True)
    top3 = _series(
        engine,
        scenario,
        account,
        ["GeneratedTokens"],
        start,
        end,
        timedelta(days=1),
        "ModelDeploymentName eq '*'",
        top=3,
    )[0]["timeseries"]
    assert top3 == everything[:3]
    asc = _series(
        engine,
        scenario,
        account,
        ["GeneratedTokens"],
        start,
        end,
        timedelta(days=1),
        "ModelDeploymentName eq '*'",
        top=3,
        desc=False,
    )[0]["timeseries"]
    assert asc == list(reversed(everything))[:3]


def test_filters_values_case_insensitively_and_lowercases_dimension_names(scenario):
    engine = MetricsEngine(scenario, Quirks())
    account = scenario.account(samples.account_id(samples.SUB_A, "rg-ai", "foundry-weu"))
    start, end = datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC)
    series = _series(
        engine,
        scenario,
        account,
        ["TotalTokens"],
        start,
        end,
        timedelta(days=1),
        "modeldeploymentNAME eq 'GPT5 CHAT' and Region eq '*' and ModelName eq '*'",
    )[0]["timeseries"]
    assert len(series) == 1
    assert series[0]["metadatavalues"] == [
        {"name": {"value": "modeldeploymentname", "localizedValue": "modeldeploymentname"}, "value": "gpt5 chat"},
        {"name": {"value": "region", "localizedValue": "region"}, "value": "Sweden Central"},
        {"name": {"value": "modelname", "localizedValue": "modelname"}, "value": "gpt-5"},
    ]
    both = _series(
        engine,
        scenario,
        account,
        ["TotalTokens"],
        start,
        end,
        timedelta(days=1),
        "ModelDeploymentName eq 'phi' or ModelDeploymentName eq 'gpt5 chat'",
    )[0]["timeseries"]
    assert {s["metadatavalues"][0]["value"] for s in both} == {"phi", "gpt5 chat"}
    none = _series(
        engine, scenario, account, ["TotalTokens"], start, end, timedelta(days=1), "ModelDeploymentName eq 'nope'"
    )[0]["timeseries"]
    assert none == []


def test_unreported_dimension_is_empty_and_rollup_merges(scenario):
    raw = samples.small_scenario()
    raw["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"][0]["deployments"][1]["region"] = None
    scen = scenario_from_dict(raw)
    engine = MetricsEngine(scen, Quirks())
    account = scen.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    start, end = datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC)
    series = _series(engine, scen, account, ["InputTokens"], start, end, timedelta(days=1), "Region eq '*'")[0][
        "timeseries"
    ]
    assert sorted(s["metadatavalues"][0]["value"] for s in series) == ["__Empty", "westeurope"]
    rolled = _series(
        engine,
        scen,
        account,
        ["InputTokens"],
        start,
        end,
        timedelta(days=1),
        "Region eq '*'",
        rollupby=frozenset({"region"}),
    )[0]["timeseries"]
    assert len(rolled) == 1 and rolled[0]["metadatavalues"] == []
    assert rolled[0]["data"][0]["total"] == sum(s["data"][0]["total"] for s in series)


def test_filter_grammar():
    flt = parse_filter("A eq 'a1' and B eq 'b1' or B eq 'b2' and C eq '*'")
    assert [c.dimension for c in flt.constraints.values()] == ["A", "B", "C"]
    assert flt.constraints["b"].matches("B2") and not flt.constraints["b"].matches("b3")
    quoted = parse_filter("Model Deployment eq 'it''s a ''test'' déploiement' and ApiName eq 'x y'")
    assert quoted.constraints["model deployment"].groups[0][0].value == "it's a 'test' déploiement"
    assert parse_filter("(A eq 'x' or A eq 'y') and B sw 'pre'").constraints["b"].matches("PREFIX")
    assert parse_filter("dim %2528test%2529 1 eq '*'").dimensions == ["dim (test) 1"]
    with pytest.raises(QueryError, match="cannot separate two different metadata names"):
        parse_filter("A eq 'a1' and B eq 'b1' and C eq '*' or B eq 'b2'")
    with pytest.raises(QueryError, match="Only 'eq' operator"):
        parse_filter("A sw 'a' or A sw 'b'")
    with pytest.raises(QueryError):
        parse_filter("A eq 'unterminated")


def test_dimension_validation(scenario):
    account = scenario.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    specs = resolve_metrics(account, ["ProcessedPromptTokens", "InputTokens"])
    flt = parse_filter("ModelName eq '*' and ModelDeploymentName eq '*'")
    with pytest.raises(QueryError) as err:
        effective_filter(specs, flt, True)
    assert err.value.message.startswith(
        "Metric: ProcessedPromptTokens does not support requested dimension combination: "
        "modelname,modeldeploymentname, supported ones are: ApiName,ModelDeploymentName,FeatureName,UsageChannel,"
        "Region,ModelVersion, TraceId: {"
    )
    relaxed = effective_filter(specs, flt, False)
    assert relaxed["ProcessedPromptTokens"].dimensions == ["ModelDeploymentName"]
    assert relaxed["InputTokens"].dimensions == ["ModelName", "ModelDeploymentName"]
    with pytest.raises(QueryError) as err:
        resolve_metrics(account, ["InputTokens", "Nope"])
    assert err.value.message == (
        "Failed to find metric configuration for provider: Microsoft.CognitiveServices, resource Type: accounts, "
        "metric: Nope, Valid metrics: ProcessedPromptTokens,GeneratedTokens,TokenTransaction,AzureOpenAIRequests,"
        "InputTokens,OutputTokens,TotalTokens,ModelRequests"
    )


def test_time_parameters():
    assert parse_timespan("2025-01-01T00:00:00Z/2025-01-03T00:00:00Z", NOW) == (
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 3, tzinfo=UTC),
    )
    assert parse_timespan("2025-01-01T00:00:00Z/P2D", NOW)[1] == datetime(2025, 1, 3, tzinfo=UTC)
    assert parse_timespan("PT3600.0S/2025-01-01T01:00:00.0000000Z", NOW)[0] == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_timespan("P1D", NOW) == (NOW - timedelta(days=1), NOW)
    with pytest.raises(
        QueryError,
        match=r"^Detected invalid time interval input: 2025-01-01T00:00:00 01:00/P1D, "
        r"supported Iso 8601 time interval format: \(Datetime/Datetime, "
        r"Datetime/Duration, Duration/Datetime, Duration\)$",
    ):
        parse_timespan("2025-01-01T00:00:00 01:00/P1D", NOW)
    assert parse_interval("PT1H", False) == timedelta(hours=1)
    assert parse_interval("FULL", False) is None
    with pytest.raises(QueryError) as err:
        parse_interval("PT3M", False)
    assert err.value.message == (
        "Invalid time grain duration: PT3M, supported ones are: 00:01:00,00:05:00,00:15:00,"
        "00:30:00,01:00:00,06:00:00,12:00:00,1.00:00:00"
    )
    assert parse_interval("PT3M", True) == timedelta(minutes=5)
    assert parse_top(None) == 10 and parse_top("2147483647") == 2147483647
    with pytest.raises(QueryError, match="Detected invalid TopN value"):
        parse_top("2147483648")
    assert parse_orderby("Total desc", "total desc") == ("total", True)
    assert parse_orderby("sum asc", "total desc") == ("total", False)


def _call(app, method, path, query="", token=None, body=b""):
    headers = {"host": "127.0.0.1:1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    ctx = Context()
    return app.handle(Request(method, path, query, headers, body, "127.0.0.1", "https://127.0.0.1:1"), ctx), ctx


def test_in_process_round_trip_and_per_metric_errors():
    raw = samples.small_scenario(
        metric_errors=[
            {
                "account": "aoai-weu",
                "metric": "GeneratedTokens",
                "code": "InvalidSamplingType",
                "message": "Sampling type is not found. Metric:GeneratedTokens",
            }
        ]
    )
    app = EmulatorApp(scenario_from_dict(raw))
    form = (
        f"client_id={samples.MAIN_CLIENT}&client_secret={samples.MAIN_SECRET}&grant_type=client_credentials"
        "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
    ).encode()
    response, _ = _call(app, "POST", f"/{samples.TENANT}/oauth2/v2.0/token", body=form)
    token = response.body["access_token"]
    path = samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu") + "/providers/Microsoft.Insights/metrics"
    response, ctx = _call(
        app,
        "GET",
        path,
        "api-version=2024-02-01&metricnames=GeneratedTokens,TokenTransaction"
        "&timespan=2026-11-18T00:00:00Z/2026-11-19T00:00:00Z&interval=P1D&aggregation=Total",
        token,
    )
    assert response.status == 200 and ctx.kind == "metrics"
    first, second = response.body["value"]
    assert (first["errorCode"], first["timeseries"]) == ("InvalidSamplingType", [])
    assert second["errorCode"] == "Success" and second["timeseries"][0]["data"][0]["total"] > 0
    assert response.body["namespace"] == "microsoft.cognitiveservices/accounts"
    assert response.body["interval"] == "P1D" and response.body["cost"] == 1439
    response, _ = _call(
        app,
        "GET",
        path,
        "api-version=2024-02-01&metricnames=TokenTransaction&aggregation=Average"
        "&timespan=2026-11-18T00:00:00Z/2026-11-19T00:00:00Z",
        token,
    )
    assert response.body["value"][0]["errorCode"] == "InvalidSamplingType"
    response, _ = _call(app, "GET", path, "api-version=2021-05-01&metricnames=TokenTransaction", token)
    assert response.status == 400 and response.body["error"]["code"] == "NoRegisteredProviderFound"


def _token(app, scope="https%3A%2F%2Fmetrics.monitor.azure.com%2F.default"):
    form = (
        f"client_id={samples.MAIN_CLIENT}&client_secret={samples.MAIN_SECRET}&grant_type=client_credentials"
        f"&scope={scope}"
    ).encode()
    response, _ = _call(app, "POST", f"/{samples.TENANT}/oauth2/v2.0/token", body=form)
    return response.body["access_token"]


def test_batch_region_from_host_header_and_metadata_result_type():
    app = EmulatorApp(scenario_from_dict(samples.small_scenario()))
    token = _token(app)
    account_id = samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu")
    body = ('{"resourceids": ["' + account_id + '"]}').encode()
    query = (
        "api-version=2024-02-01&metricnamespace=Microsoft.CognitiveServices/accounts&metricnames=InputTokens"
        "&starttime=2026-11-18T00:00:00.000Z&endtime=2026-11-19T00:00:00.000Z&interval=PT6H"
    )
    headers = {"host": "westeurope.localhost:8443", "authorization": f"Bearer {token}"}
    ctx = Context()
    response = app.handle(
        Request(
            "POST",
            f"/subscriptions/{samples.SUB_A}/metrics:getBatch",
            query,
            headers,
            body,
            "127.0.0.1",
            "https://westeurope.localhost:8443",
        ),
        ctx,
    )
    assert response.status == 200 and ctx.region == "westeurope" and ctx.resource_count == 1
    item = response.body["values"][0]
    assert item["interval"] == "PT6H" and len(item["value"][0]["timeseries"][0]["data"]) == 4
    headers["host"] = "127.0.0.1:8443"
    response = app.handle(
        Request(
            "POST",
            f"/subscriptions/{samples.SUB_A}/metrics:getBatch",
            query,
            headers,
            body,
            "127.0.0.1",
            "https://127.0.0.1:8443",
        ),
        Context(),
    )
    assert response.status == 400 and "region" in response.body["error"]["message"]
    arm_token = _token(app, "https%3A%2F%2Fmanagement.azure.com%2F.default")
    path = samples.account_id(samples.SUB_A, "rg-ai", "foundry-weu") + "/providers/Microsoft.Insights/metrics"
    response, _ = _call(
        app,
        "GET",
        path,
        "api-version=2024-02-01&metricnames=InputTokens&resultType=Metadata"
        "&timespan=2026-11-18T00:00:00Z/2026-11-19T00:00:00Z&$filter=ModelName eq '*'",
        arm_token,
    )
    assert "cost" not in response.body and "interval" not in response.body
    assert sorted(ts["metadatavalues"][0]["value"] for ts in response.body["value"][0]["timeseries"]) == [
        "Phi-4",
        "gpt-5",
    ]
    assert all("data" not in ts for ts in response.body["value"][0]["timeseries"])
    response, ctx = _call(app, "OPTIONS", path, "", arm_token)
    assert response.status == 405 and not ctx.forbidden


def test_fast_json_rendering_equals_json_dumps_of_the_dicts():
    import json

    raw = samples.many_deployments_scenario(12)
    raw["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"][0]["deployments"][0]["name"] = (
        "dép 'quoted' \"x\""
    )
    for fill in (False, True):
        app = EmulatorApp(scenario_from_dict(dict(raw, fill_gaps_with_zero=fill)))
        token = _token(app, "https%3A%2F%2Fmanagement.azure.com%2F.default")
        for query in (
            "metricnames=InputTokens,TokenTransaction&interval=PT1H&top=5&$filter=ModelDeploymentName%20eq"
            "%20%27*%27&timespan=2026-11-19T00:00:00Z/2026-11-20T07:00:00Z",
            "metricnames=InputTokens&interval=P1D&timespan=2026-08-01T00:00:00Z/2026-11-20T00:00:00Z",
            "metricnames=InputTokens&resultType=Metadata&$filter=ModelName%20eq%20%27*%27",
            "metricnames=InputTokens&aggregation=average",
            "metricnames=InputTokens&interval=FULL&timespan=P3D&aggregation=count",
        ):
            for account in ("aoai-weu", "aoai-many"):
                path = samples.account_id(samples.SUB_A, "rg-ai", account) + "/providers/Microsoft.Insights/metrics"
                response, _ = _call(app, "GET", path, "api-version=2024-02-01&" + query, token)
                assert response.status == 200
                text = response.body.render()
                assert text == json.dumps(response.body.to_obj(), ensure_ascii=False, separators=(",", ":"))
