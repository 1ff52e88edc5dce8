"""ARM resource shapes: subscriptions, resource groups, Cognitive Services accounts and deployments,
metric definitions; and ARM's standard error bodies."""

from __future__ import annotations

import hashlib
from datetime import date

from .catalogue import RETENTION, TIME_GRAINS, MetricSpec
from .metrics import account_metrics
from .scenario import ACCOUNT_TYPE, Account, ResourceGroup, Subscription

DIMENSION_DISPLAY = {
    "ApiName": "API name",
    "ModelDeploymentName": "Model deployment name",
    "FeatureName": "Feature name",
    "UsageChannel": "Usage channel",
    "Region": "Region",
    "ModelVersion": "Model version",
    "ModelName": "Model name",
    "OperationName": "Operation name",
    "StreamType": "Stream type",
    "StatusCode": "Status code",
    "IsSpillover": "Is spillover",
    "ServiceTierRequest": "Service tier request",
    "ServiceTierResponse": "Service tier response",
}
AI_KINDS = ("openai", "aiservices")


def _guid_from(text: str) -> str:
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def subscription_json(sub: Subscription) -> dict:
    return {
        "id": f"/subscriptions/{sub.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": sub.tenant_id,
        "displayName": sub.name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def resource_group_json(sub: Subscription, rg: ResourceGroup) -> dict:
    return {
        "id": f"/subscriptions/{sub.id}/resourceGroups/{rg.name}",
        "name": rg.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": rg.location,
        "properties": {"provisioningState": "Succeeded"},
    }


def account_json(account: Account) -> dict:
    is_ai = account.kind.lower() in AI_KINDS
    endpoint = (
        f"https://{account.name}.openai.azure.com/"
        if account.kind.lower() == "openai"
        else f"https://{account.name}.cognitiveservices.azure.com/"
        if is_ai
        else f"https://{account.location}.api.cognitive.microsoft.com/"
    )
    stamp = hashlib.sha256(account.id.lower().encode()).hexdigest()
    body = {
        "id": account.id,
        "name": account.name,
        "type": ACCOUNT_TYPE,
        "etag": f'"{stamp[:8]}-0000-0d00-0000-{stamp[8:20]}"',
        "location": account.location,
        "sku": {"name": account.sku},
        "kind": account.kind,
        "tags": dict(account.tags),
        "properties": {
            "endpoint": endpoint,
            "internalId": stamp[:32],
            "dateCreated": "2024-05-01T09:00:00.0000000Z",
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "isMigrated": False,
        },
        "systemData": {
            "createdBy": "admin@contoso.example",
            "createdByType": "User",
            "createdAt": "2024-05-01T09:00:00.000Z",
            "lastModifiedBy": "admin@contoso.example",
            "lastModifiedByType": "User",
            "lastModifiedAt": "2024-05-01T09:00:00.000Z",
        },
    }
    if is_ai:
        body["properties"]["customSubDomainName"] = account.name
    return body


def deployment_json(account: Account, deployment, today: date) -> dict:
    fmt = "OpenAI" if deployment.is_openai else (deployment.publisher or deployment.model.split("-")[0])
    return {
        "id": f"{account.id}/deployments/{deployment.name}",
        "name": deployment.name,
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "sku": {"name": "GlobalStandard", "capacity": 100},
        "properties": {
            "model": {"format": fmt, "name": deployment.model, "version": deployment.version_on(today)},
            "versionUpgradeOption": "OnceNewDefaultVersionAvailable",
            "provisioningState": "Succeeded",
        },
    }


def metric_definition_json(account: Account, spec: MetricSpec, namespace: str = ACCOUNT_TYPE) -> dict:
    return {
        "id": f"{account.id}/providers/microsoft.insights/metricdefinitions/{spec.name}",
        "resourceId": account.id,
        "namespace": namespace,
        "category": spec.category,
        "name": {"value": spec.name, "localizedValue": spec.display_name},
        "displayDescription": spec.description,
        "isDimensionRequired": False,
        "unit": spec.unit,
        "primaryAggregationType": spec.aggregations[0],
        "supportedAggregationTypes": list(spec.aggregations),
        "metricAvailabilities": [{"timeGrain": g, "retention": RETENTION} for g in TIME_GRAINS],
        "dimensions": [{"value": d, "localizedValue": DIMENSION_DISPLAY.get(d, d)} for d in spec.dimensions],
    }


def metric_definitions_json(account: Account, namespace: str = ACCOUNT_TYPE) -> dict:
    return {"value": [metric_definition_json(account, spec, namespace) for spec in account_metrics(account)]}


def metric_namespaces_json(account: Account) -> dict:
    """`GET {resourceId}/providers/microsoft.insights/metricNamespaces`: the platform namespace of the resource
    type, shaped as the recorded real answer (Azure CLI test_monitor_metrics_scenario, 2017-12-01-preview):
    name is the lower-cased type with '/' replaced by '-', classification Platform."""
    lowered = ACCOUNT_TYPE.lower()
    name = lowered.replace("/", "-")
    return {
        "value": [
            {
                "id": f"{account.id}/providers/microsoft.insights/metricNamespaces/{name}",
                "name": name,
                "type": "Microsoft.Insights/metricNamespaces",
                "classification": "Platform",
                "properties": {"metricNamespaceName": lowered},
            }
        ]
    }


# ---- errors ----------------------------------------------------------------------------------------------


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def missing_api_version() -> dict:
    return error(
        "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."
    )


def invalid_api_version(version: str) -> dict:
    return error(
        "InvalidApiVersionParameter",
        f"The api-version '{version}' is invalid. The supported versions are "
        "'2022-12-01,2021-01-01,2020-01-01,2019-11-01,2019-06-01,2018-06-01,2016-06-01'.",
    )


def no_registered_provider(version: str, location: str, type_name: str, supported: tuple[str, ...]) -> dict:
    return error(
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version '{version}' for "
        f"type '{type_name}'. The supported api-versions are '{', '.join(supported)}'. The supported "
        f"locations are ', {location}'.",
    )


def subscription_not_found(sub: str) -> dict:
    return error("SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def resource_group_not_found(rg: str) -> dict:
    return error("ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def resource_not_found(type_path: str, name: str, rg: str) -> dict:
    return error(
        "ResourceNotFound",
        f"The Resource '{type_path}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def wrong_tenant(token_tenant: str, sub_tenant: str) -> dict:
    return error(
        "InvalidAuthenticationTokenTenant",
        f"The access token is from the wrong issuer 'https://sts.windows.net/{token_tenant}/'. It must match "
        f"the tenant 'https://sts.windows.net/{sub_tenant}/' associated with this subscription. Please use "
        f"the authority (URL) 'https://login.windows.net/{sub_tenant}' to get the token. Note, if the "
        "subscription is transferred to another tenant there is no impact to the services, but information "
        "about new tenant could take time to propagate (up to an hour). If you just transferred your "
        "subscription and see this error message, please try back later.",
    )


def too_many_requests() -> dict:
    return error(
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type "
        "- 'Read'. For more information, see - https://aka.ms/msdn-throttling",
    )


def definitions_throttled(limit: int, retry_after: int) -> dict:
    return error(
        "ResourceRequestsThrottled",
        f"Number of requests for action 'Microsoft.Insights/metricDefinitions/read' exceeded the limit of "
        f"'{limit}' for time interval '00:05:00'. Please try again after '{retry_after}' seconds.",
    )
