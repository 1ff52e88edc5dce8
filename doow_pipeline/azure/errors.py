"""Azure errors mapped to what a person can act on: a stable code, the cause and the fix.

Shared by the sync (events, asset checks) and the CLI (connect, doctor), so the same failure reads the
same everywhere. The messages never include secrets: SDK exception texts carry none, and we only
quote Azure's own error text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

ROLE_FIX = ("Assign the built-in role Monitoring Reader to the service principal on the subscription, resource "
            "group or account (Azure portal: Access control (IAM) > Add role assignment)")


@dataclass(frozen=True)
class AzureProblem:
    code: str  # wrong_secret | expired_secret | unknown_app | unknown_tenant | wrong_tenant | missing_role |
    #            not_found | throttled | batch_not_allowed | unauthorized | unreachable | azure_error
    cause: str
    fix: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.cause} Fix: {self.fix}"


_AADSTS = {
    "7000215": ("wrong_secret", "The client secret is wrong (Entra ID AADSTS7000215).",
                "Copy the secret's Value (not its Secret ID) from the app registration's Certificates & secrets "
                "page and reconnect with `doow-azure connect`."),
    "7000222": ("expired_secret", "The client secret has expired (Entra ID AADSTS7000222).",
                "Create a new client secret on the app registration and reconnect with `doow-azure connect`."),
    "700016": ("unknown_app", "The client (application) id is not registered in this tenant (Entra ID AADSTS700016).",
               "Check the Application (client) ID and that the tenant id is the app registration's tenant."),
    "90002": ("unknown_tenant", "The tenant does not exist in this cloud (Entra ID AADSTS90002).",
              "Check the Directory (tenant) ID and the cloud (AzureCloud, AzureUSGovernment, AzureChinaCloud)."),
}


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(text.split())[:600]


def error_code(exc: BaseException) -> str | None:
    """The Azure error code of an SDK exception (AuthorizationFailed, ResourceNotFound, …), if any."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code:
        return code
    match = re.search(r"\(([A-Za-z]+)\)|Code: ([A-Za-z]+)", str(exc))
    return (match.group(1) or match.group(2)) if match else None


def classify(exc: BaseException) -> AzureProblem:
    text = _message(exc)
    match = re.search(r"AADSTS(\d+)", text)
    if match and match.group(1) in _AADSTS:
        code, cause, fix = _AADSTS[match.group(1)]
        return AzureProblem(code, cause, fix, text)
    if (isinstance(exc, ValueError) and "authority" in text.lower()) or \
            "unable to get authority configuration" in text.lower():
        # MSAL raises ValueError when the tenant's OpenID configuration answers 400 (unknown tenant);
        # azure-identity wraps it in ClientAuthenticationError ("Unable to get authority configuration").
        code, cause, fix = _AADSTS["90002"]
        return AzureProblem(code, cause, fix, text)
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
    azure_code = error_code(exc) or ""
    if azure_code == "InvalidAuthenticationTokenTenant":
        return AzureProblem("wrong_tenant", "The subscription belongs to another Entra ID tenant than the credential "
                            "(InvalidAuthenticationTokenTenant).",
                            "Use the Directory (tenant) ID of the subscription's tenant, with a service principal "
                            "registered in that tenant, and reconnect with `doow-azure connect`.", text)
    if azure_code == "AuthorizationFailed" or status == 403:
        return AzureProblem("missing_role", "The service principal is not allowed to read this scope's Azure Monitor "
                            "data (AuthorizationFailed).", ROLE_FIX, text)
    if azure_code in ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound") or status == 404:
        return AzureProblem("not_found", "The scope does not exist or the principal cannot see it.",
                            "Check the subscription id, resource group and account name in the scope.", text)
    if status in (429, 529):
        return AzureProblem("throttled", "Azure throttled the requests and retries ran out.",
                            "Lower settings.concurrency or sync fewer days per run; the next run resumes.", text)
    if isinstance(exc, ClientAuthenticationError) and status == 401:
        return AzureProblem("unauthorized", "Azure refused the access token (401).", ROLE_FIX, text)
    if isinstance(exc, ServiceRequestError):
        return AzureProblem("unreachable", "Azure could not be reached.",
                            "Check network access to the Azure endpoints (or that the emulator is running).", text)
    if isinstance(exc, HttpResponseError):
        return AzureProblem("azure_error", f"Azure answered HTTP {status} ({azure_code or 'no code'}).",
                            "Retry later; if it persists, check the Azure status page.", text)
    return AzureProblem("azure_error", f"Unexpected error: {type(exc).__name__}.", "See the detail.", text)
