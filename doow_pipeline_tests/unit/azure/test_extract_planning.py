"""The extractor's planning against a fake metrics reader: chunks of <= 50 accounts per subscription, region and
family; the batch-to-per-resource fallback decided once per subscription; narrowing of results that reach
`top`; per-metric errors and unreadable accounts kept to their own account."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import polars as pl

from doow_pipeline.azure.extract import ACCOUNTS_PER_SLICE, extract_usage
from doow_pipeline.azure.metric_definitions import AccountPlan, FamilyQuery
from doow_pipeline.azure.metrics_api import BatchRefused, MetricQuery, MetricResult, Series, TimeWindow
from doow_pipeline.core.metrics import Family
from doow_pipeline.core.problems import AzureError, Problem, ProblemCode
from doow_pipeline.core.scope import Account

NOW = datetime(2026, 11, 20, 6, tzinfo=UTC)
DAYS = (date(2026, 11, 17), date(2026, 11, 19))
MODELS = FamilyQuery(Family.MODELS, ("InputTokens", "TotalTokens"), ("ModelDeploymentName", "Region"))
LEGACY = FamilyQuery(
    Family.AZURE_OPENAI, ("ProcessedPromptTokens", "TokenTransaction"), ("ModelDeploymentName", "Region")
)


def account(i: int, sub: str = "s1", region: str = "eastus") -> Account:
    rid = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a{i:03d}"
    return Account(rid, f"a{i:03d}", "OpenAI", region, sub, "rg")


class FakeReader:
    """Answers like Azure from a table of deployments per account: one series per (metric, deployment), one
    point of 1.0 per day; `top` truncates silently; scripted refusals, per-metric errors and 403s."""

    def __init__(
        self,
        deployments: dict[str, list[str]],
        refuse_batch: set[str] = frozenset(),
        metric_errors: set[str] = frozenset(),
        forbidden: set[str] = frozenset(),
    ):
        self.deployments = deployments
        self.refuse_batch = refuse_batch
        self.metric_errors = metric_errors
        self.forbidden = forbidden
        self.calls: Counter[str] = Counter()
        self.batches: list[tuple[str, str, tuple[str, ...], int]] = []  # (subscription, region, metrics, size)

    def _answer(self, rid: str, query: MetricQuery, window: TimeWindow) -> list[MetricResult]:
        days = (window.end - window.start).days
        stamps = [(window.start.date().toordinal() + i) for i in range(days)]
        timestamps = [date.fromordinal(o).isoformat() + "T00:00:00Z" for o in stamps]
        names = [d for d in self.deployments[rid] if query.deployment in (None, d)]
        results = []
        for metric in query.metric_names:
            if rid in self.metric_errors:
                results.append(MetricResult(rid, metric, "InvalidSamplingType", "boom", []))
                continue
            series = (
                [Series({"modeldeploymentname": d, "region": "eastus"}, timestamps, [1.0] * days) for d in names]
                if "ModelDeploymentName" in query.split
                else [Series({}, timestamps, [float(len(names))] * days)]
            )
            results.append(MetricResult(rid, metric, "Success", None, series[: query.top]))
        return results

    def batch(
        self,
        subscription: str,
        region: str,
        query: MetricQuery,
        resource_ids: list[str],
        window: TimeWindow,
        slots: object = None,
    ) -> list[MetricResult]:
        self.calls["batch"] += 1
        if subscription in self.refuse_batch:
            raise BatchRefused(401, "Unauthorized", "no role at subscription scope")
        self.batches.append((subscription, region, query.metric_names, len(resource_ids)))
        return [r for rid in resource_ids for r in self._answer(rid, query, window)]

    def per_resource(self, account: Account, query: MetricQuery, window: TimeWindow) -> list[MetricResult]:
        self.calls["per_resource"] += 1
        if account.resource_id in self.forbidden:
            raise AzureError(Problem(ProblemCode.MISSING_ROLE, "no role", "assign it", "AuthorizationFailed"))
        return self._answer(account.resource_id, query, window)


def plans(accounts: list[Account], *queries: FamilyQuery) -> list[AccountPlan]:
    return [AccountPlan(a, queries or (MODELS,)) for a in accounts]


def run(reader: FakeReader, account_plans: list[AccountPlan], top: int = 1000):
    return extract_usage(reader, account_plans, *DAYS, now=NOW, top=top, concurrency=2)  # type: ignore[arg-type]


def test_chunks_hold_at_most_50_accounts_of_one_subscription_region_and_family():
    accounts = [account(i) for i in range(120)] + [account(200 + i, region="westeurope") for i in range(3)]
    reader = FakeReader({a.resource_id: ["d1"] for a in accounts})
    result = run(reader, plans(accounts, MODELS, LEGACY))
    sizes = Counter((region, metrics, size) for _sub, region, metrics, size in reader.batches)
    assert sizes == {
        ("eastus", MODELS.metric_names, 50): 2,
        ("eastus", MODELS.metric_names, 20): 1,
        ("eastus", LEGACY.metric_names, 50): 2,
        ("eastus", LEGACY.metric_names, 20): 1,
        ("westeurope", MODELS.metric_names, 3): 1,
        ("westeurope", LEGACY.metric_names, 3): 1,
    }
    assert result.calls == {"batch": 8}
    # every account, metric and day: one point each
    assert result.points.height == 123 * 4 * 3
    assert result.paths == {"s1": "batch"}


class MetricMajorReader(FakeReader):
    """Answers each batch metric by metric (every account's first metric, then every account's second), so one
    account's results are apart in the answer."""

    def batch(self, *args, **kwargs) -> list[MetricResult]:  # type: ignore[no-untyped-def]
        return sorted(super().batch(*args, **kwargs), key=lambda r: r.metric)


