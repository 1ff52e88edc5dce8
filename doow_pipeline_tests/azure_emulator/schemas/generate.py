"""Generate the committed JSON Schemas (draft 2020-12) from Microsoft's Azure REST API specs.

The schemas in this folder are derived from the swagger 2.0 files of Microsoft's public
Azure/azure-rest-api-specs repository (MIT License). To regenerate them, point `--specs` at the
`specification/` folder of a checkout of that repository (or at any folder mirroring its layout):

    python -m doow_pipeline_tests.azure_emulator.schemas.generate --specs PATH/TO/azure-rest-api-specs/specification
    python -m doow_pipeline_tests.azure_emulator.schemas.generate --specs PATH --check   # exit 1 if stale

Spec files read (paths below `specification/`), and the definition each schema file starts from:

    metrics.json             monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metrics_API.json  Response
    metric_definitions.json  monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metricDefinitions_API.json
                             MetricDefinitionCollection
    batch.json               monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json
                             MetricResultsResponse
    deployments_list.json    cognitiveservices/.../stable/2024-10-01/cognitiveservices.json  DeploymentListResult
    metric_namespaces.json   monitor/resource-manager/Microsoft.Insights/preview/2017-12-01-preview/
                             metricNamespaces_API.json  MetricNamespaceCollection (built in when absent)
    accounts_list.json       cognitiveservices/resource-manager/Microsoft.CognitiveServices/stable/2024-10-01/
                             cognitiveservices.json  AccountListResult
    account.json             the same file, Account
    subscriptions.json       resources/resource-manager/Microsoft.Resources/stable/2022-12-01/subscriptions.json
                             SubscriptionListResult
    errors.json              common-types/resource-management/v1/types.json ErrorResponse (flat) and
                             common-types/resource-management/v3/types.json ErrorResponse (wrapped)

plus every file their `$ref`s reach (monitor/common-types/v2/commonMonitoringTypes.json, common-types
v1/v2/v3 types.json, v2 privatelinks.json). When the specs folder has no `subscriptions.json` (the copy
these schemas were last generated from had none), the Subscriptions_List definitions built into this
module (transcribed from the published 2022-12-01 definitions: names, types, enums) are used instead and
subscriptions.json says so in its `$comment`.

Each output file is one self-contained schema: `$ref` to its root definition and `$defs` holding every
definition reachable from it (errors.json: `anyOf` of both error forms). `$ref`s across spec files are
resolved into `$defs` entries named after the spec file and JSON pointer
(`monitor_common-types_v2_commonMonitoringTypes_definitions_Metric`); recursive definitions stay
internal references. Output is deterministic: sorted keys, two-space indent, UTF-8, one trailing
newline, so regenerating from the same specs gives byte-identical files.

Only facts are carried over; all prose (description, title, summary, x-ms-summary, examples,
x-ms-examples, externalDocs) and client hints (x-ms-client-name, x-ms-flatten, ...) are dropped.
Conversion rules (swagger 2.0 -> JSON Schema):
- `type`, `properties`, `required`, `items`, `allOf`, `additionalProperties`, `minimum`/`maximum`
  (with swagger's boolean `exclusiveMinimum`/`exclusiveMaximum`), `minLength`/`maxLength`, `pattern`,
  `minItems`/`maxItems`, `uniqueItems`, `multipleOf`, `format` and `readOnly` carry over; a node with
  `properties` or `additionalProperties` and no `type` is an object.
- `x-nullable: true` admits `null` (`anyOf` with `{"type": "null"}`); nothing else does.
- `enum` becomes `enum` when `x-ms-enum.modelAsString` is false or absent. With `modelAsString: true`
  Azure may send values not listed (it adds them without a new api-version), so the listed values are
  kept as the annotation `x-known-values` and any string validates.
- `format: date-time` and `format: duration` also get a light ISO 8601 `pattern` (the SDK deserializers
  reject malformed ones too); other formats (int32, double, arm-id, uuid, ...) are annotations.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parent
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SOURCE = "Azure/azure-rest-api-specs"
REGENERATE = "python -m doow_pipeline_tests.azure_emulator.schemas.generate --specs PATH/TO/specification"

METRICS_SPEC = "monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metrics_API.json"
METRIC_DEFINITIONS_SPEC = "monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metricDefinitions_API.json"
BATCH_SPEC = "monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json"
COGNITIVE_SPEC = (
    "cognitiveservices/resource-manager/Microsoft.CognitiveServices/stable/2024-10-01/cognitiveservices.json"
)
SUBSCRIPTIONS_SPEC = "resources/resource-manager/Microsoft.Resources/stable/2022-12-01/subscriptions.json"
METRIC_NAMESPACES_SPEC = (
    "monitor/resource-manager/Microsoft.Insights/preview/2017-12-01-preview/metricNamespaces_API.json"
)
COMMON_V1 = "common-types/resource-management/v1/types.json"
COMMON_V3 = "common-types/resource-management/v3/types.json"

DATE_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$"
DURATION_PATTERN = r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"

_COPIED_KEYWORDS = (
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "format",
    "readOnly",
)


@dataclass(frozen=True)
class Root:
    """A definition a schema file starts from: spec file (relative to the specs folder) and name."""

    spec: str
    definition: str

    @property
    def pointer(self) -> str:
        return f"#/definitions/{self.definition}"


# Output file -> the root definition(s). Several roots: the file's schema is `anyOf` of them.
TARGETS: dict[str, tuple[Root, ...]] = {
    "subscriptions.json": (Root(SUBSCRIPTIONS_SPEC, "SubscriptionListResult"),),
    "accounts_list.json": (Root(COGNITIVE_SPEC, "AccountListResult"),),
    "account.json": (Root(COGNITIVE_SPEC, "Account"),),
    "metric_definitions.json": (Root(METRIC_DEFINITIONS_SPEC, "MetricDefinitionCollection"),),
    "metrics.json": (Root(METRICS_SPEC, "Response"),),
    "batch.json": (Root(BATCH_SPEC, "MetricResultsResponse"),),
    "deployments_list.json": (Root(COGNITIVE_SPEC, "DeploymentListResult"),),
    "metric_namespaces.json": (Root(METRIC_NAMESPACES_SPEC, "MetricNamespaceCollection"),),
    "errors.json": (Root(COMMON_V3, "ErrorResponse"), Root(COMMON_V1, "ErrorResponse")),
}

# Subscriptions_List (2022-12-01) in swagger form: field names, types and enums as in the published
# definitions, used when the specs folder has no subscriptions.json.
BUILTIN_DOCS: dict[str, dict] = {
    SUBSCRIPTIONS_SPEC: {
        "definitions": {
            "Subscription": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "readOnly": True},
                    "subscriptionId": {"type": "string", "readOnly": True},
                    "displayName": {"type": "string", "readOnly": True},
                    "tenantId": {"type": "string", "readOnly": True},
                    "state": {
                        "type": "string",
                        "readOnly": True,
                        "enum": ["Enabled", "Warned", "PastDue", "Disabled", "Deleted"],
                        "x-ms-enum": {"name": "SubscriptionState", "modelAsString": False},
                    },
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
                    "spendingLimit": {
                        "type": "string",
                        "readOnly": True,
                        "enum": ["On", "Off", "CurrentPeriodOff"],
                        "x-ms-enum": {"name": "spendingLimit", "modelAsString": False},
                    },
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
}
BUILTIN_DOCS[METRIC_NAMESPACES_SPEC] = {
    # MetricNamespaces_List (2017-12-01-preview, Azure/azure-rest-api-specs
    # specification/monitor/resource-manager/Microsoft.Insights/preview/2017-12-01-preview/metricNamespaces_API.json):
    # names and types of its definitions.
    "definitions": {
        "MetricNamespaceName": {"properties": {"metricNamespaceName": {"type": "string"}}},
        "MetricNamespace": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "type": {"type": "string"},
                "name": {"type": "string"},
                "properties": {"$ref": "#/definitions/MetricNamespaceName"},
            },
        },
        "MetricNamespaceCollection": {
            "properties": {"value": {"type": "array", "items": {"$ref": "#/definitions/MetricNamespace"}}},
            "required": ["value"],
        },
        "ErrorResponse": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    }
}
BUILTIN_NOTES = {
    SUBSCRIPTIONS_SPEC: "Subscriptions_List 2022-12-01",
    METRIC_NAMESPACES_SPEC: "MetricNamespaces_List 2017-12-01-preview",
}
BUILTIN_NOTE = (
    "{spec} was not in the specs folder: these definitions come from the {what} "
    "definitions built into generate.py (transcribed from the published spec)."
)


class SpecsError(Exception):
    """A spec file the generator needs is missing or malformed."""


def def_key(rel: str, pointer: str) -> str:
    """The `$defs` name of a spec definition: its file (without .json) and JSON pointer, sanitised."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{rel.removesuffix('.json')}{pointer}").strip("_")


