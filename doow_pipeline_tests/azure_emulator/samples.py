"""Small scenario dicts for tests (fast: a handful of accounts, frozen clock)."""

from __future__ import annotations

import copy

TENANT = "11111111-1111-4111-8111-111111111111"
OTHER_TENANT = "22222222-2222-4222-8222-222222222222"
SUB_A = "aaaaaaaa-0000-4000-8000-000000000001"
SUB_B = "bbbbbbbb-0000-4000-8000-000000000002"
MAIN_CLIENT = "c0000000-0000-4000-8000-00000000000a"
MAIN_SECRET = "main~Secret.Value-0123456789abcdefXYZ"
RG_CLIENT = "c0000000-0000-4000-8000-00000000000b"
RG_SECRET = "rg~Secret.Value-9876543210fedcbaQRS"
EXPIRED_CLIENT = "c0000000-0000-4000-8000-00000000000c"
EXPIRED_SECRET = "expired~Secret.Value-555555555555XYZ"
LIST_CLIENT = "c0000000-0000-4000-8000-00000000000d"
LIST_SECRET = "list~Secret.Value-44444444444444ABC"
NOW = "2026-11-20T06:00:00Z"


def account_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}"


def _deployment(name, model, version, region="westeurope", daily=(1_200_000, 300_000, 5_000), **extra):
    dep = {
        "name": name,
        "model": model,
        "version": version,
        "region": region,
        "daily": {"input_tokens": daily[0], "output_tokens": daily[1], "requests": daily[2]},
        "active": {"from": "2026-06-01", "to": None},
    }
    dep.update(extra)
    return dep


BASE = {
    "seed": 7,
    "now": NOW,
    "ingestion_delay_minutes": 5,
    "retention_days": 93,
    "latency_ms": 0,
    "accounts_page_size": 2,
    "throttle": {
        "arm_reads_bucket": 250,
        "arm_reads_refill_per_s": 25,
        "definitions_per_5min": 400,
        "batch_calls_per_min": 600,
    },
    "tenants": [
        {
            "id": TENANT,
            "principals": [
                {
                    "client_id": MAIN_CLIENT,
                    "secret": MAIN_SECRET,
                    "secret_expires": "2027-06-30T00:00:00Z",
                    "monitoring_reader": [f"/subscriptions/{SUB_A}", f"/subscriptions/{SUB_B}/resourceGroups/rg-b1"],
                },
                {
                    "client_id": RG_CLIENT,
                    "secret": RG_SECRET,
                    "secret_expires": "2027-06-30T00:00:00Z",
                    "monitoring_reader": [f"/subscriptions/{SUB_A}/resourceGroups/rg-ai"],
                },
                {
                    "client_id": EXPIRED_CLIENT,
                    "secret": EXPIRED_SECRET,
                    "secret_expires": "2026-01-01T00:00:00Z",
                    "monitoring_reader": [f"/subscriptions/{SUB_A}"],
                },
                {
                    "client_id": LIST_CLIENT,
                    "secret": LIST_SECRET,
                    "secret_expires": None,
                    "monitoring_reader": [account_id(SUB_A, "rg-ai", "aoai-weu")],
                    "list_only": [account_id(SUB_A, "rg-ai", "aoai-sec")],
                },
            ],
            "subscriptions": [
                {
                    "id": SUB_A,
                    "name": "Contoso Prod",
                    "resource_groups": [
                        {
                            "name": "rg-ai",
                            "accounts": [
                                {
                                    "name": "aoai-weu",
                                    "kind": "OpenAI",
                                    "location": "westeurope",
                                    "families": ["azure_openai", "models"],
                                    "deployments": [
                                        _deployment(
                                            "gpt-4o-prod",
                                            "gpt-4o",
                                            "2024-08-06",
                                            upgrades=[{"on": "2026-11-10", "version": "2024-11-20"}],
                                        ),
                                        _deployment(
                                            "mini", "gpt-4o-mini", "2024-07-18", daily=(400_000, 100_000, 2_000)
                                        ),
                                    ],
                                },
                                {
                                    "name": "foundry-weu",
                                    "kind": "AIServices",
                                    "location": "westeurope",
                                    "families": ["models"],
                                    "deployments": [
                                        _deployment("phi", "Phi-4", "7", daily=(300_000, 80_000, 900)),
                                        _deployment(
                                            "gpt5 chat",
                                            "gpt-5",
                                            "2025-08-07",
                                            region="Sweden Central",
                                            daily=(800_000, 200_000, 3_000),
                                        ),
                                    ],
                                },
                                {
                                    "name": "aoai-sec",
                                    "kind": "OpenAI",
                                    "location": "westeurope",
                                    "families": ["azure_openai"],
                                    "deployments": [_deployment("secret-dep", "gpt-4o", "2024-08-06")],
                                },
                                {
                                    "name": "speech-1",
                                    "kind": "SpeechServices",
                                    "location": "westeurope",
                                    "deployments": [],
                                },
                            ],
                        },
                        {
                            "name": "rg-us",
                            "accounts": [
                                {
                                    "name": "aoai-eus",
                                    "kind": "OpenAI",
                                    "location": "eastus",
                                    "families": ["azure_openai"],
                                    "deployments": [_deployment("gpt-4o-us", "gpt-4o", "2024-08-06", region="eastus")],
                                },
                            ],
                        },
                    ],
                },
                {
                    "id": SUB_B,
                    "name": "Contoso Dev",
                    "resource_groups": [
                        {
                            "name": "rg-b1",
                            "accounts": [
                                {
                                    "name": "aoai-b1",
                                    "kind": "OpenAI",
                                    "location": "swedencentral",
                                    "families": ["azure_openai"],
                                    "deployments": [
                                        _deployment("dev", "gpt-4o-mini", "2024-07-18", region="swedencentral")
                                    ],
                                },
                            ],
                        },
                        {
                            "name": "rg-b2",
                            "accounts": [
                                {
                                    "name": "aoai-b2",
                                    "kind": "OpenAI",
                                    "location": "swedencentral",
                                    "families": ["azure_openai"],
                                    "deployments": [
                                        _deployment("hidden", "gpt-4o-mini", "2024-07-18", region="swedencentral")
                                    ],
                                },
                            ],
                        },
                    ],
                },
            ],
        },
        {
            "id": OTHER_TENANT,
            "principals": [
                {
                    "client_id": "c0000000-0000-4000-8000-0000000000ff",
                    "secret": "other~tenant~secret~000",
                    "monitoring_reader": [],
                }
            ],
            "subscriptions": [],
        },
    ],
}


