"""Connection scopes (a subscription, a resource group, one account by ARM id or bare name) and the
Azure OpenAI accounts found in them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# Full-match patterns: `re.fullmatch` never lets a trailing newline through (as `$` would).
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,62}")
# ARM names of resource groups: letters, digits, underscores, hyphens, periods and parentheses, not ending in a period.
RESOURCE_GROUP = re.compile(r"[-\w._()]{0,89}[-\w_()]", re.ASCII)
AZURE_OPENAI_KINDS = ("openai", "aiservices")
SCOPE_HELP = (
    "use /subscriptions/<guid>, /subscriptions/<guid>/resourceGroups/<name>, an account's full ARM id "
    "(…/providers/Microsoft.CognitiveServices/accounts/<name>) or a bare account name"
)


class ScopeKind(StrEnum):
    SUBSCRIPTION = "subscription"
    RESOURCE_GROUP = "resource_group"
    ACCOUNT_ID = "account_id"
    ACCOUNT_NAME = "account_name"


def is_guid(text: str) -> bool:
    return GUID.fullmatch(text) is not None


@dataclass(frozen=True)
class Scope:
    """A parsed connection scope."""

    kind: ScopeKind
    subscription_id: str | None = None
    resource_group: str | None = None
    account_name: str | None = None

    @property
    def arm_id(self) -> str | None:
        """The scope's ARM id; None for a bare account name (it is resolved by discovery)."""
        if self.kind is ScopeKind.SUBSCRIPTION:
            return f"/subscriptions/{self.subscription_id}"
        if self.kind is ScopeKind.RESOURCE_GROUP:
            return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
        if self.kind is ScopeKind.ACCOUNT_ID:
            return (
                f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.CognitiveServices/accounts/{self.account_name}"
            )
        return None

    def covers(self, resource_id: str) -> bool:
        arm_id = self.arm_id
        if arm_id is None:
            return False
        rid = resource_id.lower()
        return rid == arm_id.lower() or rid.startswith(arm_id.lower() + "/")


_SCOPE_PATTERNS = (
    (
        ScopeKind.ACCOUNT_ID,
        re.compile(
            r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.CognitiveServices"
            r"/accounts/(?P<name>[^/]+)",
            re.IGNORECASE,
        ),
    ),
    (
        ScopeKind.RESOURCE_GROUP,
        re.compile(r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)", re.IGNORECASE),
    ),
    (ScopeKind.SUBSCRIPTION, re.compile(r"/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)),
)


def normalise_scope(text: str) -> str:
    return text.strip().rstrip("/")


def parse_scope(text: str) -> Scope:
    """Parses a scope string; raises ValueError naming the accepted forms when it is none of them."""
    value = normalise_scope(text)
    if value.startswith("/") and any(part in ("", ".", "..") for part in value[1:].split("/")):
        # URL normalisation would turn `rg/..` into a wider scope than the one written.
        raise ValueError(f"scope {text!r} has an empty, '.' or '..' segment; {SCOPE_HELP}")
    for kind, pattern in _SCOPE_PATTERNS:
        match = pattern.fullmatch(value)
        if match:
            groups = match.groupdict()
            sub = groups["sub"]
            if not is_guid(sub):
                raise ValueError(f"subscription id {sub!r} in scope {text!r} is not a GUID")
            rg = groups.get("rg")
            if rg is not None and not RESOURCE_GROUP.fullmatch(rg):
                raise ValueError(f"resource group {rg!r} in scope {text!r} is not a valid resource group name")
            name = groups.get("name")
            if name is not None and not ACCOUNT_NAME.fullmatch(name):
                raise ValueError(f"account name {name!r} in scope {text!r} is not a valid account name")
            return Scope(kind, sub.lower(), rg, name)
    if ACCOUNT_NAME.fullmatch(value):
        return Scope(ScopeKind.ACCOUNT_NAME, account_name=value)
    raise ValueError(f"scope {text!r} is not recognised; {SCOPE_HELP}")


def is_azure_openai(kind: str | None) -> bool:
    return (kind or "").lower() in AZURE_OPENAI_KINDS


@dataclass(frozen=True)
class Tag:
    """One ARM tag of a resource. Azure compares tag names case-insensitively and keeps their spelling."""

    name: str
    value: str


def tags_from(raw: Mapping[str, str | None] | None) -> tuple[Tag, ...]:
    """ARM's `tags` object as typed tags, sorted by name (a tuple: Account stays hashable)."""
    return tuple(Tag(str(k), "" if v is None else str(v)) for k, v in sorted((raw or {}).items()))


def tag_value(tags: tuple[Tag, ...], name: str) -> str | None:
    """The value of the tag called `name` (case-insensitive, as ARM compares tag names), or None."""
    wanted = name.lower()
    return next((t.value for t in tags if t.name.lower() == wanted), None)


@dataclass(frozen=True)
class Account:
    """An Azure OpenAI account (kind OpenAI or AIServices) as ARM lists it, with its ARM tags (owner, cost
    centre: which tag means what is a setting)."""

    resource_id: str
    name: str
    kind: str
    location: str  # lower-case, no spaces: "westeurope"
    subscription_id: str
    resource_group: str
    tags: tuple[Tag, ...] = ()

    @classmethod
    def from_arm_id(
        cls,
        resource_id: str,
        name: str,
        kind: str | None,
        location: str | None,
        tags: Mapping[str, str | None] | None = None,
    ) -> Account:
        # /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}
        parts = resource_id.split("/")
        return cls(
            resource_id=resource_id,
            name=name,
            kind=kind or "",
            location=(location or "").lower().replace(" ", ""),
            subscription_id=parts[2].lower(),
            resource_group=parts[4],
            tags=tags_from(tags),
        )

    @property
    def tag_map(self) -> dict[str, str]:
        return {t.name: t.value for t in self.tags}
