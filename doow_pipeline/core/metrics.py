"""Azure OpenAI metric vocabulary: the two token metric families, their quantities, the split dimensions,
the `__Empty` rule and the schema of a raw metric point.

Two families carry token usage under namespace Microsoft.CognitiveServices/accounts (design.md §3):
"models" (InputTokens…, with ModelName) and "azure_openai" (ProcessedPromptTokens…, whose token metrics
have no ModelName). OpenAI-model usage can appear in both: they are alternatives, never added together.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

import polars as pl

NAMESPACE = "Microsoft.CognitiveServices/accounts"
RETENTION_DAYS = 93  # platform metrics retention (metricAvailabilities retention P93D)
EMPTY_DIMENSION = "__Empty"  # Azure's value for "not reported"


class Family(StrEnum):
    MODELS = "models"
    AZURE_OPENAI = "azure_openai"


class Quantity(StrEnum):
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    TOTAL_TOKENS = "total_tokens"
    REQUESTS = "requests"


FAMILY_METRICS: dict[Family, dict[Quantity, str]] = {
    Family.MODELS: {
        Quantity.INPUT_TOKENS: "InputTokens",
        Quantity.OUTPUT_TOKENS: "OutputTokens",
        Quantity.TOTAL_TOKENS: "TotalTokens",
        Quantity.REQUESTS: "ModelRequests",
    },
    Family.AZURE_OPENAI: {
        Quantity.INPUT_TOKENS: "ProcessedPromptTokens",
        Quantity.OUTPUT_TOKENS: "GeneratedTokens",
        Quantity.TOTAL_TOKENS: "TokenTransaction",
        Quantity.REQUESTS: "AzureOpenAIRequests",
    },
}
# Metric names as Azure spells them, any casing accepted: lower-cased name -> family / quantity.
METRIC_FAMILY = {metric.lower(): family for family, metrics in FAMILY_METRICS.items() for metric in metrics.values()}
METRIC_QUANTITY = {
    metric.lower(): quantity for metrics in FAMILY_METRICS.values() for quantity, metric in metrics.items()
}
TOKEN_QUANTITIES = (Quantity.INPUT_TOKENS, Quantity.OUTPUT_TOKENS, Quantity.TOTAL_TOKENS)

# Dimensions the usage grain needs, in the order they appear in filters, and their point columns.
SPLIT_DIMENSIONS = ("ModelDeploymentName", "ModelName", "ModelVersion", "Region")
DIMENSION_COLUMNS = {
    "modeldeploymentname": "deployment",
    "modelname": "model_name",
    "modelversion": "model_version",
    "region": "metric_region",
}

POINT_SCHEMA: dict[str, pl.DataType] = {
    "resource_id": pl.String(),
    "family": pl.String(),
    "metric": pl.String(),
    "deployment": pl.String(),
    "model_name": pl.String(),
    "model_version": pl.String(),
    "metric_region": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "total": pl.Float64(),
}


def reported(value: str | None) -> str | None:
    """A dimension value as the warehouse stores it: None when Azure did not report it (`__Empty`, empty)."""
    return None if value is None or value == "" or value == EMPTY_DIMENSION else value


def oldest_syncable_day(now: datetime) -> date:
    """The oldest UTC day fully inside Azure Monitor's 93-day retention."""
    return (now - timedelta(days=RETENTION_DAYS)).date() + timedelta(days=1)


# ---- deployment activity beyond tokens (issue 13) ----------------------------------------------------------------
# Request metrics split further by these dimensions (both request metrics define them).
ACTIVITY_DIMENSIONS = ("StatusCode", "IsSpillover", "ServiceTierRequest", "ServiceTierResponse")
ACTIVITY_COLUMNS = {
    "statuscode": "status_code",
    "isspillover": "is_spillover",
    "servicetierrequest": "tier_request",
    "servicetierresponse": "tier_response",
}
# Provisioned (PTU) utilisation, percent, Average/Maximum only; per family like the token metrics.
UTILIZATION_METRICS: dict[Family, str] = {
    Family.MODELS: "ProvisionedUtilization",
    Family.AZURE_OPENAI: "AzureOpenAIProvisionedManagedUtilizationV2",
}
UTILIZATION_FAMILY = {metric.lower(): family for family, metric in UTILIZATION_METRICS.items()}

REQUEST_POINT_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in POINT_SCHEMA.items() if k not in ("timestamp", "total")},
    **{column: pl.String() for column in ACTIVITY_COLUMNS.values()},
    "timestamp": pl.Datetime("us", "UTC"),
    "total": pl.Float64(),
}
UTILIZATION_POINT_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in POINT_SCHEMA.items() if k not in ("timestamp", "total")},
    "timestamp": pl.Datetime("us", "UTC"),
    "average": pl.Float64(),
    "maximum": pl.Float64(),
}
