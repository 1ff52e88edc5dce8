"""The activity roll-up's family and connection rule, and the planning of the activity metric groups."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from doow_pipeline.azure.metric_definitions import ActivityKind, activity_from_definitions
from doow_pipeline.core.metrics import REQUEST_POINT_SCHEMA, UTILIZATION_POINT_SCHEMA
from doow_pipeline.usage.activity import roll_up_requests, roll_up_utilization

DAY = date(2026, 11, 12)
RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
AT = datetime(2026, 11, 12, tzinfo=UTC)
USAGE_SCHEMA = {
    "usage_date": pl.Date,
    "connection": pl.String,
    "resource_id": pl.String,
    "deployment": pl.String,
    "metric_family": pl.String,
}


def point(family: str, deployment: str, status: str, total: float, connection: str = "prod", **extra) -> dict:
    return {
        "connection": connection,
        "resource_id": RID,
        "family": family,
        "metric": "m",
        "deployment": deployment,
        "model_name": "gpt-4o",
        "model_version": "1",
        "metric_region": "westeurope",
        "status_code": status,
        "is_spillover": "false",
        "tier_request": "Default",
        "tier_response": "Default",
        "timestamp": AT,
        "total": total,
        **extra,
    }


def frame(rows: list[dict], schema) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"connection": pl.String, **schema})


def test_requests_follow_usage_family_and_connection_and_never_add_both_families():
    points = frame(
        [
            point("models", "chat", "200", 90),
            point("models", "chat", "429", 10),
            point("azure_openai", "chat", "200", 90),
            point("azure_openai", "chat", "429", 10),
            point("models", "chat", "200", 90, connection="other"),
            # only in the legacy family, and without any token usage: the rule on its own data
            point("azure_openai", "retry-only", "429", 7),
        ],
        REQUEST_POINT_SCHEMA,
    )
    usage = pl.DataFrame(
        [
            {
                "usage_date": DAY,
                "connection": "prod",
                "resource_id": RID,
                "deployment": "chat",
                "metric_family": "models",
            }
        ],
        schema=USAGE_SCHEMA,
    )
    rolled = roll_up_requests(points, usage).sort("deployment", "status_code")
    assert rolled.select("connection", "deployment", "status_code", "requests", "metric_family").rows() == [
        ("prod", "chat", "200", 90, "models"),
        ("prod", "chat", "429", 10, "models"),
        ("prod", "retry-only", "429", 7, "azure_openai"),
    ]


def test_empty_dimension_values_become_null_and_match_usage_rows_without_a_name():
    points = frame([point("models", "__Empty", "200", 5, tier_request="__Empty")], REQUEST_POINT_SCHEMA)
    usage = pl.DataFrame(
        [{"usage_date": DAY, "connection": "prod", "resource_id": RID, "deployment": None, "metric_family": "models"}],
        schema=USAGE_SCHEMA,
    )
    rolled = roll_up_requests(points, usage)
    assert rolled["deployment"].to_list() == [None] and rolled["tier_request"].to_list() == [None]


def test_utilisation_prefers_the_models_metric_and_keeps_hours():
    rows = [
        {
            "connection": "prod",
            "resource_id": RID,
            "family": family,
            "metric": "m",
            "deployment": "ptu",
            "model_name": "gpt-4o",
            "model_version": "1",
            "metric_region": "westeurope",
            "timestamp": AT,
            "average": avg,
            "maximum": mx,
        }
        for family, avg, mx in (("models", 50.0, 80.0), ("azure_openai", 51.0, 81.0))
    ]
    rolled = roll_up_utilization(frame(rows, UTILIZATION_POINT_SCHEMA), pl.DataFrame(schema=USAGE_SCHEMA))
    assert rolled.select("hour", "metric_family", "avg_utilization", "max_utilization").rows() == [
        (datetime(2026, 11, 12), "models", 50.0, 80.0)
    ]


def test_activity_groups_are_planned_from_the_definitions_only():
    dims = {
        "ModelDeploymentName",
        "ModelName",
        "ModelVersion",
        "Region",
        "StatusCode",
        "IsSpillover",
        "ServiceTierRequest",
        "ServiceTierResponse",
    }
    plan = activity_from_definitions(
        {
            "ModelRequests": dims,
            "AzureOpenAIRequests": dims,
            "InputTokens": set(),
            "ProvisionedUtilization": {"ModelDeploymentName", "ModelVersion", "Region"},
        }
    )
    assert [(q.kind, q.metric, q.interval, q.aggregation) for q in plan] == [
        (ActivityKind.REQUESTS, "ModelRequests", "P1D", "Total"),
        (ActivityKind.REQUESTS, "AzureOpenAIRequests", "P1D", "Total"),
        (ActivityKind.UTILIZATION, "ProvisionedUtilization", "PT1H", "Average,Maximum"),
    ]
    assert plan[0].split_dimensions == (
        "ModelDeploymentName",
        "ModelName",
        "ModelVersion",
        "Region",
        "StatusCode",
        "IsSpillover",
        "ServiceTierRequest",
        "ServiceTierResponse",
    )
    # Without the activity dimensions (older definitions) there is nothing to split: no extra call.
    assert activity_from_definitions({"ModelRequests": {"ModelDeploymentName"}}) == ()
