"""What can go wrong, named once: problem codes, the product's exceptions, and the troubleshooting table.

A `Problem` is what a person can act on: a stable code, the cause and the fix (plus Azure's own text as
detail). The sync's events and checks, `connect` and `doctor` all speak in these, so the same failure
reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class ProblemCode(StrEnum):
    # the credential
    WRONG_SECRET = "wrong_secret"
    EXPIRED_SECRET = "expired_secret"
    UNKNOWN_APP = "unknown_app"
    UNKNOWN_TENANT = "unknown_tenant"
    WRONG_TENANT = "wrong_tenant"
    TOKEN_REFUSED = "unauthorized"  # Azure refused a token it issued (401)
    SECRET_MISSING = "secret_missing"
    # the scope and the role
    MISSING_ROLE = "missing_role"
    NOT_FOUND = "not_found"
    SCOPE_UNRESOLVED = "scope_unresolved"
    NO_ACCOUNTS = "no_accounts"
    ROLE_ON_ONE_ACCOUNT = "role_on_one_account"
    PARTIAL_COVERAGE = "partial_coverage"
    ACCOUNT_UNREADABLE = "account_unreadable"
    BATCH_NOT_ALLOWED = "batch_not_allowed"
    # the data
    NO_TOKEN_METRICS = "no_token_metrics"
    METRIC_ERROR = "metric_error"
    BAD_VALUE = "bad_value"  # negative, NaN, infinite or out-of-range value: refused, never stored
    DUPLICATE_SERIES = "duplicate_series"  # the same series twice in one answer
    MALFORMED_ANSWER = "malformed_answer"  # an answer that is not the JSON the API documents
    TRUNCATED = "truncated"
    RETENTION_EXCEEDED = "retention_exceeded"
    DAYS_UNANSWERED = "days_unanswered"  # Azure answered a shorter window, another grain or left buckets out
    EMPTY_SYNC = "empty_sync"
    # the service
    THROTTLED = "throttled"
    UNREACHABLE = "unreachable"
    AZURE_ERROR = "azure_error"
    EXTRACTION_FAILED = "extraction_failed"


# Problems that mean the credential or its role is unusable for the whole connection.
CREDENTIAL_CODES = frozenset(
    {
        ProblemCode.WRONG_SECRET,
        ProblemCode.EXPIRED_SECRET,
        ProblemCode.UNKNOWN_APP,
        ProblemCode.UNKNOWN_TENANT,
        ProblemCode.WRONG_TENANT,
        ProblemCode.TOKEN_REFUSED,
        ProblemCode.SECRET_MISSING,
    }
)
# Problems that make one account unreadable while the others may be fine.
UNREADABLE_CODES = frozenset({ProblemCode.MISSING_ROLE, ProblemCode.NOT_FOUND})


@dataclass(frozen=True)
class Problem:
    code: ProblemCode
    cause: str
    fix: str
    detail: str = ""  # Azure's own error text, when there is one

    def __str__(self) -> str:
        return f"{self.cause} Fix: {self.fix}"

    def with_detail(self, detail: str) -> Problem:
        return Problem(self.code, self.cause, self.fix, detail)


ROLE_FIX = (
    "Assign the built-in role Monitoring Reader to the service principal on the subscription, resource "
    "group or account (Azure portal: Access control (IAM) > Add role assignment)"
)


# ---- the troubleshooting table ---------------------------------------------------------------------------------


class Symptom(StrEnum):
    NO_USAGE = "no_usage"
    ONE_RESOURCE = "one_resource"
    EMPTY_SYNC = "empty_sync"


@dataclass(frozen=True)
class Troubleshooting:
    number: int  # the row's number in the README's troubleshooting table
    symptom: str
    cause: str
    action: str


TROUBLESHOOTING: dict[Symptom, Troubleshooting] = {
    Symptom.NO_USAGE: Troubleshooting(
        1,
        "No deployment usage appears",
        "The principal cannot read the account or Azure Monitor data",
        "Confirm the role assignment on the resource, subscription and monitoring scope",
    ),
    Symptom.ONE_RESOURCE: Troubleshooting(
        2,
        "Only one resource appears",
        "The role assignment covers only one account",
        "Add each resource, or assign Monitoring Reader at resource-group or subscription scope",
    ),
    Symptom.EMPTY_SYNC: Troubleshooting(
        3,
        "Credentials validate but sync is empty",
        "Usage is in another subscription, resource or region",
        "Confirm the scope, subscription and region before reconnecting",
    ),
}


# ---- exceptions ------------------------------------------------------------------------------------------------


class DoowError(Exception):
    """Base of every error the product raises on purpose: its message names the problem and the fix."""


class ConfigError(DoowError):
    """connections.yaml (or a setting) is invalid; `problems` lists each one with its field and fix."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s):\n{lines}")


class ConnectionFileError(DoowError):
    """connections.yaml or .env cannot be edited as asked (unknown connection, unparseable file, ...)."""


class AzureError(DoowError):
    """An Azure call failed for a reason a person can act on; `problem` says which and how to fix it."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


class ExtractionError(DoowError):
    """A metrics query failed after retries: nothing of this sync may be landed. `resource_ids`: the accounts
    the failed query asked for (a stale definitions plan is re-read for them)."""

    def __init__(self, message: str, resource_ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.resource_ids = resource_ids


class SyncInterrupted(DoowError):
    """Ctrl-C or SIGTERM during a sync: the run in progress (`job`) ended there, recorded as failed, and no later run
    started."""

    def __init__(self, job: str):
        self.job = job
        super().__init__(
            f"interrupted during {job}: it ended there and no later run started. Days landed before the stop are "
            "whole, and a write that did not finish left the warehouse as it was; sync the same range again to "
            "finish"
        )


class WarehouseError(DoowError):
    """The DuckDB warehouse or the landing zone cannot be read or written; the message says what to do."""
