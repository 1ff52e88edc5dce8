"""Builds a doow-pipeline project (connections.yaml + .env) pointing at a running emulator, and the
usage the warehouse must hold, computed independently from the emulator's scenario generator."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import yaml

from doow_pipeline.config import secret_env_name

from .azure_emulator.scenario import Scenario
from .azure_emulator.usage import expected_daily_usage

AZURE_OPENAI_KINDS = {"openai", "aiservices"}


@dataclass(frozen=True)
class ConnectionSpec:
    name: str
    client_id: str
    scope: str


def write_project(
    workdir: Path, endpoints: dict, scenario: Scenario, connections: list[ConnectionSpec], **settings
) -> Path:
    """Writes connections.yaml (no secrets) and a 0600 .env (the secrets) into workdir; returns the yaml path.
    The pipeline's clock is frozen at the scenario's (settings.frozen_clock) unless `settings` says otherwise
    (`frozen_clock=None`: the real clock)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tenant_of = {p.client_id.lower(): p.tenant_id for t in scenario.tenants for p in t.principals}
    document = {
        "connections": [
            {
                "name": c.name,
                "tenant_id": tenant_of[c.client_id.lower()],
                "client_id": c.client_id,
                "client_secret_env": secret_env_name(c.name),
                "scope": c.scope,
                "cloud": "AzureCloud",
            }
            for c in connections
        ],
        "settings": {
            "warehouse": str(workdir / "doow.duckdb"),
            "start_date": str((scenario.current_time() - timedelta(days=120)).date()),
            # the pipeline's clock follows the emulator's frozen one
            "frozen_clock": scenario.current_time().isoformat(),
            "endpoints": {
                k: endpoints[k] for k in ("authority", "arm", "metrics", "prices", "ca_cert") if k in endpoints
            },
            **settings,
        },
    }
    if document["settings"]["frozen_clock"] is None:  # the real clock (the demo)
        del document["settings"]["frozen_clock"]
    path = workdir / "connections.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    secrets = scenario.principals
    env = workdir / ".env"
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for c in connections:
            fh.write(f"{secret_env_name(c.name)}={secrets[c.client_id.lower()].secret}\n")
    return path


def _covers(scope: str, resource_id: str) -> bool:
    scope, rid = scope.rstrip("/").lower(), resource_id.lower()
    return rid == scope or rid.startswith(scope + "/")


def readable_by(scenario: Scenario, client_id: str, resource_id: str) -> bool:
    principal = scenario.principals[client_id.lower()]
    return any(_covers(s, resource_id) for s in principal.monitoring_reader)


def expected_usage(
    scenario: Scenario,
    first: date,
    last: date,
    connections: list[ConnectionSpec],
    synced_at: datetime,
    settle_hours: int = 48,
) -> pl.DataFrame:
    """usage_daily as it must be, from the generator's true totals and the documented rules:
    the models family where the account emits it for the deployment, else azure_openai; the deployment's
    model name on both (legacy rows get it from the request metric); one connection
    (the first by name) per account; only accounts a connection can read."""
    accounts = {a.id.lower(): a for a in scenario.accounts}
    chosen: dict[str, str] = {}
    for spec in sorted(connections, key=lambda c: c.name):
        for rid, account in accounts.items():
            in_scope = _covers(spec.scope, account.id) or spec.scope.lower() == account.name.lower()
            if in_scope and account.kind.lower() in AZURE_OPENAI_KINDS and readable_by(scenario, spec.client_id, rid):
                chosen.setdefault(rid, spec.name)
    rows = []
    truth = expected_daily_usage(scenario, first, last)
    families = {(r["resource_id"].lower(), r["deployment"], r["day"]): set() for r in truth}
    for r in truth:
        families[(r["resource_id"].lower(), r["deployment"], r["day"])].add(r["family"])
    for r in truth:
        rid = r["resource_id"].lower()
        if rid not in chosen:
            continue
        present = families[(rid, r["deployment"], r["day"])]
        family = "models" if "models" in present else "azure_openai"
        if r["family"] != family:
            continue
        account = accounts[rid]
        day_end = datetime.combine(r["day"] + timedelta(days=1), time(0), tzinfo=UTC)
        rows.append(
            {
                "usage_date": r["day"],
                "connection": chosen[rid],
                "tenant_id": account.tenant_id,
                "subscription_id": account.subscription_id,
                "resource_group": account.resource_group,
                "resource_name": account.name,
                "resource_id": account.id,
                "resource_kind": account.kind,
                "resource_region": account.location,
                "deployment": r["deployment"],
                # Both families name the model: "models" token metrics directly, legacy rows through the request
                # metric AzureOpenAIRequests, which reports each deployment's model in ModelName.
                "model_name": r["model"],
                "model_version": r["version"],
                "metric_region": r["region"],
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
                "total_tokens": r["total_tokens"],
                "requests": r["requests"],
                "metric_family": family,
                "is_final": synced_at >= day_end + timedelta(hours=settle_hours),
                "synced_at": synced_at.replace(tzinfo=None),
            }
        )
    grain = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]
    return pl.DataFrame(rows, infer_schema_length=None).sort(grain, nulls_last=True)
