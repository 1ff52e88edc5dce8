"""Deployment activity beyond tokens in the emulator (opt-in per deployment): requests by status code,
spillover and service tier, and provisioned utilisation series; deterministic, and equal to the generator's
expected_daily_requests / expected_ptu_hourly computed without the HTTP layer."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from doow_pipeline_tests.azure_emulator import samples
from doow_pipeline_tests.azure_emulator.arm import metric_definitions_json
from doow_pipeline_tests.azure_emulator.metrics import (
    MetricsEngine,
    MetricsRequest,
    effective_filter,
    make_window,
    resolve_metrics,
)
from doow_pipeline_tests.azure_emulator.query import parse_filter
from doow_pipeline_tests.azure_emulator.quirks import Quirks
from doow_pipeline_tests.azure_emulator.scenario import ScenarioError, scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import (
    day_usage,
    expected_daily_requests,
    expected_ptu_hourly,
    request_classes,
)

SCENARIO = scenario_from_dict(samples.activity_signals_scenario())
ACCOUNT = SCENARIO.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-ptu"))
NOW = SCENARIO.current_time()
FIRST, LAST = date(2026, 11, 8), date(2026, 11, 15)
CLASS_FILTER = (
    "ModelDeploymentName eq '*' and StatusCode eq '*' and IsSpillover eq '*' and "
    "ServiceTierRequest eq '*' and ServiceTierResponse eq '*'"
)


def query(names, grain, flt, aggregations=("total",), first=FIRST, last=LAST, account=ACCOUNT):
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    request = MetricsRequest(list(names), start, end, grain, list(aggregations), parse_filter(flt), 1000, True)
    specs = resolve_metrics(account, list(names))
    window = make_window(request, NOW, SCENARIO)
    engine = MetricsEngine(SCENARIO, Quirks())
    return engine.resource_values(account, specs, request, effective_filter(specs, request.filter, True), window)


def test_request_classes_add_up_to_the_days_requests_and_follow_the_mix():
    for deployment in ACCOUNT.deployments:
        for offset in range(30):
            day = FIRST + timedelta(days=offset)
            classes = request_classes(SCENARIO.seed, ACCOUNT, deployment, day)
            assert sum(n for _c, n in classes) == day_usage(SCENARIO.seed, ACCOUNT, deployment, day)[2]
    main = next(d for d in ACCOUNT.deployments if d.name == "ptu-main")
    burst = date.fromisoformat(samples.THROTTLE_BURST_DAY)

    def throttled_share(day):
        classes = request_classes(SCENARIO.seed, ACCOUNT, main, day)
        return sum(n for c, n in classes if c.status_code == "429") / sum(n for _c, n in classes)

    assert 0.2 <= throttled_share(burst) <= 0.6  # 40% x a factor in [0.5, 1.5)
    assert all(throttled_share(burst + timedelta(days=k)) < 0.031 for k in (-2, -1, 1, 2))
    plain = next(d for d in ACCOUNT.deployments if d.name == "plain")
    assert [c.status_code for c, _n in request_classes(SCENARIO.seed, ACCOUNT, plain, burst)] == ["200"]


def test_p1d_request_splits_equal_the_generator_and_unsplit_totals_are_unchanged():
    expected: dict[tuple, int] = defaultdict(int)
    for row in expected_daily_requests(SCENARIO, FIRST, LAST):
        if row["resource_id"] == ACCOUNT.id and row["family"] == "models":
            expected[
                (
                    row["day"],
                    row["deployment"],
                    row["status_code"],
                    row["is_spillover"],
                    row["tier_request"],
                    row["tier_response"],
                )
            ] += row["requests"]
    got: dict[tuple, int] = {}
    for series in query(["ModelRequests"], timedelta(days=1), CLASS_FILTER)[0]["timeseries"]:
        key = tuple(m["value"] for m in series["metadatavalues"])
        for offset, point in enumerate(series["data"]):
            if point.get("total"):
                got[(FIRST + timedelta(days=offset), *key)] = int(point["total"])
    assert got == dict(expected)
    assert {k[2] for k in got} == {"200", "429", "500"} and {k[3] for k in got} == {"true", "false"}
    assert any(k[4] == "Priority" and k[5] == "Default" for k in got)  # downgraded priority requests
    # Without the class split, each deployment's daily requests are the generator's day_usage requests.
    for series in query(["AzureOpenAIRequests"], timedelta(days=1), "ModelDeploymentName eq '*'")[0]["timeseries"]:
        deployment = next(d for d in ACCOUNT.deployments if d.name == series["metadatavalues"][0]["value"])
        assert [int(p.get("total", 0)) for p in series["data"]] == [
            day_usage(SCENARIO.seed, ACCOUNT, deployment, FIRST + timedelta(days=k))[2] for k in range(8)
        ]


def test_hourly_utilisation_equals_the_generator_for_provisioned_deployments_only():
    expected = {
        (r["hour"], r["deployment"]): (r["average"], r["maximum"])
        for r in expected_ptu_hourly(SCENARIO, FIRST, LAST)
        if r["resource_id"] == ACCOUNT.id and r["family"] == "models"
    }
    for metric in ("ProvisionedUtilization", "AzureOpenAIProvisionedManagedUtilizationV2"):
        answer = query([metric], timedelta(hours=1), "ModelDeploymentName eq '*'", ("average", "maximum"))[0]
        assert answer["unit"] == "Percent"
        got = {}
        for series in answer["timeseries"]:
            name = series["metadatavalues"][0]["value"]
            for offset, point in enumerate(series["data"]):
                hour = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC) + timedelta(hours=offset)
                got[(hour, name)] = (point["average"], point["maximum"])
        assert got == expected, metric
    assert {name for _h, name in expected} == {"ptu-main", "ptu-quiet"}
    assert max(m for (_h, name), (_a, m) in expected.items() if name == "ptu-main") == 100.0
    assert max(m for (_h, name), (_a, m) in expected.items() if name == "ptu-quiet") < 90.0
    # A day bucket: the mean of the hourly averages and the largest hourly maximum.
    day = query(
        ["ProvisionedUtilization"],
        timedelta(days=1),
        "ModelDeploymentName eq 'ptu-main'",
        ("average", "maximum"),
        first=FIRST,
        last=FIRST,
    )[0]["timeseries"][0]["data"][0]
    hours = [v for (h, name), v in expected.items() if name == "ptu-main" and h.date() == FIRST]
    assert day["maximum"] == max(m for _a, m in hours)
    assert day["average"] == pytest.approx(sum(a for a, _m in hours) / 24)


def test_utilisation_metrics_are_defined_only_where_a_deployment_is_provisioned():
    names = [d["name"]["value"] for d in metric_definitions_json(ACCOUNT)["value"]]
    assert names[-2:] == ["AzureOpenAIProvisionedManagedUtilizationV2", "ProvisionedUtilization"]
    ptu = metric_definitions_json(ACCOUNT)["value"][-1]
    assert (ptu["unit"], ptu["primaryAggregationType"]) == ("Percent", "Average")
    assert "Maximum" in ptu["supportedAggregationTypes"]
    other = SCENARIO.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    assert all(d["name"]["value"] != "ProvisionedUtilization" for d in metric_definitions_json(other)["value"])
    total = query(["ProvisionedUtilization"], timedelta(hours=1), None, ("total",))[0]
    assert total["errorCode"] == "InvalidSamplingType"


def test_scenarios_without_the_opt_ins_answer_as_before():
    base = scenario_from_dict(samples.small_scenario())
    weu = base.account(samples.account_id(samples.SUB_A, "rg-ai", "aoai-weu"))
    assert all(d.requests_mix is None and d.provisioned is None and not d.changes for d in weu.deployments)
    classes = request_classes(base.seed, weu, weu.deployments[0], date(2026, 11, 12))
    assert [(c.status_code, c.is_spillover, c.tier_request, c.tier_response) for c, _n in classes] == [
        ("200", "false", "default", "default")
    ]


def test_a_malformed_mix_names_the_field():
    scenario = samples.activity_signals_scenario()
    deployment = scenario["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"][-1]["deployments"][0]
    deployment["requests_mix"]["throttled"] = 1.5
    with pytest.raises(ScenarioError, match="requests_mix.throttled: 1.5 is not a share"):
        scenario_from_dict(scenario)
