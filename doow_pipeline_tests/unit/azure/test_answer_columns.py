"""getBatch answers read as columns (`parse_batch_columns`) mean exactly what the reference parser
(`parse_batch_answer`, over the JSON decoded into Python objects) reads from them: same results, same series,
same points, same rows; and an answer that is not plainly the documented shape is left to the reference
(None), never read differently. Hypothesis writes the answers: the documented shape, and the same with nulls,
missing keys, wrong types and odd values in every place."""

from __future__ import annotations

import json
import math
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doow_pipeline.azure.extract import _points_frame
from doow_pipeline.azure.metrics_api import (
    MetricResult,
    parse_batch_answer,
    parse_batch_columns,
    read_answer,
    rows_of,
)
from doow_pipeline.core.metrics import POINT_SCHEMA
from doow_pipeline.core.problems import AzureError

RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.CognitiveServices"
    "/accounts/a{}"
)
STAMPS = [f"2026-11-{day:02d}T00:00:00Z" for day in range(1, 8)]
DIMENSIONS = ["modeldeploymentname", "ModelName", "modelversion", "Region", "StatusCode", "IsSpillover"]

# What breaks the documented shape in one place: the reference may read it, refuse it or skip it.
odd = st.sampled_from([None, "text", 7, 1.5, True, [], {}, {"value": None}, [None], float("nan"), 10**30, -1.0])


@st.composite
def answers(draw: st.DrawFn) -> dict[str, Any]:
    """An answer of the documented shape; optional keys sometimes left out."""

    def field(
        draw: st.DrawFn, obj: dict[str, Any], key: str, strategy: st.SearchStrategy[Any], optional: bool = False
    ) -> None:
        if optional and draw(st.integers(0, 3)) == 0:
            return  # key left out
        obj[key] = draw(strategy)

    value = st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=10**12),
        st.floats(min_value=0, max_value=1e15, allow_nan=False),
    )

    @st.composite
    def point(draw: st.DrawFn, stamp: str) -> dict[str, Any]:
        p: dict[str, Any] = {}
        field(draw, p, "timeStamp", st.just(stamp))
        for aggregate in ("total", "average", "maximum"):
            field(draw, p, aggregate, value, optional=True)
        return p

    @st.composite
    def series(draw: st.DrawFn) -> dict[str, Any]:
        s: dict[str, Any] = {}
        names = draw(st.lists(st.sampled_from(DIMENSIONS), max_size=4))
        field(
            draw,
            s,
            "metadatavalues",
            st.just([{"name": {"value": n, "localizedValue": n}, "value": f"v-{n}-{i}"} for i, n in enumerate(names)]),
            optional=True,
        )
        count = draw(st.integers(min_value=0, max_value=len(STAMPS)))
        field(draw, s, "data", st.tuples(*(point(stamp) for stamp in STAMPS[:count])).map(list), optional=True)
        return s

    @st.composite
    def metric(draw: st.DrawFn, account: int) -> dict[str, Any]:
        name = draw(st.sampled_from(["InputTokens", "OutputTokens", "TotalTokens", "ModelRequests"]))
        m: dict[str, Any] = {"type": "Microsoft.Insights/metrics", "unit": "Count"}
        field(draw, m, "id", st.just(f"{RID.format(account)}/providers/Microsoft.Insights/metrics/{name}"))
        field(draw, m, "name", st.just({"value": name, "localizedValue": name}))
        field(draw, m, "errorCode", st.sampled_from(["Success", "", "InvalidSamplingType"]), optional=True)
        field(draw, m, "errorMessage", st.sampled_from(["boom", "é ünïcode"]), optional=True)
        field(draw, m, "timeseries", st.lists(series(), max_size=3), optional=True)
        return m

    @st.composite
    def item(draw: st.DrawFn, account: int) -> dict[str, Any]:
        i: dict[str, Any] = {"namespace": "Microsoft.CognitiveServices/accounts", "resourceregion": "eastus"}
        field(draw, i, "starttime", st.just(STAMPS[0]), optional=True)
        field(draw, i, "endtime", st.sampled_from(["2026-11-08T00:00:00Z", "2026-11-05T00:00:00Z"]), optional=True)
        field(draw, i, "interval", st.sampled_from(["P1D", "PT1H"]), optional=True)
        field(draw, i, "resourceid", st.just(RID.format(account)), optional=True)
        field(draw, i, "value", st.lists(metric(account), max_size=3))
        return i

    body: dict[str, Any] = {}
    field(draw, body, "values", st.lists(st.integers(min_value=0, max_value=3).flatmap(item), max_size=3))
    return body