def small_scenario(**overrides) -> dict:
    """A fresh copy of BASE with top-level keys overridden."""
    scenario = copy.deepcopy(BASE)
    scenario.update(copy.deepcopy(overrides))
    return scenario


def many_deployments_scenario(n: int = 15, **overrides) -> dict:
    """BASE plus one account with n deployments (for top / truncation tests)."""
    scenario = small_scenario(**overrides)
    deployments = [
        _deployment(
            f"dep-{i:02d}", "gpt-4o-mini", "2024-07-18", daily=(100_000 * (i + 1), 10_000 * (i + 1), 100 * (i + 1))
        )
        for i in range(n)
    ]
    scenario["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"].append(
        {
            "name": "aoai-many",
            "kind": "OpenAI",
            "location": "westeurope",
            "families": ["azure_openai", "models"],
            "deployments": deployments,
        }
    )
    return scenario


def empty_deployment_names_scenario(**overrides) -> dict:
    """BASE plus a DALL-E 3 and a Whisper deployment on aoai-weu whose usage Azure reports with
    ModelDeploymentName `__Empty` (azure-sdk-for-python #37982); deployments listed in one page."""
    scenario = small_scenario(deployments_page_size=0, **overrides)
    weu = scenario["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"][0]
    weu["deployments"] += [
        _deployment("dalle", "dall-e-3", "3.0", daily=(0, 0, 300), reports_deployment_name=False),
        _deployment("whisper", "whisper", "001", daily=(0, 0, 200), reports_deployment_name=False),
    ]
    return scenario


ACTIVITY_CHANGE_DAY = "2026-10-25"


