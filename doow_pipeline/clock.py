"""The pipeline's notion of "now" (UTC).

`DOOW_NOW` (ISO 8601) freezes it: used to replay a past day and by the demo and tests, whose Azure
emulator runs on a frozen clock. Retention, settle windows and schedules all read time from here.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone


def utc_now() -> datetime:
    frozen = os.environ.get("DOOW_NOW")
    if frozen:
        parsed = datetime.fromisoformat(frozen.replace("Z", "+00:00"))
        return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def utc_today() -> date:
    return utc_now().date()
