"""Throttling budgets, fault injection, latency and the control API, through the real SDKs: 429/529 carry
Retry-After and the SDKs' retry honours it; injected statuses, resets and stalls behave as on the wire."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from doow_pipeline_tests.azure_emulator import samples as S
from doow_pipeline_tests.azure_emulator.harness import EmulatorError, run_emulator

UTC = UTC
NS = "Microsoft.CognitiveServices/accounts"
WEU = S.account_id(S.SUB_A, "rg-ai", "aoai-weu")
FOUNDRY = S.account_id(S.SUB_A, "rg-ai", "foundry-weu")
THROTTLE = {"arm_reads_bucket": 3, "arm_reads_refill_per_s": 1, "definitions_per_5min": 3, "batch_calls_per_min": 2}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(S.small_scenario(throttle=THROTTLE), state_dir=tmp_path_factory.mktemp("emu-faults")) as e:
        yield e


@pytest.fixture
def fresh(emu):
    emu.reset()
    yield emu
    emu.reset()


@pytest.fixture(scope="module")
def cred(emu):
    return emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)


def _stamp(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))


def test_arm_token_bucket_429_with_retry_after_is_honoured_by_the_sdk(fresh, cred):
    monitor = fresh.monitor_client(cred, S.SUB_A, retry_total=2, retry_backoff_factor=0.01)
    for _ in range(4):  # the bucket holds 3 reads and refills 1 per second
        monitor.metrics.list(WEU, metricnames="TokenTransaction", timespan="PT1H")
    log = [r for r in fresh.requests("metrics")]
    assert [r["status"] for r in log] == [200, 200, 200, 429, 200]
    assert log[3]["error_code"] == "TooManyRequests"
    assert (_stamp(log[4]) - _stamp(log[3])).total_seconds() >= 0.9  # waited Retry-After: 1


def test_rate_limit_headers_count_down(fresh, cred):
    monitor = fresh.monitor_client(cred, S.SUB_A, retry_total=0)
    seen = []
    for _ in range(2):
        monitor.metrics.list(
            WEU,
            metricnames="TokenTransaction",
            timespan="PT1H",
            cls=lambda response, body, headers: seen.append(dict(response.http_response.headers)),
        )
    assert [h["x-ms-ratelimit-remaining-subscription-reads"] for h in seen] == ["2", "1"]
    assert all(
        "x-ms-ratelimit-remaining-subscription-global-reads" in h
        and "x-ms-request-id" in h
        and "x-ms-correlation-request-id" in h
        for h in seen
    )
    with pytest.raises(HttpResponseError) as err:
        for _ in range(3):
            monitor.metrics.list(WEU, metricnames="TokenTransaction", timespan="PT1H")
    assert err.value.status_code == 429 and err.value.response.headers["Retry-After"] == "1"
    assert err.value.error.code == "TooManyRequests"


def test_metric_definitions_limit_per_five_minutes(fresh, cred):
    monitor = fresh.monitor_client(cred, S.SUB_A, retry_total=0)
    for i in range(3):
        if i:
            time.sleep(1.05)  # stay within the ARM bucket
        list(monitor.metric_definitions.list(WEU))
    time.sleep(1.05)
    with pytest.raises(HttpResponseError) as err:
        list(monitor.metric_definitions.list(WEU))
    assert err.value.status_code == 429 and err.value.error.code == "ResourceRequestsThrottled"
    retry_after = int(err.value.response.headers["Retry-After"])
    assert 290 <= retry_after <= 300
    assert err.value.error.message == (
        "Number of requests for action 'Microsoft.Insights/metricDefinitions/read' exceeded the limit of '3' for "
        f"time interval '00:05:00'. Please try again after '{retry_after}' seconds."
    )


def test_batch_budget_529_and_sdk_honours_retry_after(fresh, cred):
    client = fresh.metrics_client(cred, "westeurope", retry_total=0)
    for _ in range(2):
        client.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"])
    with pytest.raises(HttpResponseError) as err:
        client.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"])
    assert err.value.status_code == 529 and 1 <= int(err.value.response.headers["Retry-After"]) <= 60
    fresh.reset()
    [fault] = fresh.add_faults([{"match": "batch", "action": {"status": 529}, "nth": [1], "retry_after": 1}])
    retrying = fresh.metrics_client(cred, "westeurope", retry_total=2, retry_backoff_factor=0.01)
    started = time.monotonic()
    results = retrying.query_resources(
        resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"], timespan=timedelta(days=1)
    )
    assert results and time.monotonic() - started >= 0.9
    statuses = [(r["status"], r.get("fault"), r["resource_count"]) for r in fresh.requests("batch")]
    assert statuses == [(529, fault, 1), (200, None, 1)]


def test_status_faults_by_call_number_then_success(fresh, cred):
    [fault] = fresh.add_faults([{"match": "metrics", "action": {"status": 503}, "nth": [1, 2]}])
    monitor = fresh.monitor_client(cred, S.SUB_A, retry_total=2, retry_backoff_factor=0.01)
    monitor.metrics.list(WEU, metricnames="TokenTransaction", timespan="PT1H")
    assert [(r["status"], r.get("fault")) for r in fresh.requests("metrics")] == [
        (503, fault),
        (503, fault),
        (200, None),
    ]
    assert fresh.faults()[0]["fired"] == 2


def test_connection_reset_is_retried_by_the_sdk(fresh, cred):
    fresh.add_faults({"match": "definitions", "action": "reset", "nth": 1})
    monitor = fresh.monitor_client(cred, S.SUB_A, retry_total=2, retry_backoff_factor=0.01)
    assert list(monitor.metric_definitions.list(WEU))
    assert [r["status"] for r in fresh.requests("definitions")] == ["reset", 200]
    fresh.add_faults({"match": "definitions", "action": "reset"})
    failing = fresh.monitor_client(cred, S.SUB_A, retry_total=1, retry_backoff_factor=0.01)
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        list(failing.metric_definitions.list(WEU))


def test_truncate_drops_the_connection_mid_body(fresh, cred):
    [fault] = fresh.add_faults([{"match": "batch", "action": "truncate", "nth": [1]}])
    client = fresh.metrics_client(cred, "westeurope", retry_total=0)
    from azure.core.exceptions import IncompleteReadError

    # azure-core reads the body inside its pipeline and names a body cut short by the peer.
    with pytest.raises(IncompleteReadError):
        client.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"])
    assert client.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"])
    assert [(r["status"], r.get("fault")) for r in fresh.requests("batch")] == [("truncated", fault), (200, None)]


def test_delay_stalls_and_regex_faults_with_custom_body(fresh, cred):
    fresh.add_faults(
        [
            {"match": "accounts", "action": {"delay": 0.6}, "nth": [1]},
            {
                "match": r"/metrics:getBatch$",
                "action": {"status": 500},
                "body": {"error": {"code": "InternalServerError", "message": "Detected Internal Error."}},
            },
        ]
    )
    client = fresh.cognitive_client(cred, S.SUB_A, retry_total=0)
    started = time.monotonic()
    assert list(client.accounts.list_by_resource_group("rg-us"))
    assert time.monotonic() - started >= 0.6
    batch = fresh.metrics_client(cred, "westeurope", retry_total=0)
    with pytest.raises(HttpResponseError) as err:
        batch.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"])
    assert err.value.status_code == 500 and "Detected Internal Error." in err.value.message
    fresh.clear_faults()
    assert batch.query_resources(resource_ids=[WEU], metric_namespace=NS, metric_names=["InputTokens"])


def test_probability_faults_are_reproducible_and_bad_specs_rejected(fresh, cred):
    fresh.add_faults(
        [
            {"match": "subscription", "action": {"status": 500}, "probability": 0.0},
            {"match": "token", "action": {"status": 503}, "probability": 1.0, "times": 1},
        ]
    )
    monitor = fresh.monitor_client(
        fresh.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET), S.SUB_A, retry_total=2, retry_backoff_factor=0.01
    )
    list(monitor.metric_definitions.list(WEU))
    tokens = [r["status"] for r in fresh.requests("token")]
    assert tokens[0] == 503 and tokens[-1] == 200
    with pytest.raises(EmulatorError):
        fresh.add_faults([{"match": "metrics", "action": "explode"}])


def test_clock_moves_the_visible_window(fresh, cred):
    monitor = fresh.monitor_client(cred, S.SUB_A, retry_total=0)

    def points(at: str) -> list:
        fresh.set_clock(at)
        response = monitor.metrics.list(
            WEU,
            metricnames="InputTokens",
            interval="PT1M",
            aggregation="Total",
            timespan="2026-11-20T05:50:00Z/2026-11-20T06:00:00Z",
        )
        return [p.total is not None for p in response.value[0].timeseries[0].data]

    assert points("2026-11-20T06:00:00Z") == [True] * 5 + [False] * 5
    assert points("2026-11-20T06:03:00Z") == [True] * 8 + [False] * 2
    time.sleep(1.1)


def test_latency_per_call_and_concurrent_handling(tmp_path):
    with run_emulator(S.small_scenario(latency_ms=300), state_dir=tmp_path) as emu:
        cred = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)
        cred.get_token("https://management.azure.com/.default")
        monitor = emu.monitor_client(cred, S.SUB_A, retry_total=0)
        errors = []

        def call():
            try:
                monitor.metrics.list(WEU, metricnames="TokenTransaction", timespan="PT1H")
            except Exception as exc:  # noqa: BLE001  # pragma: no cover - any error in a thread is collected, reported below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(8)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert not errors
        assert 0.3 <= elapsed < 1.5  # 8 calls of 300 ms each, served concurrently
        assert all(r["duration_ms"] >= 300 for r in emu.requests("metrics"))
        assert emu.health()["status"] == "ok"


def test_spec_violations_fail_the_block_and_the_fixture_starts_emulators(emulator_factory):
    emu = emulator_factory(S.small_scenario())
    assert emu.health()["spec_validation"] is True
    cred = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)
    emu.add_faults({"match": "accounts", "action": {"status": 500}, "body": {"unexpected": "shape"}})
    with pytest.raises(HttpResponseError):
        list(emu.cognitive_client(cred, S.SUB_A, retry_total=0).accounts.list())
    violations = emu.violations()
    assert violations and violations[0]["kind"] == "accounts_list" and violations[0]["status"] == 500
    emu.clear_violations()  # leave the fixture's teardown clean


def test_exit_raises_when_violations_were_recorded(tmp_path):
    with pytest.raises(AssertionError, match="violate the Azure specs"):
        with run_emulator(S.small_scenario(), state_dir=tmp_path) as emu:
            emu.add_faults({"match": "batch", "action": {"status": 500}, "body": ["not", "an", "error"]})
            emu.add_faults({"match": "metrics", "action": {"status": 500}, "body": {"nope": 1}})
            cred = emu.credential(S.TENANT, S.MAIN_CLIENT, S.MAIN_SECRET)
            with pytest.raises(HttpResponseError):
                emu.monitor_client(cred, S.SUB_A, retry_total=0).metrics.list(WEU, metricnames="InputTokens")