def _unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


class SwaggerConverter:
    """Converts the swagger 2.0 definitions reachable from chosen roots into JSON Schema `$defs`.

    `builtin` maps spec paths to swagger documents used when the file is not under `root`.
    """

    def __init__(self, root: Path, builtin: dict[str, dict] | None = None):
        self.root = root
        self.builtin = dict(builtin or {})
        self.defs: dict[str, Any] = {}
        self.builtin_used: set[str] = set()
        self._keys: dict[tuple[str, str], str] = {}
        self._docs: dict[str, dict] = {}

    def _document(self, rel: str) -> dict:
        if rel not in self._docs:
            path = self.root / rel
            if path.is_file():
                try:
                    with path.open(encoding="utf-8") as fh:
                        self._docs[rel] = json.load(fh)
                except ValueError as exc:
                    raise SpecsError(f"spec file {path} is not JSON: {exc}") from exc
            elif rel in self.builtin:
                self._docs[rel] = self.builtin[rel]
                self.builtin_used.add(rel)
            else:
                raise SpecsError(f"spec file {path} does not exist (needed below {self.root})")
        return self._docs[rel]

    @staticmethod
    def _resolve_rel(base_rel: str, file_part: str) -> str:
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
        key = def_key(rel, pointer)
        while key in self.defs:
            key += "_"
        self._keys[ident] = key
        self.defs[key] = {}  # placeholder: recursive references find the key already allocated
        node: Any = self._document(rel)
        for token in [t for t in pointer.split("/") if t]:
            try:
                node = node[_unescape_pointer(token)]
            except (KeyError, TypeError) as exc:
                raise SpecsError(f"$ref {ref!r} from {base_rel}: {pointer!r} not found in {rel}") from exc
        self.defs[key] = self.convert(node, rel)
        return key

    def convert(self, node: Any, rel: str) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise SpecsError(f"{rel}: unexpected schema node {node!r}")
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
            schema["x-known-values" if model_as_string else "enum"] = list(node["enum"])

        for keyword in _COPIED_KEYWORDS:
            if keyword in node:
                schema[keyword] = node[keyword]
        fmt = node.get("format")
        if swagger_type in (None, "string") and fmt in ("date-time", "duration"):
            shape = DATE_TIME_PATTERN if fmt == "date-time" else DURATION_PATTERN
            if "pattern" in node:
                schema["allOf"] = [{"pattern": shape}]
            else:
                schema["pattern"] = shape
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


