"""Validate emulator responses against Microsoft's published REST API specifications.

The swagger 2.0 files in ../shared/azure-specs (Azure/azure-rest-api-specs, unmodified) are the
reference. This module loads them, resolves `$ref`s across files (including the relative references
into common-types), converts the definitions it needs into one JSON Schema (draft 2020-12) per
response kind, and validates bodies with `jsonschema`:

    problems = validate_response("metrics", 200, body)   # [] when the body matches the spec

Conversion rules (swagger 2.0 -> JSON Schema):
- `$ref` to `file#/definitions/X` becomes a `$defs` entry; recursive definitions stay references.
- `x-nullable: true` admits `null`; nothing else does (a null where the spec has a string is a problem).
- `enum` is enforced only when `x-ms-enum.modelAsString` is false or absent; `modelAsString: true`
  means any string is valid (Azure adds values without a new api-version).
- `format: date-time` and `format: duration` stay strings, with a light ISO 8601 shape check (the SDK
  deserializers reject malformed ones too); other formats (int32, double, arm-id, ...) are annotations.
- `required`, `allOf`, `items`, `additionalProperties`, `minimum`/`maximum`, `minLength`/`maxLength`,
  `pattern` carry over; `readOnly` and the `x-ms-*` client hints do not constrain responses.
- Extra properties are accepted unless the spec forbids them (`additionalProperties: false`).

Additions and relaxations on top of the spec, each because Azure itself behaves so:
- Error bodies must carry `code` and `message` (every Azure error does; the spec marks neither as
  required, which would let `{}` pass). ARM front-door errors and the batch API wrap them in
  `{"error": {...}}`; the metrics resource provider answers its own 400s flat (`{"code", "message"}`,
  research/azure-monitor-api.md §4.1), so metrics and metricDefinitions accept both forms, while
  subscriptions, accounts and batch accept only the wrapped form.
- `ErrorAdditionalInfo.info` may be a string as well as an object: the batch API sends
  `{"type": "string", "info": "TraceId=…"}`, as the official MetricBatchExample error bodies show.
- `SubscriptionListResult.nextLink` is not required: the 2022-12-01 spec marks it required, but ARM
  omits it on the last page. The shared specs folder does not hold `subscriptions.json`; when it is
  absent the Subscriptions_List schema below (transcribed from the 2022-12-01 definitions) is used.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

SPECS_ENV = "DOOW_AZURE_SPECS"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPECS_DIR = REPO_ROOT.parent / "shared" / "azure-specs"

METRICS_SPEC = "monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metrics_API.json"
METRIC_DEFINITIONS_SPEC = "monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metricDefinitions_API.json"
BATCH_SPEC = "monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json"
COGNITIVE_SPEC = "cognitiveservices/resource-manager/Microsoft.CognitiveServices/stable/2024-10-01/cognitiveservices.json"
SUBSCRIPTIONS_SPEC = "resources/resource-manager/Microsoft.Resources/stable/2022-12-01/subscriptions.json"
COMMON_V1 = "common-types/resource-management/v1/types.json"
COMMON_V3 = "common-types/resource-management/v3/types.json"

# The spec files every kind needs; their absence is an environment problem, reported up front.
REQUIRED_SPEC_FILES = (METRICS_SPEC, METRIC_DEFINITIONS_SPEC, BATCH_SPEC, COGNITIVE_SPEC, COMMON_V1, COMMON_V3)

DATE_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$"
DURATION_PATTERN = r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"

# Subscriptions_List (2022-12-01), in swagger form, used when subscriptions.json is not in the specs
# folder. Field names, types and enums as in the published definitions.
_BUILTIN_SUBSCRIPTIONS_DOC = {
    "definitions": {
        "Subscription": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "readOnly": True},
                "subscriptionId": {"type": "string", "readOnly": True},
                "displayName": {"type": "string", "readOnly": True},
                "tenantId": {"type": "string", "readOnly": True},
                "state": {"type": "string", "readOnly": True,
                          "enum": ["Enabled", "Warned", "PastDue", "Disabled", "Deleted"],
                          "x-ms-enum": {"name": "SubscriptionState", "modelAsString": False}},
                "subscriptionPolicies": {"$ref": "#/definitions/SubscriptionPolicies"},
                "authorizationSource": {"type": "string"},
                "managedByTenants": {"type": "array", "items": {"$ref": "#/definitions/ManagedByTenant"}},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "SubscriptionPolicies": {
            "type": "object",
            "properties": {
                "locationPlacementId": {"type": "string", "readOnly": True},
                "quotaId": {"type": "string", "readOnly": True},
                "spendingLimit": {"type": "string", "readOnly": True, "enum": ["On", "Off", "CurrentPeriodOff"],
                                  "x-ms-enum": {"name": "spendingLimit", "modelAsString": False}},
            },
        },
        "ManagedByTenant": {"type": "object", "properties": {"tenantId": {"type": "string", "readOnly": True}}},
        "SubscriptionListResult": {
            "type": "object",
            "properties": {
                "value": {"type": "array", "items": {"$ref": "#/definitions/Subscription"}},
                "nextLink": {"type": "string"},
            },
            "required": ["nextLink"],
        },
    }
}

# Spec requirements Azure does not honour on the wire: (spec file, definition) -> required names to drop.
_RELAXED_REQUIRED = {
    (SUBSCRIPTIONS_SPEC, "SubscriptionListResult"): {"nextLink"},
}
# Property types Azure does not honour on the wire: (spec file, definition) -> {property: schema}.
# The metrics batch API (and the metrics RP) send `additionalInfo[].info` as a string
# ("TraceId=…", "ExceptionType=…"): the official MetricBatchExample*.json error bodies do so.
_RELAXED_PROPERTIES = {
    (f"common-types/resource-management/{v}/types.json", "ErrorAdditionalInfo"): {"info": {"type": ["object", "string"]}}
    for v in ("v1", "v2", "v3")
}


class SpecsNotFoundError(FileNotFoundError):
    """The Azure REST API spec files are not where this module looks for them."""


@dataclass(frozen=True)
class _Kind:
    spec: str | None  # spec file holding the 200 body definition; None for "error"
    definition: str | None
    errors: str  # which error bodies a non-2xx response may carry: "wrapped" or "any"


KINDS: dict[str, _Kind] = {
    "subscriptions": _Kind(SUBSCRIPTIONS_SPEC, "SubscriptionListResult", "wrapped"),
    "accounts_list": _Kind(COGNITIVE_SPEC, "AccountListResult", "wrapped"),
    "account": _Kind(COGNITIVE_SPEC, "Account", "wrapped"),
    "metric_definitions": _Kind(METRIC_DEFINITIONS_SPEC, "MetricDefinitionCollection", "any"),
    "metrics": _Kind(METRICS_SPEC, "Response", "any"),
    "batch": _Kind(BATCH_SPEC, "MetricResultsResponse", "wrapped"),
    "error": _Kind(None, None, "any"),
}


def specs_dir() -> Path:
    """The azure-specs directory: $DOOW_AZURE_SPECS, else <repo>/../shared/azure-specs."""
    configured = os.environ.get(SPECS_ENV)
    path = Path(configured).expanduser() if configured else DEFAULT_SPECS_DIR
    source = f"${SPECS_ENV}" if configured else f"the default <repo>/../shared/azure-specs (set ${SPECS_ENV} to override)"
    if not path.is_dir():
        raise SpecsNotFoundError(f"Azure REST API specs directory {path} does not exist; it comes from {source}")
    missing = [rel for rel in REQUIRED_SPEC_FILES if not (path / rel).is_file()]
    if missing:
        raise SpecsNotFoundError(
            f"Azure REST API specs directory {path} lacks {', '.join(missing)}; it comes from {source}")
    return path.resolve()


def _unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


class _SwaggerConverter:
    """Converts swagger 2.0 definitions reachable from chosen roots into JSON Schema `$defs`."""

    def __init__(self, root: Path):
        self.root = root
        self.defs: dict[str, Any] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._docs: dict[str, dict] = {}

    def _document(self, rel: str) -> dict:
        if rel not in self._docs:
            path = self.root / rel
            if path.is_file():
                with path.open(encoding="utf-8") as fh:
                    self._docs[rel] = json.load(fh)
            elif rel == SUBSCRIPTIONS_SPEC:
                self._docs[rel] = _BUILTIN_SUBSCRIPTIONS_DOC
            else:
                raise SpecsNotFoundError(f"spec file {path} (referenced from the Azure specs) does not exist; "
                                         f"check ${SPECS_ENV} or <repo>/../shared/azure-specs")
        return self._docs[rel]

    def _resolve_rel(self, base_rel: str, file_part: str) -> str:
        if not file_part:
            return base_rel
        joined = os.path.normpath(os.path.join(os.path.dirname(base_rel), file_part))
        return joined.replace(os.sep, "/")

    def ref(self, base_rel: str, ref: str) -> str:
        """The `$defs` key for a swagger `$ref` made from file `base_rel`, converting on first use."""
        file_part, _, pointer = ref.partition("#")
        rel = self._resolve_rel(base_rel, file_part)
        ident = (rel, pointer)
        if ident in self._keys:
            return self._keys[ident]
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{rel.removesuffix('.json')}{pointer}").strip("_")
        while key in self.defs:
            key += "_"
        self._keys[ident] = key
        self.defs[key] = {}  # placeholder: recursive references find the key already allocated
        node: Any = self._document(rel)
        for token in [t for t in pointer.split("/") if t]:
            try:
                node = node[_unescape_pointer(token)]
            except (KeyError, TypeError) as exc:
                raise KeyError(f"$ref {ref!r} from {base_rel}: {pointer!r} not found in {rel}") from exc
        converted = self.convert(node, rel)
        parts = [t for t in pointer.split("/") if t]
        if len(parts) == 2 and parts[0] == "definitions":
            relaxed = _RELAXED_REQUIRED.get((rel, parts[1]))
            if relaxed and "required" in converted:
                converted["required"] = [r for r in converted["required"] if r not in relaxed]
            for name, replacement in _RELAXED_PROPERTIES.get((rel, parts[1]), {}).items():
                converted.setdefault("properties", {})[name] = replacement
        self.defs[key] = converted
        return key

    def convert(self, node: Any, rel: str) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise TypeError(f"{rel}: unexpected schema node {node!r}")
        nullable = node.get("x-nullable") is True
        if "$ref" in node:
            # Swagger ignores the siblings of $ref except annotations (description, readOnly).
            schema: dict[str, Any] = {"$ref": f"#/$defs/{self.ref(rel, node['$ref'])}"}
            return {"anyOf": [schema, {"type": "null"}]} if nullable else schema

        schema = {}
        swagger_type = node.get("type")
        if isinstance(swagger_type, str) and swagger_type != "file":
            schema["type"] = swagger_type
        elif swagger_type is None and ("properties" in node or "additionalProperties" in node):
            schema["type"] = "object"

        if "enum" in node:
            model_as_string = bool((node.get("x-ms-enum") or {}).get("modelAsString", False))
            if not model_as_string:
                schema["enum"] = list(node["enum"])

        fmt = node.get("format")
        if swagger_type in (None, "string") and fmt in ("date-time", "duration"):
            shape = DATE_TIME_PATTERN if fmt == "date-time" else DURATION_PATTERN
            if "pattern" in node:
                schema["allOf"] = [{"pattern": shape}]
            else:
                schema["pattern"] = shape

        for keyword in ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
                        "uniqueItems", "multipleOf"):
            if keyword in node:
                schema[keyword] = node[keyword]
        # Swagger 2.0 (draft 4) exclusive bounds are booleans qualifying minimum/maximum.
        if node.get("exclusiveMinimum") is True and "minimum" in schema:
            schema["exclusiveMinimum"] = schema.pop("minimum")
        if node.get("exclusiveMaximum") is True and "maximum" in schema:
            schema["exclusiveMaximum"] = schema.pop("maximum")

        if "properties" in node:
            schema["properties"] = {name: self.convert(sub, rel) for name, sub in node["properties"].items()}
        if node.get("required"):
            schema["required"] = list(node["required"])
        if "additionalProperties" in node:
            extra = node["additionalProperties"]
            schema["additionalProperties"] = extra if isinstance(extra, bool) else self.convert(extra, rel)
        if "items" in node:
            schema["items"] = self.convert(node["items"], rel)
        if "allOf" in node:
            schema["allOf"] = schema.get("allOf", []) + [self.convert(sub, rel) for sub in node["allOf"]]

        if nullable:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema


_WRAPPED_ERROR_STRICT = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"]}},
}
_FLAT_ERROR_STRICT = {"type": "object", "required": ["code", "message"]}


@functools.lru_cache(maxsize=None)
def _converter(root: str) -> _SwaggerConverter:
    return _SwaggerConverter(Path(root))


def _error_schema(converter: _SwaggerConverter, errors: str) -> dict:
    wrapped = {"allOf": [{"$ref": f"#/$defs/{converter.ref(COMMON_V3, '#/definitions/ErrorResponse')}"},
                         _WRAPPED_ERROR_STRICT]}
    if errors == "wrapped":
        return wrapped
    flat = {"allOf": [{"$ref": f"#/$defs/{converter.ref(COMMON_V1, '#/definitions/ErrorResponse')}"},
                      _FLAT_ERROR_STRICT]}
    return {"anyOf": [wrapped, flat]}


_COMPILE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _validator(root: str, kind: str, success: bool) -> jsonschema.protocols.Validator:
    with _COMPILE_LOCK:  # the converter is shared between kinds; compile one schema at a time
        return _compile(root, kind, success)


def _compile(root: str, kind: str, success: bool) -> jsonschema.protocols.Validator:
    spec = KINDS[kind]
    converter = _converter(root)
    if success and spec.spec is not None:
        body: dict = {"$ref": f"#/$defs/{converter.ref(spec.spec, '#/definitions/' + spec.definition)}"}
    else:
        body = _error_schema(converter, spec.errors)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **body, "$defs": dict(converter.defs)}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_for(kind: str, status: int = 200) -> dict:
    """The compiled JSON Schema used for `kind` at `status` (for debugging and documentation)."""
    if kind not in KINDS:
        raise ValueError(f"unknown response kind {kind!r}; use one of {sorted(KINDS)}")
    return _validator(str(specs_dir()), kind, 200 <= status < 300).schema


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

    kind: subscriptions | accounts_list | account | metric_definitions | metrics | batch | error.
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
    validator = _validator(str(specs_dir()), kind, success)
    errors = sorted(validator.iter_errors(body), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    problems.extend(f"{label}: {_describe(e)}" for e in errors)
    return problems


def assert_valid_response(kind: str, status: int, body) -> None:
    """Raise AssertionError listing the problems when the body does not match the spec."""
    problems = validate_response(kind, status, body)
    if problems:
        raise AssertionError("response does not match the Azure spec:\n  " + "\n  ".join(problems))