def activity_anomalies_scenario(**overrides) -> dict:
    """BASE plus an account `aoai-activity` (subscription A, rg-ai) whose deployments change on 2026-10-25:
    `jumpy` uses 20x its mean from then on, `dipper` 1/20, `stopper` stops (last day 2026-10-24), `fresh`
    starts; `late-stop` stops after 2026-11-17 and `late-jump` jumps on 2026-11-18, days that are not final
    at the frozen now (2026-11-20T06:00Z, 48 settle hours). Factors of 20 keep every changed day beyond a
    factor of 3 whatever the generator's per-day factors (0.4 .. 1.6 of the mean)."""
    scenario = small_scenario(**overrides)
    base, up, down = (1_000_000, 200_000, 4_000), (20_000_000, 4_000_000, 80_000), (50_000, 10_000, 200)

    def changed(daily):
        return [
            {
                "on": ACTIVITY_CHANGE_DAY,
                "daily": {"input_tokens": daily[0], "output_tokens": daily[1], "requests": daily[2]},
            }
        ]

    deployments = [
        _deployment("jumpy", "gpt-4o", "2024-11-20", daily=base, changes=changed(up)),
        _deployment("dipper", "gpt-4o", "2024-11-20", daily=base, changes=changed(down)),
        _deployment(
            "stopper", "gpt-4o-mini", "2024-07-18", daily=base, active={"from": "2026-06-01", "to": "2026-10-24"}
        ),
        _deployment("fresh", "gpt-4.1", "2025-04-14", daily=base, active={"from": ACTIVITY_CHANGE_DAY, "to": None}),
        _deployment(
            "late-stop", "gpt-4o-mini", "2024-07-18", daily=base, active={"from": "2026-06-01", "to": "2026-11-17"}
        ),
        _deployment(
            "late-jump",
            "gpt-4o",
            "2024-11-20",
            daily=base,
            changes=[{"on": "2026-11-18", "daily": {"input_tokens": up[0], "output_tokens": up[1], "requests": up[2]}}],
        ),
    ]
    scenario["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"].append(
        {
            "name": "aoai-activity",
            "kind": "OpenAI",
            "location": "westeurope",
            "families": ["azure_openai", "models"],
            "deployments": deployments,
        }
    )
    return scenario


THROTTLE_BURST_DAY = "2026-11-12"


def activity_signals_scenario(**overrides) -> dict:
    """BASE plus an account `aoai-ptu` (subscription A, rg-ai) with deployment activity beyond tokens:
    `ptu-main` is provisioned (utilisation around 70% at the busiest hour, so busy days saturate) with 2% of
    its requests throttled and a 429 burst (40%) on 2026-11-12; `paygo-spill` takes spillover (30% of its
    successful requests), 40% of its requests ask for the Priority tier and a quarter of those are served at
    Default; `ptu-quiet` is provisioned at 20% (never saturated); `plain` has neither."""
    scenario = small_scenario(**overrides)
    mix_main = {"throttled": 0.02, "server_errors": 0.005, "bursts": [{"on": THROTTLE_BURST_DAY, "throttled": 0.4}]}
    mix_spill = {"throttled": 0.01, "spillover": 0.3, "priority": 0.4, "downgraded": 0.25}
    deployments = [
        _deployment(
            "ptu-main",
            "gpt-4o",
            "2024-11-20",
            daily=(3_000_000, 600_000, 12_000),
            requests_mix=mix_main,
            provisioned={"utilization": 70},
        ),
        _deployment("paygo-spill", "gpt-4o", "2024-11-20", daily=(800_000, 150_000, 4_000), requests_mix=mix_spill),
        _deployment(
            "ptu-quiet", "gpt-4o-mini", "2024-07-18", daily=(500_000, 100_000, 2_000), provisioned={"utilization": 20}
        ),
        _deployment("plain", "gpt-4o-mini", "2024-07-18", daily=(200_000, 50_000, 1_000)),
    ]
    scenario["tenants"][0]["subscriptions"][0]["resource_groups"][0]["accounts"].append(
        {
            "name": "aoai-ptu",
            "kind": "OpenAI",
            "location": "westeurope",
            "families": ["azure_openai", "models"],
            "deployments": deployments,
        }
    )
    return scenario
