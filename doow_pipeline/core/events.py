"""Sync events: what happened during a sync, recorded in the landing zone and `azure_openai.sync_events`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


@dataclass(frozen=True)
class SyncEvent:
    level: Level
    code: str  # a ProblemCode value, or an informational code such as batch_not_allowed
    message: str
    resource_id: str | None = None
