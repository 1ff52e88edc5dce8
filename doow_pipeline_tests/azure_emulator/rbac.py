"""Role assignments: what a principal may list and read.

- `monitoring_reader` scopes grant Monitoring Reader (`*/read`): ARM reads, metrics and metric definitions.
- `list_only` scopes grant a custom role with `Microsoft.CognitiveServices/accounts/read` only: the account
  is listed and readable through ARM, but metrics and definitions answer 403.
A scope covers itself and everything below it (case-insensitive, as ARM compares ids).
"""

from __future__ import annotations

from .scenario import Principal


def covers(scope: str, target: str) -> bool:
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return scope == "" or target == scope or target.startswith(scope + "/")


def can_read_monitoring(principal: Principal, target: str) -> bool:
    return any(covers(s, target) for s in principal.monitoring_reader)


def can_read_arm(principal: Principal, target: str) -> bool:
    return can_read_monitoring(principal, target) or any(covers(s, target) for s in principal.list_only)


def all_scopes(principal: Principal) -> tuple[str, ...]:
    return tuple(principal.monitoring_reader) + tuple(principal.list_only)


def touches_subscription(principal: Principal, subscription_id: str) -> bool:
    """The principal holds some assignment at or below the subscription (or above it)."""
    target = f"/subscriptions/{subscription_id}".lower()
    for scope in all_scopes(principal):
        s = scope.rstrip("/").lower()
        if covers(s, target) or s.startswith(target + "/"):
            return True
    return False


def has_subscription_reader(principal: Principal, subscription_id: str) -> bool:
    """Monitoring Reader at the subscription scope itself (or above): what getBatch requires."""
    return can_read_monitoring(principal, f"/subscriptions/{subscription_id}")


def authorization_failed(principal: Principal, object_id: str, action: str, scope: str) -> dict:
    return {
        "error": {
            "code": "AuthorizationFailed",
            "message": (
                f"The client '{principal.client_id}' with object id '{object_id}' does not have authorization to "
                f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
                "granted, please refresh your credentials."
            ),
        }
    }
