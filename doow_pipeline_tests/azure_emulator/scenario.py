"""Scenario files: the Azure estate the emulator pretends to be (tenants, principals, RBAC, accounts,
deployments and their usage), loaded from YAML into frozen dataclasses.

The YAML shape is the one in the emulator issue; a `scale:` block adds a large synthetic estate.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path

import yaml

from .catalogue import FAMILIES

ACCOUNT_TYPE = "Microsoft.CognitiveServices/accounts"

# Model-name prefixes of OpenAI models: their usage is reported in both metric families.
OPENAI_MODEL_PREFIXES = (
    "gpt-",
    "gpt4",
    "o1",
    "o3",
    "o4",
    "text-embedding",
    "dall-e",
    "whisper",
    "tts",
    "davinci",
    "babbage",
    "codex",
    "computer-use",
    "sora",
)


class ScenarioError(ValueError):
    """The scenario file is malformed; the message names the field."""


def _parse_datetime(value, field_name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScenarioError(f"{field_name}: {value!r} is not an ISO 8601 timestamp") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_date(value, field_name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ScenarioError(f"{field_name}: {value!r} is not a date (YYYY-MM-DD)") from exc


@dataclass(frozen=True)
class DailyMeans:
    input_tokens: int
    output_tokens: int
    requests: int


@dataclass(frozen=True)
class RequestsMix:
    """Opt-in (deployment key `requests_mix:`): how a deployment's daily requests split by StatusCode,
    IsSpillover, ServiceTierRequest and ServiceTierResponse. Shares are of the day's requests (throttled,
    server_errors) or of its successful requests (spillover, priority), and of priority requests
    (downgraded: served at the Default tier). `bursts` raise the throttled share on given days."""

    throttled: float = 0.0
    server_errors: float = 0.0
    spillover: float = 0.0
    priority: float = 0.0
    downgraded: float = 0.0
    bursts: tuple[tuple[date, float], ...] = ()

    def throttled_on(self, day: date) -> float:
        return next((share for burst_day, share in self.bursts if burst_day == day), self.throttled)


@dataclass(frozen=True)
class Provisioned:
    """Opt-in (deployment key `provisioned: {utilization: P}`): a provisioned (PTU) deployment whose
    utilisation metrics report an hourly series around P percent at the busiest hour, capped at 100."""

    utilization: float


@dataclass(frozen=True)
class Deployment:
    name: str
    model: str
    version: str
    region: str | None  # value of the Region dimension; None is reported as "__Empty"
    daily: DailyMeans
    upgrades: tuple[tuple[date, str], ...] = ()
    active_from: date | None = None
    active_to: date | None = None
    publisher: str | None = None  # "OpenAI" or another publisher; inferred from the model name if absent
    # False: Azure reports this deployment's usage with ModelDeploymentName "__Empty", as seen for DALL-E 3 and
    # Whisper deployments (azure-sdk-for-python #37982). Scenario key `reports_deployment_name: false`.
    reports_deployment_name: bool = True
    # Step changes of the daily means: (first day, means from that day on), sorted. Scenario key `changes:
    # [{on: DATE, daily: {...}}]`; absent, the deployment keeps `daily` (and its usage is unchanged).
    changes: tuple[tuple[date, DailyMeans], ...] = ()
    requests_mix: RequestsMix | None = None
    provisioned: Provisioned | None = None

    def means_on(self, day: date) -> DailyMeans:
        means = self.daily
        for change_day, changed in self.changes:
            if day >= change_day:
                means = changed
        return means

    @property
    def is_openai(self) -> bool:
        if self.publisher is not None:
            return self.publisher.lower() in ("openai", "azure openai")
        return self.model.lower().startswith(OPENAI_MODEL_PREFIXES)

    def version_on(self, day: date) -> str:
        version = self.version
        for upgrade_day, new_version in self.upgrades:
            if day >= upgrade_day:
                version = new_version
        return version

    def active_on(self, day: date) -> bool:
        if self.active_from is not None and day < self.active_from:
            return False
        if self.active_to is not None and day > self.active_to:
            return False
        return True


@dataclass(frozen=True)
class Account:
    name: str
    kind: str
    location: str
    families: tuple[str, ...]
    deployments: tuple[Deployment, ...]
    subscription_id: str
    resource_group: str
    tenant_id: str
    sku: str = "S0"
    tags: tuple[tuple[str, str], ...] = ()  # ARM tags, as the accounts list returns them

    @cached_property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{ACCOUNT_TYPE}/{self.name}"
        )

    def families_for(self, deployment: Deployment) -> tuple[str, ...]:
        """Families in which a deployment's usage appears: OpenAI models in both, others only in models."""
        if deployment.is_openai:
            return self.families
        return tuple(f for f in self.families if f == "models")