def test_an_answer_is_checked_and_staged_a_few_whole_accounts_at_a_time():
    accounts = [account(i) for i in range(50)]
    reader = MetricMajorReader({a.resource_id: ["d1", "d2"] for a in accounts})
    staged: list[pl.DataFrame] = []
    result = extract_usage(reader, plans(accounts), *DAYS, now=NOW, concurrency=2, sink=staged.append)  # type: ignore[arg-type]
    assert reader.calls == {"batch": 1}
    # one frame per ACCOUNTS_PER_SLICE accounts, never all 50 at once; each account whole (both metrics) in one
    accounts_staged = [set(frame["resource_id"]) for frame in staged]
    assert len(staged) > 1
    assert [len(ids) for ids in accounts_staged] == [ACCOUNTS_PER_SLICE] * (50 // ACCOUNTS_PER_SLICE)
    assert set().union(*accounts_staged) == {a.resource_id for a in accounts}
    assert [frame.height for frame in staged] == [ACCOUNTS_PER_SLICE * 2 * 2 * 3] * len(staged)
    assert result.points_answered == 50 * 2 * 2 * 3


def test_a_refused_subscription_falls_back_to_per_resource_once_and_the_others_stay_on_batch():
    refused = [account(i, sub="s1") for i in range(60)]
    allowed = [account(100 + i, sub="s2") for i in range(5)]
    reader = FakeReader({a.resource_id: ["d1", "d2"] for a in refused + allowed}, refuse_batch={"s1"})
    result = run(reader, plans(refused + allowed))
    assert result.paths == {"s1": "per_resource", "s2": "batch"}
    # s1: only its first chunk tried the batch API, then every account went per resource
    assert result.calls == {"batch": 2, "per_resource": 60}
    assert [e.code for e in result.events] == [ProblemCode.BATCH_NOT_ALLOWED]
    assert "Unauthorized" in result.events[0].message
    assert result.points.height == 65 * 2 * 2 * 3


def test_results_that_reach_top_are_narrowed_per_deployment_and_nothing_is_lost():
    big = account(1)
    small = account(2)
    reader = FakeReader({big.resource_id: [f"d{i}" for i in range(7)], small.resource_id: ["x"]})
    result = run(reader, plans([big, small]), top=5)
    # the big account's 7 deployments x 2 metrics x 3 days all arrive, the small one's too
    per_account = result.points.group_by("resource_id").len().sort("resource_id")
    assert per_account.rows() == [(big.resource_id, 7 * 2 * 3), (small.resource_id, 1 * 2 * 3)]
    assert result.truncated == []
    assert set(result.points.filter(resource_id=big.resource_id)["deployment"].unique()) == {f"d{i}" for i in range(7)}


def test_persistent_metric_errors_and_unreadable_accounts_stay_with_their_account():
    accounts = [account(i, sub="s1") for i in range(3)]
    broken, forbidden, fine = (a.resource_id for a in accounts)
    reader = FakeReader(
        {a.resource_id: ["d1"] for a in accounts}, refuse_batch={"s1"}, metric_errors={broken}, forbidden={forbidden}
    )
    result = run(reader, plans(accounts))
    assert set(result.metric_errors) == {broken}
    assert set(result.unreadable) == {forbidden}
    assert set(result.points["resource_id"].unique()) == {fine}
    codes = Counter(e.code for e in result.events)
    assert codes == {ProblemCode.BATCH_NOT_ALLOWED: 1, ProblemCode.METRIC_ERROR: 2, ProblemCode.ACCOUNT_UNREADABLE: 1}


def test_days_past_retention_are_skipped_with_one_event():
    reader = FakeReader({account(1).resource_id: ["d1"]})
    result = extract_usage(reader, plans([account(1)]), date(2026, 8, 1), date(2026, 8, 25), now=NOW)  # type: ignore[arg-type]
    assert result.synced_days[0] == date(2026, 8, 20) and result.skipped_days[-1] == date(2026, 8, 19)
    assert [e.code for e in result.events] == [ProblemCode.RETENTION_EXCEEDED]
