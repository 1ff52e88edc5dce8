"""The spec validator: committed schemas against response bodies, the real SDK models, and broken bodies.

Every response body in fixtures/responses (bodies shaped like Azure's answers for Azure OpenAI
accounts, written for these tests, including the fields Microsoft's own examples carry: cost, interval,
errorCode, metricClass, additionalInfo, ...) must validate with its kind and deserialize through the SDK
models the pipeline uses; deliberately broken bodies must be rejected with a readable reason.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.monitor import MonitorManagementClient
from azure.monitor.querymetrics import MetricsQueryResult
from azure.monitor.querymetrics._utils.model_base import _deserialize as querymetrics_deserialize
from azure.monitor.querymetrics.models._models import ErrorResponse as BatchErrorResponse
from azure.monitor.querymetrics.models._models import MetricResultsResponse

from doow_pipeline_tests.azure_emulator import spec_validation
from doow_pipeline_tests.azure_emulator.schemas import generate
from doow_pipeline_tests.azure_emulator.spec_validation import (
    KINDS,
    SchemasNotFoundError,
    assert_valid_response,
    validate_response,
)

RESPONSES = Path(__file__).resolve().parent / "fixtures" / "responses"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Every response fixture, and the kind its 200 body is.
EXAMPLE_KINDS = {
    "account.json": "account",
    "accounts_by_resource_group.json": "accounts_list",
    "accounts_by_subscription.json": "accounts_list",
    "batch.json": "batch",
    "metric_definitions.json": "metric_definitions",
    "metrics_data.json": "metrics",
    "metrics_error_code.json": "metrics",
    "metrics_metadata.json": "metrics",
    "subscriptions.json": "subscriptions",
}
CHECKED_EXAMPLES = {path: kind for path, kind in EXAMPLE_KINDS.items() if kind is not None}


def _example(rel: str) -> dict:
    with (RESPONSES / rel).open(encoding="utf-8") as fh:
        return json.load(fh)


def _ok_body(rel: str) -> dict:
    return copy.deepcopy(_example(rel)["responses"]["200"]["body"])


def _error_examples() -> list[tuple[str, str]]:
    return [(rel, kind) for rel, kind in CHECKED_EXAMPLES.items() if "default" in _example(rel)["responses"]]


class _FakeCredential:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("not-a-token", 4102444800)


@pytest.fixture(scope="module")
def monitor_deserialize():
    client = MonitorManagementClient(_FakeCredential(), "00000000-0000-0000-0000-000000000000")
    return client._deserialize  # the Deserializer every operation of the mgmt client uses


@pytest.fixture(scope="module")
def cognitive_deserialize():
    client = CognitiveServicesManagementClient(_FakeCredential(), "00000000-0000-0000-0000-000000000000")
    return client._deserialize


def _batch_results(body: dict) -> list[MetricsQueryResult]:
    """What MetricsClient.query_resources returns for this body (same two steps as the client)."""
    generated = querymetrics_deserialize(MetricResultsResponse, body)
    return [MetricsQueryResult._from_generated(value) for value in generated["values"]]


# ---------------------------------------------------------------------------------------------- examples


def test_every_example_file_is_classified():
    on_disk = {p.name for p in RESPONSES.glob("*.json")}
    assert on_disk == set(EXAMPLE_KINDS), "classify new response fixtures in EXAMPLE_KINDS"


@pytest.mark.parametrize("rel", sorted(CHECKED_EXAMPLES))
def test_official_example_200_validates(rel):
    kind = CHECKED_EXAMPLES[rel]
    assert validate_response(kind, 200, _ok_body(rel)) == []


@pytest.mark.parametrize("rel,kind", _error_examples())
def test_official_example_error_validates(rel, kind):
    body = _example(rel)["responses"]["default"]["body"]
    assert validate_response(kind, 400, body) == []
    assert validate_response("error", 400, body) == []
    # azure-core/azure-mgmt-core parse it into the code and message of HttpResponseError.
    parsed = ARMErrorFormat(body)
    assert parsed.code and parsed.message


def test_batch_error_examples_parse_with_querymetrics_models():
    for rel, kind in CHECKED_EXAMPLES.items():
        if kind != "batch":
            continue
        body = _example(rel)["responses"]["default"]["body"]
        error = querymetrics_deserialize(BatchErrorResponse, body)
        assert error.error.code == "BadRequest"
        assert error.error.message
        assert error.error.additional_info[0].info.startswith("TraceId=")


@pytest.mark.parametrize("rel", sorted(r for r, k in CHECKED_EXAMPLES.items() if k == "metrics"))
def test_metrics_examples_deserialize_through_mgmt_monitor(rel, monitor_deserialize):
    raw = _ok_body(rel)
    response = monitor_deserialize("Response", raw)
    assert response.timespan == raw["timespan"]
    assert len(response.value) == len(raw["value"]) > 0
    for metric, raw_metric in zip(response.value, raw["value"], strict=True):
        assert metric.name.value == raw_metric["name"]["value"]
        assert metric.unit == raw_metric["unit"]
        assert metric.id == raw_metric["id"]
        assert len(metric.timeseries) == len(raw_metric["timeseries"])
        for series, raw_series in zip(metric.timeseries, raw_metric["timeseries"], strict=True):
            assert len(series.metadatavalues or []) == len(raw_series.get("metadatavalues", []))
            assert len(series.data or []) == len(raw_series.get("data", []))
            for point, raw_point in zip(series.data or [], raw_series.get("data", []), strict=True):
                assert isinstance(point.time_stamp, datetime) and point.time_stamp.tzinfo is not None
                for field in ("total", "average", "count", "minimum", "maximum"):
                    assert getattr(point, field) == raw_point.get(field)
        if raw_metric.get("errorCode"):
            assert metric.error_code == raw_metric["errorCode"]
    # At least the data examples carry real data values.
    if rel in ("metrics_data.json", "metrics_error_code.json"):
        assert any(
            any(getattr(point, f) is not None for f in ("total", "average", "count", "minimum", "maximum"))
            for metric in response.value
            for series in metric.timeseries
            for point in series.data
        )


@pytest.mark.parametrize("rel", sorted(r for r, k in CHECKED_EXAMPLES.items() if k == "metric_definitions"))
def test_metric_definition_examples_deserialize_through_mgmt_monitor(rel, monitor_deserialize):
    raw = _ok_body(rel)
    collection = monitor_deserialize("MetricDefinitionCollection", raw)
    assert len(collection.value) == len(raw["value"]) > 0
    for definition, raw_definition in zip(collection.value, raw["value"], strict=True):
        assert definition.name.value == raw_definition["name"]["value"]
        assert definition.unit == raw_definition.get("unit")
        assert definition.primary_aggregation_type == raw_definition.get("primaryAggregationType")
        raw_dimensions = raw_definition.get("dimensions", [])
        assert [d.value for d in definition.dimensions or []] == [d["value"] for d in raw_dimensions]
        for availability in definition.metric_availabilities or []:
            assert isinstance(availability.time_grain, timedelta)


@pytest.mark.parametrize("rel", sorted(r for r, k in CHECKED_EXAMPLES.items() if k == "batch"))
def test_batch_examples_deserialize_through_querymetrics(rel):
    raw = _ok_body(rel)
    results = _batch_results(raw)
    assert len(results) == len(raw["values"]) > 0
    for result, raw_item in zip(results, raw["values"], strict=True):
        assert result.resource_region == raw_item.get("resourceregion")
        assert result.namespace == raw_item.get("namespace")
        assert result.timespan == f"{raw_item['starttime']}/{raw_item['endtime']}"
        assert isinstance(result.granularity, timedelta)
        assert [m.name for m in result.metrics] == [m["name"]["value"] for m in raw_item["value"]]
        for metric, raw_metric in zip(result.metrics, raw_item["value"], strict=True):
            assert metric.unit == raw_metric["unit"]
            assert metric.id == raw_metric["id"]
            for series, raw_series in zip(metric.timeseries, raw_metric["timeseries"], strict=True):
                raw_metadata = raw_series.get("metadatavalues", [])
                assert series.metadata_values == {m["name"]["value"]: m["value"] for m in raw_metadata}
                assert [p.total for p in series.data] == [p.get("total") for p in raw_series.get("data", [])]
                assert [p.average for p in series.data] == [p.get("average") for p in raw_series.get("data", [])]
                assert all(isinstance(p.timestamp, datetime) for p in series.data)
    assert any(
        p.total is not None or p.average is not None
        for r in results
        for m in r.metrics
        for s in m.timeseries
        for p in s.data
    )


@pytest.mark.parametrize("rel", sorted(r for r, k in CHECKED_EXAMPLES.items() if k in ("accounts_list", "account")))
def test_account_examples_deserialize_through_mgmt_cognitiveservices(rel, cognitive_deserialize):
    raw = _ok_body(rel)
    if CHECKED_EXAMPLES[rel] == "account":
        accounts, raw_accounts = [cognitive_deserialize("Account", raw)], [raw]
    else:
        result = cognitive_deserialize("AccountListResult", raw)
        accounts, raw_accounts = result.value, raw["value"]
    assert len(accounts) == len(raw_accounts) > 0
    for account, raw_account in zip(accounts, raw_accounts, strict=True):
        assert account.id == raw_account["id"]
        assert account.name == raw_account["name"]
        assert account.kind == raw_account["kind"]
        assert account.location == raw_account["location"]
        assert account.sku.name == raw_account["sku"]["name"]
        if "properties" in raw_account and "endpoint" in raw_account["properties"]:
            assert account.properties.endpoint == raw_account["properties"]["endpoint"]


def test_subscriptions_example_key_fields():
    # No installed SDK models Subscriptions_List (azure-mgmt-resource is not a dependency); check the
    # fields discovery reads are present and validate a last page, which ARM sends without nextLink.
    raw = _ok_body(SUBSCRIPTIONS)
    assert all(s["subscriptionId"] and s["tenantId"] and s["displayName"] and s["state"] for s in raw["value"])
    del raw["nextLink"]
    assert validate_response("subscriptions", 200, raw) == []


# ---------------------------------------------------------------------------------------------- broken bodies

GET_METRIC = "metrics_data.json"
DEFINITIONS = "metric_definitions.json"
BATCH = "batch.json"
ACCOUNTS = "accounts_by_subscription.json"
ACCOUNT = "account.json"
SUBSCRIPTIONS = "subscriptions.json"


def _only_problem_mentions(problems: list[str], *needles: str) -> None:
    assert problems, "expected the body to be rejected"
    assert any(all(n in p for n in needles) for p in problems), problems


def test_metrics_without_timespan_is_rejected():
    body = _ok_body(GET_METRIC)
    del body["timespan"]
    _only_problem_mentions(validate_response("metrics", 200, body), "'timespan' is a required property")


@pytest.mark.parametrize("bad_value", ["oops", {"name": "x"}, 3, None])
def test_metrics_value_of_wrong_type_is_rejected(bad_value):
    body = _ok_body(GET_METRIC)
    body["value"] = bad_value
    _only_problem_mentions(validate_response("metrics", 200, body), "$.value", "is not of type 'array'")


def test_metric_without_unit_is_rejected():
    body = _ok_body(GET_METRIC)
    del body["value"][0]["unit"]
    _only_problem_mentions(validate_response("metrics", 200, body), "$.value[0]", "'unit' is a required property")


def test_batch_metric_without_unit_and_item_without_starttime_are_rejected():
    body = _ok_body(BATCH)
    del body["values"][0]["value"][0]["unit"]
    del body["values"][1]["starttime"]
    problems = validate_response("batch", 200, body)
    _only_problem_mentions(problems, "$.values[0].value[0]", "'unit' is a required property")
    _only_problem_mentions(problems, "$.values[1]", "'starttime' is a required property")
    # The SDK is lenient here: the validator is the stricter check.
    _batch_results(_ok_body(BATCH))


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(timeStamp=None), "None is not of type 'string'"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(timeStamp="2021-04-20 09:00"), "does not match"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].update(average="7"), "'7' is not of type 'number'"),
        (lambda b: b["value"][0]["timeseries"][0]["data"][0].pop("timeStamp"), "'timeStamp' is a required property"),
        (lambda b: b["value"][0]["timeseries"][0].update(metadatavalues={"a": "b"}), "is not of type 'array'"),
        (lambda b: b["value"][0].update(name="BlobCount"), "is not of type 'object'"),
        (lambda b: b["value"][0].pop("timeseries"), "'timeseries' is a required property"),
        (lambda b: b.update(cost=-1), "less than the minimum"),
    ],
)
def test_metrics_type_and_required_violations_are_rejected(mutate, needle):
    body = _ok_body(GET_METRIC)
    mutate(body)
    _only_problem_mentions(validate_response("metrics", 200, body), needle)


def test_model_as_string_enums_accept_any_string_closed_enums_do_not():
    body = _ok_body(GET_METRIC)
    body["value"][0]["unit"] = "Tokens"  # Unit: x-ms-enum modelAsString=true
    assert validate_response("metrics", 200, body) == []
    body["value"][0]["unit"] = 7
    _only_problem_mentions(validate_response("metrics", 200, body), "is not of type 'string'")

    definitions = _ok_body(DEFINITIONS)
    definitions["value"][0]["primaryAggregationType"] = "Sum"  # AggregationType: modelAsString=false
    _only_problem_mentions(validate_response("metric_definitions", 200, definitions), "'Sum' is not one of")
    definitions = _ok_body(DEFINITIONS)
    definitions["value"][0]["metricClass"] = "Throughput"  # MetricClass: modelAsString=true
    assert validate_response("metric_definitions", 200, definitions) == []


def test_metric_definitions_violations_are_rejected():
    body = _ok_body(DEFINITIONS)
    body["value"][0]["metricAvailabilities"][0]["timeGrain"] = "1 minute"  # format: duration
    body["value"][0]["dimensions"] = [{"localizedValue": "no value"}]  # LocalizableString.value required
    problems = validate_response("metric_definitions", 200, body)
    _only_problem_mentions(problems, "timeGrain", "does not match")
    _only_problem_mentions(problems, "$.value[0].dimensions[0]", "'value' is a required property")
    _only_problem_mentions(validate_response("metric_definitions", 200, {}), "'value' is a required property")


def test_accounts_violations_are_rejected_and_extra_properties_accepted():
    body = _ok_body(ACCOUNTS)
    body["value"][0]["properties"]["futureField"] = {"anything": [1, 2]}
    body["unknownTopLevel"] = True
    assert validate_response("accounts_list", 200, body) == []
    body["value"][0]["location"] = ["westus"]
    del body["value"][1]["sku"]["name"]  # Sku.name is required
    body["nextLink"] = 5
    problems = validate_response("accounts_list", 200, body)
    _only_problem_mentions(problems, "$.value[0].location", "is not of type 'string'")
    _only_problem_mentions(problems, "$.value[1].sku", "'name' is a required property")
    _only_problem_mentions(problems, "$.nextLink", "is not of type 'string'")

    account = _ok_body(ACCOUNT)
    account["tags"] = {"owner": 42}  # additionalProperties: string
    _only_problem_mentions(validate_response("account", 200, account), "$.tags.owner", "is not of type 'string'")


def test_subscriptions_violations_are_rejected():
    body = _ok_body(SUBSCRIPTIONS)
    body["value"][0]["state"] = "Active"  # SubscriptionState is a closed enum
    body["value"][1]["subscriptionId"] = None
    problems = validate_response("subscriptions", 200, body)
    _only_problem_mentions(problems, "$.value[0].state", "'Active' is not one of")
    _only_problem_mentions(problems, "$.value[1].subscriptionId", "None is not of type 'string'")


def test_error_bodies_wrapped_and_flat():
    wrapped = {"error": {"code": "AuthorizationFailed", "message": "The client ... does not have authorization"}}
    flat = {"code": "BadRequest", "message": "Failed to find metric configuration for provider: ..."}
    for kind in ("metrics", "metric_definitions", "error"):
        assert validate_response(kind, 403, wrapped) == []
        assert validate_response(kind, 400, flat) == []
    # ARM (subscriptions, accounts) and the batch API always wrap their errors.
    for kind in ("subscriptions", "accounts_list", "account", "batch"):
        assert validate_response(kind, 401, wrapped) == []
        assert validate_response(kind, 400, flat) != []
    # code and message are what every Azure error carries; an empty or half body is not an error body.
    for bad in ({}, {"error": {}}, {"error": {"code": "X"}}, {"message": "m"}, {"error": "text"}, []):
        assert validate_response("error", 400, bad) != [], bad
    problems = validate_response("batch", 400, {"error": {"code": "BadRequest"}})
    _only_problem_mentions(problems, "$.error", "'message' is a required property")
    # A 2xx status with an error kind is itself a problem.
    _only_problem_mentions(validate_response("error", 200, wrapped), "success status")


def test_error_bodies_reject_wrong_types():
    problems = validate_response("error", 429, {"error": {"code": 429, "message": "m"}})
    _only_problem_mentions(problems, "is not of type 'string'")
    body = {"error": {"code": "C", "message": "m", "details": {"code": "D"}}}
    _only_problem_mentions(validate_response("batch", 400, body), "$.error.details", "is not of type 'array'")


def test_json_text_is_accepted_and_invalid_json_reported():
    text = json.dumps(_ok_body(GET_METRIC))
    assert validate_response("metrics", 200, text) == []
    assert validate_response("metrics", 200, text.encode()) == []
    _only_problem_mentions(validate_response("metrics", 200, "{not json"), "not JSON")


def test_assert_valid_response_raises_with_the_problems():
    body = _ok_body(GET_METRIC)
    assert_valid_response("metrics", 200, body)
    del body["timespan"]
    with pytest.raises(AssertionError, match="timespan"):
        assert_valid_response("metrics", 200, body)


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown response kind"):
        validate_response("deployments", 200, {})
    assert set(KINDS) == {
        "subscriptions",
        "accounts_list",
        "account",
        "deployments_list",
        "metric_definitions",
        "metric_namespaces",
        "metrics",
        "batch",
        "error",
    }


def test_validators_are_compiled_once():
    spec_validation._validator.cache_clear()
    for _ in range(3):
        validate_response("metrics", 200, _ok_body(GET_METRIC))
    info = spec_validation._validator.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_schema_for_resolves_refs_across_files():
    # metrics_API.json refers to monitor/common-types/v2/commonMonitoringTypes.json (relative, another folder)
    keys = set(spec_validation.schema_for("metrics")["$defs"])
    assert "monitor_common-types_v2_commonMonitoringTypes_definitions_Metric" in keys
    # error bodies: common-types v1 (flat) and v3 (wrapped), recursive ErrorDetail kept as a reference
    error_keys = set(spec_validation.schema_for("metrics", 400)["$defs"])
    assert "common-types_resource-management_v1_types_definitions_ErrorResponse" in error_keys
    assert "common-types_resource-management_v3_types_definitions_ErrorDetail" in error_keys
    # cognitiveservices.json -> common-types v2 AzureEntityResource (allOf) and privatelinks.json
    account_keys = set(spec_validation.schema_for("account")["$defs"])
    assert "common-types_resource-management_v2_types_definitions_AzureEntityResource" in account_keys
    assert any(k.startswith("common-types_resource-management_v2_privatelinks") for k in account_keys)


@pytest.fixture
def schemas_dir(monkeypatch, tmp_path):
    """Point the validator at a scratch schemas folder; compiled validators are dropped before and after."""
    spec_validation._validator.cache_clear()
    monkeypatch.setattr(spec_validation, "SCHEMAS_DIR", tmp_path)
    yield tmp_path
    spec_validation._validator.cache_clear()


def test_missing_schema_file_is_a_clear_error(schemas_dir):
    with pytest.raises(SchemasNotFoundError) as excinfo:
        validate_response("metrics", 200, {})
    message = str(excinfo.value)
    assert str(schemas_dir / "metrics.json") in message and "schemas.generate --specs" in message

    shutil.copy(spec_validation.Path(spec_validation.__file__).parent / "schemas" / "errors.json", schemas_dir)
    assert validate_response("metrics", 400, {"code": "BadRequest", "message": "m"}) == []  # errors.json is there
    with pytest.raises(SchemasNotFoundError, match="metrics.json"):
        validate_response("metrics", 200, {})
    (schemas_dir / "metrics.json").write_text("{not json")
    with pytest.raises(SchemasNotFoundError, match="metrics.json"):
        validate_response("metrics", 200, {})


def test_schemas_are_committed_in_the_repository_and_loaded_from_there():
    assert spec_validation.SCHEMAS_DIR.is_relative_to(REPO_ROOT)
    names = {k.schema for k in KINDS.values() if k.schema} | {spec_validation.ERRORS_SCHEMA}
    assert names == set(generate.TARGETS)  # every validated kind has its generated file, and nothing else
    for name in sorted(names):
        text = (spec_validation.SCHEMAS_DIR / name).read_text(encoding="utf-8")
        schema = json.loads(text)
        assert generate.render(schema) == text, f"{name} is not in the generator's canonical form"
        assert schema["$ref" if "$ref" in schema else "anyOf"]
        assert schema["$defs"] and "Generated from Azure/azure-rest-api-specs" in schema["$comment"]
    assert (
        "built into generate.py"
        in json.loads((spec_validation.SCHEMAS_DIR / "subscriptions.json").read_text())["$comment"]
    )
    # The committed file keeps the spec's fact (nextLink required); the validator relaxes it on load.
    committed = json.loads((spec_validation.SCHEMAS_DIR / "subscriptions.json").read_text())
    key = generate.def_key(generate.SUBSCRIPTIONS_SPEC, "#/definitions/SubscriptionListResult")
    assert committed["$defs"][key]["required"] == ["nextLink"]
    assert "nextLink" not in spec_validation.schema_for("subscriptions")["$defs"][key].get("required", [])
    # Every relaxation names a definition that exists in a committed schema (none silently misses).
    all_defs = set().union(*(json.loads((spec_validation.SCHEMAS_DIR / n).read_text())["$defs"] for n in names))
    assert set(spec_validation._RELAXED_REQUIRED) <= all_defs
    assert {k for k in spec_validation._RELAXED_PROPERTIES if k in all_defs} == {
        generate.def_key(f"common-types/resource-management/{v}/types.json", "#/definitions/ErrorAdditionalInfo")
        for v in ("v1", "v3")
    }
    assert validate_response("metrics", 200, _ok_body(GET_METRIC)) == []


def test_account_inherits_resource_fields_through_allof():
    account = _ok_body(ACCOUNT)
    account["id"] = 5  # id comes from common-types v2 Resource via allOf AzureEntityResource
    _only_problem_mentions(validate_response("account", 200, account), "$.id", "is not of type 'string'")


def test_swagger_conversion_rules(tmp_path):
    """The converter on a synthetic two-file spec: every swagger 2.0 feature the brief names."""
    import jsonschema

    (tmp_path / "common").mkdir()
    (tmp_path / "svc").mkdir()
    (tmp_path / "common" / "types.json").write_text(
        json.dumps(
            {
                "definitions": {
                    "Base": {"properties": {"id": {"type": "string", "readOnly": True}}, "required": ["id"]},
                    "Node": {
                        "type": "object",
                        "properties": {"children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}},
                    },
                }
            }
        )
    )
    (tmp_path / "svc" / "api.json").write_text(
        json.dumps(
            {
                "definitions": {
                    "Thing": {
                        "type": "object",
                        "allOf": [{"$ref": "../common/types.json#/definitions/Base"}],
                        "properties": {
                            "maybe": {"type": "string", "x-nullable": True},
                            "never": {"type": "string"},
                            "open": {
                                "type": "string",
                                "enum": ["A"],
                                "x-ms-enum": {"name": "Open", "modelAsString": True},
                            },
                            "closed": {
                                "type": "string",
                                "enum": ["A"],
                                "x-ms-enum": {"name": "Closed", "modelAsString": False},
                            },
                            "plain": {"type": "string", "enum": ["A"]},
                            "when": {"type": "string", "format": "date-time"},
                            "grain": {"type": "string", "format": "duration"},
                            "tags": {"type": "object", "additionalProperties": {"type": "integer"}},
                            "sealed": {
                                "type": "object",
                                "properties": {"a": {"type": "string"}},
                                "additionalProperties": False,
                            },
                            "tree": {"$ref": "../common/types.json#/definitions/Node"},
                            "count": {"type": "integer", "format": "int32", "minimum": 0},
                        },
                    },
                }
            }
        )
    )
    converter = generate.SwaggerConverter(tmp_path)
    key = converter.ref("svc/api.json", "#/definitions/Thing")
    validator = jsonschema.Draft202012Validator({"$ref": f"#/$defs/{key}", "$defs": converter.defs})

    def ok(instance):
        return not list(validator.iter_errors(instance))

    good = {
        "id": "x",
        "maybe": None,
        "open": "B",
        "closed": "A",
        "plain": "A",
        "when": "2026-11-20T00:00:00Z",
        "grain": "PT1M",
        "tags": {"a": 1},
        "sealed": {"a": "b"},
        "tree": {"children": [{"children": []}]},
        "count": 0,
        "extra": "allowed",
    }
    assert ok(good)
    for change in (
        {"id": None},
        {"never": None},
        {"closed": "B"},
        {"plain": "B"},
        {"when": "yesterday"},
        {"when": "2026-11-20T00:00:00"},
        {"grain": "1 day"},
        {"tags": {"a": "1"}},
        {"sealed": {"a": "b", "c": 1}},
        {"tree": {"children": [{"children": "x"}]}},
        {"count": -1},
    ):
        assert not ok({**good, **change}), change
    missing_id = dict(good)
    del missing_id["id"]
    assert not ok(missing_id)
    assert ok({**good, "grain": "P1D"}) and ok({**good, "when": "2026-11-20T00:00:00.1234567+01:00"})
