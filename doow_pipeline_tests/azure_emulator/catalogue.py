"""The Azure OpenAI metric catalogue the emulator serves for `Microsoft.CognitiveServices/accounts`.

Names, families, dimensions and categories follow Microsoft's supported-metrics table for
Microsoft.CognitiveServices/accounts (Azure Monitor documentation): the legacy "Azure OpenAI" token metrics have
no ModelName dimension; the "Models" family has it; both request metrics have it.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "Microsoft.CognitiveServices/accounts"
TIME_GRAINS = ("PT1M", "PT5M", "PT15M", "PT30M", "PT1H", "PT6H", "PT12H", "P1D")
RETENTION = "P93D"

AZURE_OPENAI = "azure_openai"
MODELS = "models"
FAMILIES = (AZURE_OPENAI, MODELS)

_LEGACY_TOKEN_DIMS = ("ApiName", "ModelDeploymentName", "FeatureName", "UsageChannel", "Region", "ModelVersion")
_MODELS_TOKEN_DIMS = ("ApiName", "Region", "ModelDeploymentName", "ModelName", "ModelVersion")
_REQUEST_DIMS = (
    "ApiName",
    "OperationName",
    "Region",
    "StreamType",
    "ModelDeploymentName",
    "ModelName",
    "ModelVersion",
    "StatusCode",
    "IsSpillover",
    "ServiceTierRequest",
    "ServiceTierResponse",
)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    family: str
    quantity: str  # input_tokens | output_tokens | total_tokens | requests
    display_name: str
    description: str
    category: str
    dimensions: tuple[str, ...]
    unit: str = "Count"
    aggregations: tuple[str, ...] = ("Total",)  # supported; the first is the primary aggregation

    @property
    def is_percentage(self) -> bool:
        return self.quantity == "utilization"


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "ProcessedPromptTokens",
        AZURE_OPENAI,
        "input_tokens",
        "Processed Prompt Tokens",
        "Number of prompt tokens processed (input) on an OpenAI model.",
        "Azure OpenAI - Usage",
        _LEGACY_TOKEN_DIMS,
    ),
    MetricSpec(
        "GeneratedTokens",
        AZURE_OPENAI,
        "output_tokens",
        "Generated Completion Tokens",
        "Number of generated tokens (output) from an OpenAI model.",
        "Azure OpenAI - Usage",
        _LEGACY_TOKEN_DIMS,
    ),
    MetricSpec(
        "TokenTransaction",
        AZURE_OPENAI,
        "total_tokens",
        "Processed Inference Tokens",
        "Number of inference tokens processed on an OpenAI model (prompt plus generated).",
        "Azure OpenAI - Usage",
        _LEGACY_TOKEN_DIMS,
    ),
    MetricSpec(
        "AzureOpenAIRequests",
        AZURE_OPENAI,
        "requests",
        "Azure OpenAI Requests",
        "Number of calls made to the Azure OpenAI API over a period of time.",
        "Azure OpenAI - HTTP Requests",
        _REQUEST_DIMS,
    ),
    MetricSpec(
        "InputTokens",
        MODELS,
        "input_tokens",
        "Input Tokens",
        "Number of prompt tokens processed (input) on a model.",
        "Models - Usage",
        _MODELS_TOKEN_DIMS,
    ),
    MetricSpec(
        "OutputTokens",
        MODELS,
        "output_tokens",
        "Output Tokens",
        "Number of tokens generated (output) from a model.",
        "Models - Usage",
        _MODELS_TOKEN_DIMS,
    ),
    MetricSpec(
        "TotalTokens",
        MODELS,
        "total_tokens",
        "Total Tokens",
        "Number of inference tokens processed on a model (input plus output).",
        "Models - Usage",
        _MODELS_TOKEN_DIMS,
    ),
    MetricSpec(
        "ModelRequests",
        MODELS,
        "requests",
        "Model Requests",
        "Number of calls made to the model API over a period of time.",
        "Models - HTTP Requests",
        _REQUEST_DIMS,
    ),
)

# Provisioned (PTU) utilisation: percentages, Minimum/Maximum/Average (supported-metrics table). Defined only by
# accounts with a provisioned deployment (scenario opt-in), so every other account's definitions are unchanged.
_PTU_V2_DIMS = ("Region", "StreamType", "ModelDeploymentName", "ModelName", "ModelVersion")
_PTU_MODELS_DIMS = ("Region", "ModelDeploymentName", "ModelName", "ModelVersion")
PTU_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "AzureOpenAIProvisionedManagedUtilizationV2",
        AZURE_OPENAI,
        "utilization",
        "Provisioned-managed Utilization V2",
        "Utilization % for a provisioned-managed deployment, calculated as (PTUs consumed / PTUs deployed) x 100.",
        "Azure OpenAI - Usage",
        _PTU_V2_DIMS,
        "Percent",
        ("Average", "Maximum", "Minimum"),
    ),
    MetricSpec(
        "ProvisionedUtilization",
        MODELS,
        "utilization",
        "Provisioned Utilization",
        "Utilization % for a provisioned-managed deployment, calculated as (PTUs consumed / PTUs deployed) x 100.",
        "Models - Usage",
        _PTU_MODELS_DIMS,
        "Percent",
        ("Average", "Maximum", "Minimum"),
    ),
)

METRICS_BY_NAME = {m.name: m for m in METRICS}
METRICS_BY_LOWER_NAME = {m.name.lower(): m for m in METRICS}
ALL_METRICS_BY_LOWER_NAME = {m.name.lower(): m for m in METRICS + PTU_METRICS}


def metrics_for_families(families, provisioned: bool = False) -> tuple[MetricSpec, ...]:
    """The metrics an account emitting these families defines, in catalogue order (utilisation last, only for
    accounts with a provisioned deployment)."""
    wanted = set(families)
    return tuple(m for m in METRICS + (PTU_METRICS if provisioned else ()) if m.family in wanted)


# Constant values for the dimensions the usage generator does not vary: every usage atom reports
# these, so splitting on them never multiplies series but still exercises the dimension plumbing.
CONSTANT_DIMENSION_VALUES = {
    "ApiName": "Azure OpenAI API",
    "FeatureName": "ChatCompletions",
    "UsageChannel": "API",
    "OperationName": "ChatCompletions_Create",
    "StreamType": "Non-Streaming",
    "StatusCode": "200",
    "IsSpillover": "false",
    "ServiceTierRequest": "default",
    "ServiceTierResponse": "default",
}
