"""Which Azure answers mean a stored definitions plan is stale (the account no longer defines what it asks for)."""

from __future__ import annotations

from doow_pipeline.azure.metric_definitions import stale_plan
from doow_pipeline.core.problems import Problem, ProblemCode

UNKNOWN_METRIC = (
    "(BadRequest) Failed to find metric configuration for provider: Microsoft.CognitiveServices, resource Type: "
    "accounts, metric: ProcessedPromptTokens, Valid metrics: InputTokens,OutputTokens,TotalTokens,ModelRequests"
)
BAD_DIMENSION = (
    "Metric: TokenTransaction does not support requested dimension combination: modelname, supported ones are: "
    "ModelDeploymentName,ModelVersion,Region"
)


def problem(detail: str, code: ProblemCode = ProblemCode.AZURE_ERROR) -> Problem:
    return Problem(code, "Azure answered HTTP 400 (BadRequest).", "Retry later.", detail)


def test_an_undefined_metric_or_dimension_is_a_stale_plan():
    assert stale_plan(problem(UNKNOWN_METRIC))
    assert stale_plan(problem(BAD_DIMENSION))


def test_other_answers_are_not():
    assert not stale_plan(problem("Query endTime is out of the Max metrics retention period"))
    assert not stale_plan(problem(UNKNOWN_METRIC, ProblemCode.THROTTLED))
    assert not stale_plan(problem("", ProblemCode.NOT_FOUND))
