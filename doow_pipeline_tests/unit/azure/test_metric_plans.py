"""Which queries an account's metricDefinitions lead to: every filtered dimension exists on every metric of a
query (Azure's rule), and the legacy request metric is read split by ModelName in as few calls as possible."""

from doow_pipeline.azure.metric_definitions import plan_from_definitions

LEGACY_TOKEN_DIMS = {"ApiName", "ModelDeploymentName", "FeatureName", "UsageChannel", "Region", "ModelVersion"}
MODELS_TOKEN_DIMS = {"ApiName", "Region", "ModelDeploymentName", "ModelName", "ModelVersion"}
REQUEST_DIMS = {"ApiName", "OperationName", "Region", "ModelDeploymentName", "ModelName", "ModelVersion", "StatusCode"}
LEGACY = {
    "ProcessedPromptTokens": LEGACY_TOKEN_DIMS,
    "GeneratedTokens": LEGACY_TOKEN_DIMS,
    "TokenTransaction": LEGACY_TOKEN_DIMS,
    "AzureOpenAIRequests": REQUEST_DIMS,
}
MODELS = {
    "InputTokens": MODELS_TOKEN_DIMS,
    "OutputTokens": MODELS_TOKEN_DIMS,
    "TotalTokens": MODELS_TOKEN_DIMS,
    "ModelRequests": REQUEST_DIMS,
}
ALL_SPLIT = ("ModelDeploymentName", "ModelName", "ModelVersion", "Region")


def test_legacy_only_account_reads_the_request_metric_alone_split_by_model_name():
    tokens, names = plan_from_definitions(LEGACY)
    assert tokens.metric_names == ("ProcessedPromptTokens", "GeneratedTokens", "TokenTransaction")
    assert tokens.split_dimensions == ("ModelDeploymentName", "ModelVersion", "Region")
    assert not tokens.model_names_only
    assert (names.metric_names, names.split_dimensions, names.model_names_only) == (
        ("AzureOpenAIRequests",),
        ALL_SPLIT,
        True,
    )
    assert names.family == tokens.family == "azure_openai"


def test_account_with_both_families_reads_the_request_metric_in_the_models_query_at_no_extra_call():
    models, legacy = plan_from_definitions({**LEGACY, **MODELS})
    assert models.family == "models" and models.split_dimensions == ALL_SPLIT
    assert "AzureOpenAIRequests" in models.metric_names
    assert legacy.metric_names == ("ProcessedPromptTokens", "GeneratedTokens", "TokenTransaction")
    assert not any(q.model_names_only for q in (models, legacy))


def test_request_metric_without_model_name_stays_in_the_legacy_query():
    definitions = {**LEGACY, "AzureOpenAIRequests": REQUEST_DIMS - {"ModelName"}}
    (legacy,) = plan_from_definitions(definitions)
    assert legacy.metric_names[-1] == "AzureOpenAIRequests"
    assert legacy.split_dimensions == ("ModelDeploymentName", "ModelVersion", "Region")


def test_legacy_token_metrics_reporting_model_name_need_no_extra_query():
    with_name = LEGACY_TOKEN_DIMS | {"ModelName"}
    definitions = {
        **{m: with_name for m in ("ProcessedPromptTokens", "GeneratedTokens", "TokenTransaction")},
        "AzureOpenAIRequests": REQUEST_DIMS,
    }
    (legacy,) = plan_from_definitions(definitions)
    assert legacy.split_dimensions == ALL_SPLIT and len(legacy.metric_names) == 4
