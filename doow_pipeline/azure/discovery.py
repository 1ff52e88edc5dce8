"""Discovery: the subscriptions a principal sees, and the Azure OpenAI accounts (kinds OpenAI and
AIServices) inside a connection's scope. The SDK pagers follow `nextLink`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.problems import AzureError, Problem, ProblemCode
from ..core.scope import Account, Scope, ScopeKind, is_azure_openai
from .errors import azure_errors
from .session import AzureSession


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    display_name: str
    tenant_id: str | None


def _account(arm: Any) -> Account:
    return Account.from_arm_id(arm.id, arm.name, arm.kind, arm.location, getattr(arm, "tags", None))


def list_subscriptions(session: AzureSession) -> list[Subscription]:
    with azure_errors(endpoint=session.endpoints.arm):
        return [
            Subscription(
                (s.subscription_id or "").lower(),
                s.display_name or s.subscription_id or "",
                (s.tenant_id or "").lower() or None,
            )
            for s in session.subscriptions().subscriptions.list()
        ]


def _list_subscription(session: AzureSession, subscription_id: str) -> list[Account]:
    with azure_errors(endpoint=session.endpoints.arm):
        return [_account(a) for a in session.cognitive(subscription_id).accounts.list()]


def _list_resource_group(session: AzureSession, subscription_id: str, resource_group: str) -> list[Account]:
    with azure_errors(endpoint=session.endpoints.arm):
        client = session.cognitive(subscription_id)
        return [_account(a) for a in client.accounts.list_by_resource_group(resource_group)]


def _get_account(session: AzureSession, subscription_id: str, resource_group: str, name: str) -> Account:
    with azure_errors(endpoint=session.endpoints.arm):
        return _account(session.cognitive(subscription_id).accounts.get(resource_group, name))


def resolve_account_name(session: AzureSession, name: str) -> Account:
    """Finds an account by bare name among every subscription the principal can see."""
    matches: list[Account] = []
    others: list[Account] = []
    for subscription in list_subscriptions(session):
        for account in _list_subscription(session, subscription.subscription_id):
            if not is_azure_openai(account.kind):
                continue
            (matches if account.name.lower() == name.lower() else others).append(account)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        candidates = ", ".join(sorted(a.name for a in others)) or "none visible to this principal"
        raise AzureError(
            Problem(
                ProblemCode.SCOPE_UNRESOLVED,
                f"There is no Azure OpenAI account named {name!r}; accounts visible: {candidates}.",
                "Use one of these names or the account's full ARM id as the scope.",
            )
        )
    ids = "; ".join(sorted(a.resource_id for a in matches))
    raise AzureError(
        Problem(
            ProblemCode.SCOPE_UNRESOLVED,
            f"The account name {name!r} is ambiguous ({len(matches)} accounts): {ids}.",
            "Use the full ARM id as the scope.",
        )
    )


def discover_accounts(session: AzureSession, scope: Scope) -> list[Account]:
    """The Azure OpenAI accounts in scope, sorted by id; raises AzureError when the scope cannot be listed."""
    if scope.kind is ScopeKind.SUBSCRIPTION:
        assert scope.subscription_id is not None
        accounts = _list_subscription(session, scope.subscription_id)
    elif scope.kind is ScopeKind.RESOURCE_GROUP:
        assert scope.subscription_id is not None and scope.resource_group is not None
        accounts = _list_resource_group(session, scope.subscription_id, scope.resource_group)
    elif scope.kind is ScopeKind.ACCOUNT_ID:
        assert scope.subscription_id and scope.resource_group and scope.account_name
        accounts = [_get_account(session, scope.subscription_id, scope.resource_group, scope.account_name)]
    else:
        assert scope.account_name is not None
        accounts = [resolve_account_name(session, scope.account_name)]
    return sorted((a for a in accounts if is_azure_openai(a.kind)), key=lambda a: a.resource_id.lower())