@dataclass(frozen=True)
class ResourceGroup:
    name: str
    location: str
    accounts: tuple[Account, ...]


@dataclass(frozen=True)
class Subscription:
    id: str
    name: str
    tenant_id: str
    resource_groups: tuple[ResourceGroup, ...]


@dataclass(frozen=True)
class Principal:
    client_id: str
    secret: str
    tenant_id: str
    secret_expires: datetime | None
    monitoring_reader: tuple[str, ...]  # ARM scopes, as written
    # Scopes where the principal holds only a custom role with `Microsoft.CognitiveServices/accounts/read`
    # (no `microsoft.insights/*/read`): accounts there are listed and readable through ARM, but their
    # metrics and metric definitions answer 403 AuthorizationFailed. This is how an account shows up in
    # discovery yet cannot be read ("an account the principal cannot read").
    list_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tenant:
    id: str
    principals: tuple[Principal, ...]
    subscriptions: tuple[Subscription, ...]


@dataclass(frozen=True)
class Throttle:
    arm_reads_bucket: int = 250
    arm_reads_refill_per_s: float = 25.0
    arm_global_reads_bucket: int = 3750
    definitions_per_5min: int = 400
    batch_calls_per_min: int = 600


@dataclass(frozen=True)
class MetricError:
    """A per-metric error returned inside a 200 (errorCode/errorMessage) for one account."""

    account: str  # account name or id
    metric: str
    code: str
    message: str


@dataclass(frozen=True)
class Scenario:
    seed: int
    now: datetime | None
    ingestion_delay_minutes: int
    retention_days: int
    latency_ms: float
    throttle: Throttle
    tenants: tuple[Tenant, ...]
    fill_gaps_with_zero: bool = False
    accounts_page_size: int = 2
    # Deployments per page of `GET {account}/deployments` (DeploymentListResult.nextLink in the spec);
    # 0 = one page.
    deployments_page_size: int = 2
    metric_errors: tuple[MetricError, ...] = ()
    source: str | None = None

    @cached_property
    def accounts(self) -> tuple[Account, ...]:
        return tuple(a for t in self.tenants for s in t.subscriptions for rg in s.resource_groups for a in rg.accounts)

    @cached_property
    def accounts_by_id(self) -> dict[str, Account]:
        return {a.id.lower(): a for a in self.accounts}

    @cached_property
    def subscriptions(self) -> dict[str, Subscription]:
        return {s.id.lower(): s for t in self.tenants for s in t.subscriptions}

    @cached_property
    def principals(self) -> dict[str, Principal]:
        return {p.client_id.lower(): p for t in self.tenants for p in t.principals}

    @cached_property
    def tenants_by_id(self) -> dict[str, Tenant]:
        return {t.id.lower(): t for t in self.tenants}

    def account(self, account_id: str) -> Account | None:
        return self.accounts_by_id.get(account_id.rstrip("/").lower())

    def current_time(self) -> datetime:
        return self.now or datetime.now(UTC)


def _req(mapping: dict, key: str, where: str):
    if key not in mapping or mapping[key] is None:
        raise ScenarioError(f"{where}: missing required field '{key}'")
    return mapping[key]


def _means(daily: dict) -> DailyMeans:
    return DailyMeans(
        int(daily.get("input_tokens", 0)), int(daily.get("output_tokens", 0)), int(daily.get("requests", 0))
    )


def _on_keys(items) -> list[dict]:
    # YAML 1.1 (PyYAML) reads an unquoted `on:` key as the boolean True: accept both spellings.
    return [{("on" if k is True else k): v for k, v in item.items()} for item in items or ()]


def _share(raw: dict, key: str, where: str) -> float:
    value = float(raw.get(key, 0.0))
    if not 0.0 <= value <= 1.0:
        raise ScenarioError(f"{where}.{key}: {value} is not a share between 0 and 1")
    return value


