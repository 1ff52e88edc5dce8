"""Discovery of the Azure OpenAI accounts (kinds OpenAI and AIServices) inside a connection's scope."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Scope
from .session import AzureSession

AZURE_OPENAI_KINDS = ("openai", "aiservices")


class ScopeResolutionError(LookupError):
    """A bare account name matched no account, or several; the message lists the candidates."""


@dataclass(frozen=True)
class AccountInfo:
    resource_id: str
    name: str
    kind: str
    location: str
    subscription_id: str
    resource_group: str

    @classmethod
    def from_arm(cls, account) -> "AccountInfo":
        parts = account.id.split("/")
        # /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}
        return cls(resource_id=account.id, name=account.name, kind=account.kind or "",
                   location=(account.location or "").lower().replace(" ", ""),
                   subscription_id=parts[2].lower(), resource_group=parts[4])


def is_azure_openai(kind: str | None) -> bool:
    return (kind or "").lower() in AZURE_OPENAI_KINDS


def _list_subscription(session: AzureSession, subscription_id: str) -> list[AccountInfo]:
    return [AccountInfo.from_arm(a) for a in session.cognitive(subscription_id).accounts.list()]


def _list_resource_group(session: AzureSession, subscription_id: str, resource_group: str) -> list[AccountInfo]:
    client = session.cognitive(subscription_id)
    return [AccountInfo.from_arm(a) for a in client.accounts.list_by_resource_group(resource_group)]


def visible_subscriptions(session: AzureSession) -> list[str]:
    return [s.subscription_id.lower() for s in session.subscriptions().subscriptions.list()]


def resolve_account_name(session: AzureSession, name: str) -> AccountInfo:
    """Finds an account by bare name among every subscription the principal can see."""
    matches, others = [], []
    for subscription_id in visible_subscriptions(session):
        for account in _list_subscription(session, subscription_id):
            if not is_azure_openai(account.kind):
                continue
            (matches if account.name.lower() == name.lower() else others).append(account)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        candidates = ", ".join(sorted(a.name for a in others)) or "none visible to this principal"
        raise ScopeResolutionError(f"no Azure OpenAI account named {name!r}; accounts visible: {candidates}. "
                                   "Use one of these names or the account's full ARM id.")
    ids = "; ".join(sorted(a.resource_id for a in matches))
    raise ScopeResolutionError(f"account name {name!r} is ambiguous ({len(matches)} accounts): {ids}. "
                               "Use the full ARM id as the scope.")


def discover_accounts(session: AzureSession, scope: Scope) -> list[AccountInfo]:
    """The Azure OpenAI accounts in scope, sorted by id. The SDK pagers follow `nextLink`."""
    if scope.kind == "subscription":
        accounts = _list_subscription(session, scope.subscription_id)
    elif scope.kind == "resource_group":
        accounts = _list_resource_group(session, scope.subscription_id, scope.resource_group)
    elif scope.kind == "account_id":
        client = session.cognitive(scope.subscription_id)
        accounts = [AccountInfo.from_arm(client.accounts.get(scope.resource_group, scope.account_name))]
    else:
        accounts = [resolve_account_name(session, scope.account_name)]
    return sorted((a for a in accounts if is_azure_openai(a.kind)), key=lambda a: a.resource_id.lower())
