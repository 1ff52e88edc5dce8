"""Secret values kept out of every log record, exception text and output of this process.

Whoever learns a client secret registers it (the Azure session that uses it, the Dagster resource that
resolves it, the CLI that loads `.env`). `install_log_scrubber` makes every log record created afterwards in
this process, whichever library logs it (azure-identity echoing a token endpoint's body, Dagster's own
loggers and event log), carry `***` instead of a registered value, before any handler sees it.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import urllib.parse
from collections.abc import Iterable
from typing import Any

MASK = "***"
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_installed = False


def _spellings(secret: str) -> set[str]:
    """A secret as an endpoint may echo it: raw, form-encoded (the token request's body), URL-quoted, and
    escaped inside a JSON string."""
    spellings = {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}
    return {s for s in spellings if len(s) >= 4}


def register(values: Iterable[str | None]) -> None:
    with _LOCK:
        for value in values:
            if value:
                _SECRETS.update(_spellings(value))


def registered() -> list[str]:
    with _LOCK:
        return sorted(_SECRETS, key=len, reverse=True)  # longest first: a secret holding another is masked whole


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    for secret in sorted({*registered(), *(e for e in extra if e)}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def holds_secret(text: str) -> bool:
    return any(secret in text for secret in registered())


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """The record with registered secrets masked in its message and its exception text."""
    if not _SECRETS:
        return record
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a record whose arguments do not format is left to logging's own handling
        return record
    scrubbed = scrub(message)
    if scrubbed != message:
        record.msg, record.args = scrubbed, None
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if holds_secret(text):
            record.exc_text, record.exc_info = scrub(text), None
    return record


class SecretFilter(logging.Filter):
    """The same masking as a filter, for handlers that receive records created before installation."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


def install_log_scrubber() -> None:
    """Wraps the process's log-record factory once, so every record is scrubbed as it is created."""
    global _installed
    with _LOCK:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