def build_schema(specs: Path, roots: tuple[Root, ...], builtin: dict[str, dict] | None = None) -> dict:
    """One self-contained JSON Schema for `roots` (several: `anyOf`), with every reachable definition."""
    converter = SwaggerConverter(specs, BUILTIN_DOCS if builtin is None else builtin)
    refs = [{"$ref": f"#/$defs/{converter.ref(root.spec, root.pointer)}"} for root in roots]
    sources = ", ".join(f"{root.spec}{root.pointer}" for root in roots)
    notes = [f"Generated from {SOURCE} ({sources}) by {REGENERATE}; do not edit."]
    notes += [BUILTIN_NOTE.format(spec=rel, what=BUILTIN_NOTES.get(rel, rel)) for rel in sorted(converter.builtin_used)]
    body: dict[str, Any] = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"$schema": JSON_SCHEMA_DIALECT, "$comment": " ".join(notes), **body, "$defs": converter.defs}


def render(schema: dict) -> str:
    """The canonical text of a schema file: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(
    specs: Path, targets: dict[str, tuple[Root, ...]] | None = None, builtin: dict[str, dict] | None = None
) -> dict[str, str]:
    """File name -> canonical text of every schema file, generated from the specs folder."""
    return {name: render(build_schema(specs, roots, builtin)) for name, roots in sorted((targets or TARGETS).items())}


def run(
    specs: Path,
    out: Path,
    check: bool = False,
    targets: dict[str, tuple[Root, ...]] | None = None,
    builtin: dict[str, dict] | None = None,
) -> list[str]:
    """Write (or with `check`, only compare) the schema files in `out`; returns the names that differed."""
    if not specs.is_dir():
        raise SpecsError(f"specs folder {specs} does not exist")
    stale = []
    for name, text in generate(specs, targets, builtin).items():
        path = out / name
        if path.is_file() and path.read_bytes() == text.encode("utf-8"):
            continue
        stale.append(name)
        if not check:
            path.write_bytes(text.encode("utf-8"))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the emulator's JSON Schemas from Azure REST API specs.")
    parser.add_argument(
        "--specs", type=Path, required=True, help="the specification/ folder of an Azure/azure-rest-api-specs checkout"
    )
    parser.add_argument("--out", type=Path, default=SCHEMAS_DIR, help="output folder (default: this package)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file would change")
    args = parser.parse_args(argv)
    try:
        stale = run(args.specs, args.out, check=args.check)
    except SpecsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "out of date" if args.check else "written"
    print(f"{len(stale)} schema file(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
