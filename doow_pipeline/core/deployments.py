"""Azure OpenAI deployment types (deployment SKU names) and how each is billed. Azure Monitor does not report a
deployment's type and deployment configuration is never read, so settings name it; cost matching uses it."""

from __future__ import annotations

# SKU name -> (meter scope, batch, provisioned): provisioned (PTU) deployments are billed per hour, not per token
DEPLOYMENT_TYPES: dict[str, tuple[str, bool, bool]] = {
    "GlobalStandard": ("global", False, False),
    "DataZoneStandard": ("datazone", False, False),
    "Standard": ("regional", False, False),
    "GlobalBatch": ("global", True, False),
    "DataZoneBatch": ("datazone", True, False),
    "GlobalProvisionedManaged": ("global", False, True),
    "DataZoneProvisionedManaged": ("datazone", False, True),
    "ProvisionedManaged": ("regional", False, True),
}


def unknown_deployment_types(names: list[str]) -> list[str]:
    """The names that are no deployment type (compared case-insensitively), sorted."""
    known = {k.lower() for k in DEPLOYMENT_TYPES}
    return sorted({n for n in names if n.lower() not in known})