def _places(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) of a JSON tree."""
    found: list[tuple[Any, Any]] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.append((node, key))
        found.extend(_places(child))
    return found


@st.composite
def irregular_answers(draw: st.DrawFn) -> dict[str, Any]:
    """A documented answer broken in one place: a value replaced by an odd one, or a key left out."""
    body = draw(answers())
    places = _places(body)
    if places:
        container, key = draw(st.sampled_from(places))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(odd)
    return body


def same_values(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


def assert_same(columns: list[MetricResult], reference: list[MetricResult]) -> None:
    assert len(columns) == len(reference)
    for c, r in zip(columns, reference, strict=True):
        assert (c.resource_id, c.metric, c.error_code, c.error_message, c.answered) == (
            r.resource_id,
            r.metric,
            r.error_code,
            r.error_message,
            r.answered,
        )
        assert len(c.series) == len(r.series)
        for cs, rs in zip(c.series, r.series, strict=True):
            assert cs.dimensions == rs.dimensions
            assert cs.timestamps == rs.timestamps
            for name in ("totals", "averages", "maximums"):
                assert same_values(getattr(cs, name), getattr(rs, name)), name
    assert rows_of(columns).equals(rows_of(reference), null_equal=True)


def reference(text: str) -> list[MetricResult] | None:
    try:
        return read_answer("getBatch", 200, text, parse_batch_answer)
    except AzureError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_a_documented_answer_is_read_as_columns_and_means_what_the_reference_reads(body):
    text = json.dumps(body)
    columns = parse_batch_columns(text.encode())
    assert columns is not None  # the fast path is taken for every answer of the documented shape
    expected = reference(text)
    assert expected is not None
    assert_same(columns, expected)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(irregular_answers(), st.sampled_from(["compact", "pretty"]))
def test_an_irregular_answer_is_read_as_the_reference_reads_it_or_left_to_it(body, layout):
    text = json.dumps(body, indent=1 if layout == "pretty" else None)  # NaN and Infinity written as literals
    columns = parse_batch_columns(text.encode())
    if columns is None:
        return  # the reference reads it (or refuses it as a malformed answer)
    expected = reference(text)
    assert expected is not None, "read as columns, but the reference refuses it"
    assert_same(columns, expected)


@pytest.mark.parametrize(
    "text",
    [
        '"{\\"values\\": []}"',  # the body sent as a JSON string
        '[{"values": []}]',
        '{"values": []}\n{"values": []}',  # two documents
        '{"values": [{"value": [{"name": {"value": "TotalTokens"}, "timeseries": [{"data": [{"timeStamp": '
        '"2026-11-01T00:00:00Z", "total": "12"}]}]}]}]}',  # a number as a string
        '{"values": [{"resourceid": "a", "resourceid": "b", "value": []}]}',  # a repeated key
        '{"values": null}',
        "",
        "not json",
    ],
)
def test_what_is_not_plainly_the_documented_shape_is_left_to_the_reference(text):
    assert parse_batch_columns(text.encode()) is None


def test_rows_hold_only_the_columns_the_answer_filled_and_rows_of_restores_the_rest():
    body = {
        "values": [
            {
                "resourceid": RID.format(1),
                "starttime": STAMPS[0],
                "endtime": "2026-11-03T00:00:00Z",
                "interval": "P1D",
                "value": [
                    {
                        "name": {"value": "TotalTokens"},
                        "timeseries": [
                            {
                                "metadatavalues": [{"name": {"value": "ModelDeploymentName"}, "value": "d1"}],
                                "data": [{"timeStamp": STAMPS[0], "total": 5}, {"timeStamp": STAMPS[1]}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    (result,) = parse_batch_columns(json.dumps(body).encode()) or []
    assert result.rows is not None and result.rows.columns == ["deployment", "timestamp", "total"]
    rows = rows_of([result])
    assert rows.to_dicts() == [
        {
            "resource_id": RID.format(1),
            "metric": "TotalTokens",
            "deployment": "d1",
            "model_name": None,
            "model_version": None,
            "metric_region": None,
            "status_code": None,
            "is_spillover": None,
            "tier_request": None,
            "tier_response": None,
            "timestamp": stamp,
            "total": total,
            "average": None,
            "maximum": None,
        }
        for stamp, total in ((STAMPS[0], 5.0), (STAMPS[1], None))
    ]
    assert rows.schema["total"] == pl.Float64


def test_points_of_an_answer_read_as_columns_have_the_landing_schema_exactly():
    """The landed files and the roll-up compare `family` with strings: an Enum family (what mapping the metric
    names through the Family enum gives) would land files the writer reads as no usage at all."""
    body = {
        "values": [
            {
                "resourceid": RID.format(1),
                "value": [
                    {
                        "name": {"value": metric},
                        "timeseries": [{"data": [{"timeStamp": STAMPS[0], "total": 5}]}],
                    }
                    for metric in ("TotalTokens", "TokenTransaction")
                ],
            }
        ]
    }
    columns = parse_batch_columns(json.dumps(body).encode())
    assert columns is not None
    listed = reference(json.dumps(body))
    assert listed is not None
    for results in (columns, listed):
        points = _points_frame(results)
        assert points.schema == pl.Schema(POINT_SCHEMA)
        assert points["family"].to_list() == ["models", "azure_openai"]
