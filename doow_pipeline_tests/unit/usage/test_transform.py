"""Pure roll-up rules: __Empty -> NULL, one family per (resource, deployment, day), overlaps counted once."""

from datetime import UTC, datetime

import polars as pl

from doow_pipeline.core.metrics import POINT_SCHEMA
from doow_pipeline.usage.transform import roll_up_daily

RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, tzinfo=UTC)


def points(rows: list[tuple]) -> pl.DataFrame:
    """rows: (connection, family, metric, deployment, model_name, version, region, timestamp, total)."""
    records = [
        {
            "connection": c,
            "resource_id": RID,
            "family": f,
            "metric": m,
            "deployment": d,
            "model_name": n,
            "model_version": v,
            "metric_region": r,
            "timestamp": t,
            "total": x,
        }
        for c, f, m, d, n, v, r, t, x in rows
    ]
    return pl.DataFrame(records, schema={"connection": pl.String, **POINT_SCHEMA})


def legacy(dep, version, region, t, prompt, generated, requests=None, connection="c1"):
    rows = [
        (connection, "azure_openai", "ProcessedPromptTokens", dep, None, version, region, t, prompt),
        (connection, "azure_openai", "GeneratedTokens", dep, None, version, region, t, generated),
        (connection, "azure_openai", "TokenTransaction", dep, None, version, region, t, prompt + generated),
    ]
    if requests is not None:
        rows.append((connection, "azure_openai", "AzureOpenAIRequests", dep, None, version, region, t, requests))
    return rows


def models(dep, model, version, region, t, inp, out, requests, connection="c1"):
    return [
        (connection, "models", "InputTokens", dep, model, version, region, t, inp),
        (connection, "models", "OutputTokens", dep, model, version, region, t, out),
        (connection, "models", "TotalTokens", dep, model, version, region, t, inp + out),
        (connection, "models", "ModelRequests", dep, model, version, region, t, requests),
    ]


def test_models_family_wins_and_families_are_never_added():
    frame = points(
        legacy("d", "1", "westeurope", DAY1, 100.0, 50.0, 7.0)
        + models("d", "gpt-4o", "1", "westeurope", DAY1, 100.0, 50.0, 7.0)
    )
    usage = roll_up_daily(frame)
    assert usage.height == 1
    row = usage.row(0, named=True)
    assert (row["metric_family"], row["input_tokens"], row["output_tokens"], row["total_tokens"], row["requests"]) == (
        "models",
        100,
        50,
        150,
        7,
    )
    assert row["model_name"] == "gpt-4o"


def test_legacy_rows_take_model_name_from_models_rows_of_same_deployment_and_version():
    frame = points(
        legacy("d", "1", "westeurope", DAY2, 10.0, 5.0)  # legacy only on day 2
        + models("d", "gpt-4o", "1", "westeurope", DAY1, 1.0, 1.0, 1.0)
        + legacy("other", "9", "westeurope", DAY2, 3.0, 4.0)
    )
    usage = roll_up_daily(frame).filter(pl.col("usage_date") == DAY2.date())
    by_deployment = {r["deployment"]: r for r in usage.iter_rows(named=True)}
    assert by_deployment["d"]["model_name"] == "gpt-4o"
    assert by_deployment["d"]["metric_family"] == "azure_openai"
    assert by_deployment["d"]["requests"] is None  # no request metric: unknown, not zero
    assert by_deployment["other"]["model_name"] is None


def test_empty_dimension_becomes_null_and_tokens_are_integers():
    frame = points(models("d", "Phi-4", "7", "__Empty", DAY1, 12.0, 3.0, 2.0))
    row = roll_up_daily(frame).row(0, named=True)
    assert row["metric_region"] is None
    assert isinstance(row["input_tokens"], int)


def test_overlapping_connections_count_a_resource_once():
    frame = points(
        models("d", "gpt-4o", "1", "eastus", DAY1, 10.0, 5.0, 1.0, connection="b_conn")
        + models("d", "gpt-4o", "1", "eastus", DAY1, 10.0, 5.0, 1.0, connection="a_conn")
    )
    usage = roll_up_daily(frame)
    assert usage.height == 1
    assert usage["connection"].to_list() == ["a_conn"]
    assert usage["total_tokens"].sum() == 15


def test_family_choice_is_per_day():
    frame = points(
        legacy("d", "1", "r", DAY1, 10.0, 5.0)
        + legacy("d", "1", "r", DAY2, 20.0, 5.0)
        + models("d", "gpt-4o", "1", "r", DAY2, 20.0, 5.0, 3.0)
    )
    usage = roll_up_daily(frame).sort("usage_date")
    assert usage["metric_family"].to_list() == ["azure_openai", "models"]
    assert usage["total_tokens"].to_list() == [15, 25]


def legacy_requests(dep, model, version, region, t, requests, connection="c1"):
    """The legacy request metric split by ModelName (how the extraction reads it for legacy accounts)."""
    return [(connection, "azure_openai", "AzureOpenAIRequests", dep, model, version, region, t, requests)]


def test_legacy_token_rows_take_model_name_from_the_legacy_request_metric_and_stay_one_row():
    frame = points(
        legacy("d", "1", "westeurope", DAY1, 100.0, 50.0)
        + legacy_requests("d", "gpt-4o", "1", "westeurope", DAY1, 7.0)
        + legacy("d", "1", "westeurope", DAY2, 10.0, 5.0)
    )  # no requests that day: named all the same
    usage = roll_up_daily(frame).sort("usage_date")
    assert usage.height == 2
    day1, day2 = usage.iter_rows(named=True)
    assert (day1["model_name"], day1["model_version"], day1["total_tokens"], day1["requests"]) == (
        "gpt-4o",
        "1",
        150,
        7,
    )
    assert (day2["model_name"], day2["total_tokens"], day2["requests"]) == ("gpt-4o", 15, None)
    assert set(usage["metric_family"]) == {"azure_openai"}


def test_legacy_rows_stay_unnamed_when_the_request_metric_reports_two_models_for_one_deployment_and_version():
    # __Empty deployment names (DALL-E, Whisper): two models share (resource, no deployment, version).
    frame = points(
        legacy("__Empty", "1", "r", DAY1, 10.0, 5.0)
        + legacy_requests("__Empty", "dall-e-3", "1", "r", DAY1, 3.0)
        + legacy_requests("__Empty", "whisper", "1", "r", DAY1, 2.0)
    )
    usage = roll_up_daily(frame)
    tokens = usage.filter(pl.col("total_tokens") > 0)
    assert tokens["model_name"].to_list() == [None]
    assert sorted(usage.filter(pl.col("model_name").is_not_null())["model_name"]) == ["dall-e-3", "whisper"]
    assert usage["requests"].drop_nulls().sum() == 5