def _requests_mix(raw: dict | None, where: str) -> RequestsMix | None:
    if raw is None:
        return None
    where = f"{where}.requests_mix"
    unknown = set(raw) - {"throttled", "server_errors", "spillover", "priority", "downgraded", "bursts"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    bursts = tuple(
        sorted(
            (
                _parse_date(_req(b, "on", f"{where}.bursts"), f"{where}.bursts.on"),
                _share(b, "throttled", f"{where}.bursts"),
            )
            for b in _on_keys(raw.get("bursts"))
        )
    )
    mix = RequestsMix(
        *(_share(raw, k, where) for k in ("throttled", "server_errors", "spillover", "priority", "downgraded")),
        bursts=bursts,
    )
    if max([mix.throttled, *(share for _, share in bursts)]) + mix.server_errors > 1.0:
        raise ScenarioError(f"{where}: throttled + server_errors exceed 1 on some day")
    return mix


def _provisioned(raw: dict | None, where: str) -> Provisioned | None:
    if raw is None:
        return None
    value = float(_req(raw, "utilization", f"{where}.provisioned"))
    if not 0.0 <= value <= 100.0:
        raise ScenarioError(f"{where}.provisioned.utilization: {value} is not a percentage")
    return Provisioned(value)


def _deployment(raw: dict, where: str) -> Deployment:
    daily = _req(raw, "daily", where)
    active = raw.get("active") or {}
    upgrade_maps = _on_keys(raw.get("upgrades"))
    upgrades = tuple(
        sorted(
            (_parse_date(_req(u, "on", f"{where}.upgrades"), f"{where}.upgrades.on"), str(_req(u, "version", where)))
            for u in upgrade_maps
        )
    )
    return Deployment(
        name=str(_req(raw, "name", where)),
        model=str(_req(raw, "model", where)),
        version=str(_req(raw, "version", where)),
        region=None if raw.get("region") is None else str(raw["region"]),
        daily=_means(daily),
        upgrades=upgrades,
        changes=tuple(
            sorted(
                (
                    (
                        _parse_date(_req(c, "on", f"{where}.changes"), f"{where}.changes.on"),
                        _means(_req(c, "daily", f"{where}.changes")),
                    )
                    for c in _on_keys(raw.get("changes"))
                ),
                key=lambda change: change[0],
            )
        ),
        active_from=_parse_date(active.get("from"), f"{where}.active.from"),
        active_to=_parse_date(active.get("to"), f"{where}.active.to"),
        publisher=raw.get("publisher"),
        reports_deployment_name=bool(raw.get("reports_deployment_name", True)),
        requests_mix=_requests_mix(raw.get("requests_mix"), where),
        provisioned=_provisioned(raw.get("provisioned"), where),
    )


def _account(raw: dict, sub_id: str, rg: str, tenant_id: str, where: str) -> Account:
    kind = str(raw.get("kind", "OpenAI"))
    # Absent `families`: Azure OpenAI kinds emit both families, other Cognitive Services kinds none.
    default_families = ("azure_openai", "models") if kind.lower() in ("openai", "aiservices") else ()
    families = tuple(raw["families"]) if raw.get("families") is not None else default_families
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ScenarioError(f"{where}.families: unknown {sorted(unknown)}; use {list(FAMILIES)}")
    name = str(_req(raw, "name", where))
    return Account(
        name=name,
        kind=kind,
        location=str(_req(raw, "location", where)).lower(),
        families=families,
        deployments=tuple(
            _deployment(d, f"{where}.deployments[{i}]") for i, d in enumerate(raw.get("deployments") or ())
        ),
        subscription_id=sub_id,
        resource_group=rg,
        tenant_id=tenant_id,
        sku=str(raw.get("sku", "S0")),
        tags=tuple((str(k), str(v)) for k, v in (raw.get("tags") or {}).items()),
    )


def _tenant(raw: dict, index: int) -> Tenant:
    where = f"tenants[{index}]"
    tenant_id = str(_req(raw, "id", where))
    principals = tuple(
        Principal(
            client_id=str(_req(p, "client_id", f"{where}.principals[{i}]")),
            secret=str(_req(p, "secret", f"{where}.principals[{i}]")),
            tenant_id=tenant_id,
            secret_expires=_parse_datetime(p.get("secret_expires"), f"{where}.principals[{i}].secret_expires"),
            monitoring_reader=tuple(str(s).rstrip("/") for s in p.get("monitoring_reader") or ()),
            list_only=tuple(str(s).rstrip("/") for s in p.get("list_only") or ()),
        )
        for i, p in enumerate(raw.get("principals") or ())
    )
    subscriptions = []
    for si, s in enumerate(raw.get("subscriptions") or ()):
        swhere = f"{where}.subscriptions[{si}]"
        sub_id = str(_req(s, "id", swhere))
        groups = []
        for gi, g in enumerate(s.get("resource_groups") or ()):
            gwhere = f"{swhere}.resource_groups[{gi}]"
            rg_name = str(_req(g, "name", gwhere))
            accounts = tuple(
                _account(a, sub_id, rg_name, tenant_id, f"{gwhere}.accounts[{ai}]")
                for ai, a in enumerate(g.get("accounts") or ())
            )
            groups.append(
                ResourceGroup(rg_name, str(g.get("location", accounts[0].location if accounts else "eastus")), accounts)
            )
        subscriptions.append(Subscription(sub_id, str(s.get("name", sub_id)), tenant_id, tuple(groups)))
    return Tenant(tenant_id, principals, tuple(subscriptions))


SCALE_MODELS = (
    ("gpt-4o", "2024-11-20"),
    ("gpt-4o-mini", "2024-07-18"),
    ("gpt-4.1", "2025-04-14"),
    ("o3-mini", "2025-01-31"),
    ("text-embedding-3-large", "1"),
    ("gpt-4.1-mini", "2025-04-14"),
    ("Phi-4", "7"),
    ("DeepSeek-R1", "1"),
    ("gpt-5", "2025-08-07"),
    ("Mistral-Large-2411", "2"),
)


def _scale_tenant(raw: dict, seed: int, existing: tuple[Tenant, ...]) -> tuple[Tenant, ...]:
    """Expands a `scale:` block into subscriptions of synthetic accounts readable by one principal."""
    tenant_id = str(_req(raw, "tenant", "scale"))
    client_id = str(_req(raw, "principal", "scale"))
    regions = [str(r).lower() for r in raw.get("regions") or ("eastus",)]
    n_subs = int(raw.get("subscriptions", 1))
    per_sub = int(raw.get("accounts_per_subscription", 10))
    per_account = int(raw.get("deployments_per_account", 3))
    active_from = _parse_date(raw.get("active_from", "2020-01-01"), "scale.active_from")
    ns = uuid.UUID("6f1c2a52-7a0e-4f43-9b58-1d1b0d7e0000")
    subscriptions = []
    for si in range(n_subs):
        sub_id = str(uuid.uuid5(ns, f"{seed}/sub/{si}"))
        accounts = []
        for ai in range(per_sub):
            region = regions[ai % len(regions)]
            deployments = []
            for di in range(per_account):
                model, version = SCALE_MODELS[(ai + di) % len(SCALE_MODELS)]
                deployments.append(
                    Deployment(
                        name=f"{model.lower()}-{di}",
                        model=model,
                        version=version,
                        region=region,
                        daily=DailyMeans(200_000 + 10_000 * di, 50_000 + 1_000 * di, 800 + 10 * di),
                        active_from=active_from,
                    )
                )
            accounts.append(
                Account(
                    name=f"scale-{si}-{ai:04d}",
                    kind="OpenAI" if ai % 2 == 0 else "AIServices",
                    location=region,
                    families=("azure_openai", "models"),
                    deployments=tuple(deployments),
                    subscription_id=sub_id,
                    resource_group=f"rg-scale-{ai % 5}",
                    tenant_id=tenant_id,
                )
            )
        groups = tuple(
            ResourceGroup(
                f"rg-scale-{g}", regions[0], tuple(a for a in accounts if a.resource_group == f"rg-scale-{g}")
            )
            for g in range(5)
        )
        subscriptions.append(Subscription(sub_id, f"Scale {si}", tenant_id, groups))

    sub_scopes = tuple(f"/subscriptions/{s.id}" for s in subscriptions)
    tenants = list(existing)
    for i, tenant in enumerate(tenants):
        if tenant.id.lower() != tenant_id.lower():
            continue
        principals = tuple(
            Principal(
                p.client_id, p.secret, p.tenant_id, p.secret_expires, p.monitoring_reader + sub_scopes, p.list_only
            )
            if p.client_id.lower() == client_id.lower()
            else p
            for p in tenant.principals
        )
        if not any(p.client_id.lower() == client_id.lower() for p in principals):
            raise ScenarioError(f"scale.principal: {client_id} is not a principal of tenant {tenant_id}")
        tenants[i] = Tenant(tenant.id, principals, tenant.subscriptions + tuple(subscriptions))
        return tuple(tenants)
    if "secret" not in raw:
        raise ScenarioError(f"scale.tenant: {tenant_id} is not declared; declare it or give scale.secret")
    principal = Principal(client_id, str(raw["secret"]), tenant_id, None, sub_scopes)
    return tuple(tenants) + (Tenant(tenant_id, (principal,), tuple(subscriptions)),)


def scenario_from_dict(raw: dict, source: str | None = None) -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError("scenario: the file must hold a mapping")
    seed = int(raw.get("seed", 0))
    tenants = tuple(_tenant(t, i) for i, t in enumerate(raw.get("tenants") or ()))
    if raw.get("scale"):
        tenants = _scale_tenant(raw["scale"], seed, tenants)
    throttle_raw = raw.get("throttle") or {}
    unknown = set(throttle_raw) - set(Throttle.__dataclass_fields__)
    if unknown:
        raise ScenarioError(f"throttle: unknown keys {sorted(unknown)}")
    errors = tuple(
        MetricError(
            str(_req(e, "account", "metric_errors")),
            str(_req(e, "metric", "metric_errors")),
            str(e.get("code", "InvalidSamplingType")),
            str(e.get("message", f"Sampling type is not found. Metric:{e.get('metric')}")),
        )
        for e in raw.get("metric_errors") or ()
    )
    return Scenario(
        seed=seed,
        now=_parse_datetime(raw.get("now"), "now"),
        ingestion_delay_minutes=int(raw.get("ingestion_delay_minutes", 5)),
        retention_days=int(raw.get("retention_days", 93)),
        latency_ms=float(raw.get("latency_ms", 0)),
        throttle=Throttle(**throttle_raw),
        tenants=tenants,
        fill_gaps_with_zero=bool(raw.get("fill_gaps_with_zero", False)),
        accounts_page_size=int(raw.get("accounts_page_size", 2)),
        deployments_page_size=int(raw.get("deployments_page_size", 2)),
        metric_errors=errors,
        source=source,
    )


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    return scenario_from_dict(raw, source=str(path))


def follow_real_clock(raw: dict, now: datetime) -> dict:
    """A copy of a frozen scenario document that follows the real clock: every date moves by the whole days
    between the scenario's `now` and `now`, so the estate looks the same relative to today (history up to the
    last complete day, a deployment started "10 days before now" still did), and `now` becomes null, so the
    emulator serves the real time. For the demo; tests keep frozen scenarios."""
    frozen = _parse_datetime(raw.get("now"), "now")
    out = copy.deepcopy(raw)
    out["now"] = None
    if frozen is None:
        return out
    shift = timedelta(days=(now.astimezone(UTC).date() - frozen.date()).days)

    def moved_date(value):
        parsed = _parse_date(value, "date")
        return None if parsed is None else (parsed + shift).isoformat()

    def moved_datetime(value):
        parsed = _parse_datetime(value, "timestamp")
        return None if parsed is None else (parsed + shift).isoformat().replace("+00:00", "Z")

    for tenant in out.get("tenants") or ():
        for principal in tenant.get("principals") or ():
            if principal.get("secret_expires") is not None:
                principal["secret_expires"] = moved_datetime(principal["secret_expires"])
        for sub in tenant.get("subscriptions") or ():
            for group in sub.get("resource_groups") or ():
                for account in group.get("accounts") or ():
                    for deployment in account.get("deployments") or ():
                        active = deployment.get("active") or {}
                        for key in ("from", "to"):
                            if active.get(key) is not None:
                                active[key] = moved_date(active[key])
                        for upgrade in deployment.get("upgrades") or ():
                            key = "on" if "on" in upgrade else True  # YAML 1.1 reads `on:` as True
                            upgrade[key] = moved_date(upgrade[key])
    if isinstance(out.get("scale"), dict) and out["scale"].get("active_from") is not None:
        out["scale"]["active_from"] = moved_date(out["scale"]["active_from"])
    return out
