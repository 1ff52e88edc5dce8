"""Validate emulator responses against JSON Schemas of Microsoft's published REST API specifications.

The schemas are committed in `schemas/` (one file per response kind plus `errors.json`), generated from
the swagger 2.0 files of Microsoft's Azure/azure-rest-api-specs by `schemas/generate.py`, whose
docstring lists the spec files and api-versions and the conversion rules (`$ref`s across files become
`$defs`, `x-nullable` admits null, `modelAsString` enums accept any string, date-time and duration get an
ISO 8601 shape check, extra properties are accepted unless the spec forbids them). This module reads
only those files and validates bodies with `jsonschema`:

    problems = validate_response("metrics", 200, body)   # [] when the body matches the spec

Additions and relaxations on top of the spec, applied here when a schema is loaded (the committed files
hold the spec's facts unchanged), each because Azure itself behaves so:
- Error bodies must carry `code` and `message` (every Azure error does; the spec marks neither as
  required, which would let `{}` pass). ARM front-door errors and the batch API wrap them in
  `{"error": {...}}`; the metrics resource provider answers its own 400s flat (`{"code", "message"}`,
  Azure Monitor's documented behaviour for invalid metric queries), so metrics and metricDefinitions
  accept both forms, while subscriptions, accounts and batch accept only the wrapped form.
- `ErrorAdditionalInfo.info` may be a string as well as an object: the batch API sends
  `{"type": "string", "info": "TraceId=…"}`, as the official MetricBatchExample error bodies show.
- `SubscriptionListResult.nextLink` is not required: the 2022-12-01 spec marks it required, but ARM
  omits it on the last page. (subscriptions.json is generated from Subscriptions_List definitions built
  into generate.py when the specs checkout has no subscriptions.json; its `$comment` says so.)
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from .schemas.generate import COMMON_V1, COMMON_V3, REGENERATE, SUBSCRIPTIONS_SPEC, def_key

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"

FLAT_ERROR_KEY = def_key(COMMON_V1, "#/definitions/ErrorResponse")
WRAPPED_ERROR_KEY = def_key(COMMON_V3, "#/definitions/ErrorResponse")

# Spec requirements Azure does not honour on the wire: `$defs` key -> required names to drop.
_RELAXED_REQUIRED = {
    def_key(SUBSCRIPTIONS_SPEC, "#/definitions/SubscriptionListResult"): {"nextLink"},
}
# Property types Azure does not honour on the wire: `$defs` key -> {property: schema}.
# The metrics batch API (and the metrics RP) send `additionalInfo[].info` as a string
# ("TraceId=…", "ExceptionType=…"): the official MetricBatchExample*.json error bodies do so.
_RELAXED_PROPERTIES = {
    def_key(f"common-types/resource-management/{v}/types.json", "#/definitions/ErrorAdditionalInfo"): {
        "info": {"type": ["object", "string"]}
    }
    for v in ("v1", "v2", "v3")
}


class SchemasNotFoundError(FileNotFoundError):
    """A committed schema file is missing or unreadable (regenerate it with schemas/generate.py)."""


@dataclass(frozen=True)
class _Kind:
    schema: str | None  # committed schema file of the 200 body; None for "error"
    errors: str  # which error bodies a non-2xx response may carry: "wrapped" or "any"


KINDS: dict[str, _Kind] = {
    "subscriptions": _Kind("subscriptions.json", "wrapped"),
    "accounts_list": _Kind("accounts_list.json", "wrapped"),
    "account": _Kind("account.json", "wrapped"),
    "metric_definitions": _Kind("metric_definitions.json", "any"),
    "metrics": _Kind("metrics.json", "any"),
    "batch": _Kind("batch.json", "wrapped"),
    "deployments_list": _Kind("deployments_list.json", "wrapped"),
    # The metricNamespaces RP declares a flat ErrorResponse; ARM's own 401/403/404 are wrapped.
    "metric_namespaces": _Kind("metric_namespaces.json", "any"),
    "error": _Kind(None, "any"),
}
ERRORS_SCHEMA = "errors.json"


def load_schema(name: str) -> dict:
    """A committed schema file from SCHEMAS_DIR, with the relaxations above applied to its `$defs`."""
    path = SCHEMAS_DIR / name
    try:
        with path.open(encoding="utf-8") as fh:
            schema = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SchemasNotFoundError(
            f"committed schema {path} cannot be read ({exc}); regenerate it: {REGENERATE}"
        ) from exc
    defs = schema.get("$defs", {})
    for key, names in _RELAXED_REQUIRED.items():
        if key in defs and "required" in defs[key]:
            defs[key]["required"] = [r for r in defs[key]["required"] if r not in names]
    for key, replacements in _RELAXED_PROPERTIES.items():
        if key in defs:
            for prop, replacement in replacements.items():
                defs[key].setdefault("properties", {})[prop] = copy.deepcopy(replacement)
    return schema


_WRAPPED_ERROR_STRICT = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"]}},
}
_FLAT_ERROR_STRICT = {"type": "object", "required": ["code", "message"]}


def _error_schema(errors: str) -> dict:
    wrapped = {"allOf": [{"$ref": f"#/$defs/{WRAPPED_ERROR_KEY}"}, _WRAPPED_ERROR_STRICT]}
    if errors == "wrapped":
        return wrapped
    flat = {"allOf": [{"$ref": f"#/$defs/{FLAT_ERROR_KEY}"}, _FLAT_ERROR_STRICT]}
    return {"anyOf": [wrapped, flat]}


_COMPILE_LOCK = threading.Lock()


@functools.cache
def _validator(kind: str, success: bool) -> jsonschema.protocols.Validator:
    with _COMPILE_LOCK:  # the emulator validates from several threads; compile each schema once
        return _compile(kind, success)


def _compile(kind: str, success: bool) -> jsonschema.protocols.Validator:
    spec = KINDS[kind]
    if success and spec.schema is not None:
        schema = load_schema(spec.schema)
    else:
        errors = load_schema(ERRORS_SCHEMA)
        schema = {"$schema": errors["$schema"], **_error_schema(spec.errors), "$defs": errors["$defs"]}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_for(kind: str, status: int = 200) -> dict:
    """The compiled JSON Schema used for `kind` at `status` (for debugging and documentation)."""
    if kind not in KINDS:
        raise ValueError(f"unknown response kind {kind!r}; use one of {sorted(KINDS)}")
    return _validator(kind, 200 <= status < 300).schema


def _location(path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: jsonschema.ValidationError) -> str:
    message = f"{_location(error.absolute_path)}: {_short(error.message)}"
    if error.context:
        # anyOf/oneOf: say why each alternative failed (deepest first, a few of them).
        reasons = []
        for sub in sorted(error.context, key=lambda e: -len(e.absolute_path)):
            reason = f"{_location(sub.absolute_path)}: {_short(sub.message, 160)}"
            if reason not in reasons:
                reasons.append(reason)
        message += " (" + "; ".join(reasons[:4]) + ")"
    return message


def validate_response(kind: str, status: int, body) -> list[str]:
    """Problems with a response body of `kind` at HTTP `status` against the Azure specs; [] if valid.

    kind: subscriptions | accounts_list | account | deployments_list | metric_definitions | metric_namespaces |
    metrics | batch | error.
    A 2xx status is checked against the kind's success schema; any other status against the error
    bodies that endpoint may return. `body` may be parsed JSON, or the raw text/bytes.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown response kind {kind!r}; use one of {sorted(KINDS)}")
    label = f"{kind} ({status})"
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            return [f"{label}: body is not JSON: {exc}"]
    problems = []
    success = 200 <= status < 300
    if kind == "error" and success:
        problems.append(f"{label}: an error body with a success status")
    validator = _validator(kind, success)
    errors = sorted(validator.iter_errors(body), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    problems.extend(f"{label}: {_describe(e)}" for e in errors)
    return problems


def assert_valid_response(kind: str, status: int, body) -> None:
    """Raise AssertionError listing the problems when the body does not match the spec."""
    problems = validate_response(kind, status, body)
    if problems:
        raise AssertionError("response does not match the Azure spec:\n  " + "\n  ".join(problems))
