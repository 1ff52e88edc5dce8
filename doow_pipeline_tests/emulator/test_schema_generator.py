"""schemas/generate.py on a small swagger fixture (fixtures/swagger): facts kept, prose dropped, stable output."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from doow_pipeline_tests.azure_emulator.schemas import generate

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "swagger"
EXPECTED = FIXTURE / "expected_widgets.json"
WIDGETS = "svc/stable/2026-01-01/widgets.json"
TARGETS = {"widgets.json": (generate.Root(WIDGETS, "WidgetList"),)}
WIDGET = f"{generate.def_key(WIDGETS, '#/definitions/Widget')}"

# Keywords that carry prose or client hints in swagger; none may reach a generated schema.
PROSE = {
    "description",
    "title",
    "summary",
    "x-ms-summary",
    "example",
    "examples",
    "x-ms-examples",
    "externalDocs",
    "x-ms-client-name",
    "x-ms-enum",
    "x-ms-flatten",
    "x-ms-azure-resource",
    "x-ms-identifiers",
    "x-nullable",
    "operationId",
    "info",
    "paths",
}


def _keywords(schema, found: set[str] | None = None) -> set[str]:
    """Every keyword used in a schema (property names under `properties`/`$defs` are names, not keywords)."""
    found = set() if found is None else found
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _keywords(sub, found)
            else:
                _keywords(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _keywords(item, found)
    return found


def _generate() -> str:
    return generate.generate(FIXTURE, TARGETS, builtin={})["widgets.json"]


def test_fixture_generates_the_committed_expected_schema_byte_for_byte():
    text = _generate()
    assert text == EXPECTED.read_text(encoding="utf-8")
    assert _generate() == text  # deterministic
    assert text.endswith("}\n") and json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text


def test_facts_are_kept():
    schema = json.loads(_generate())
    defs = schema["$defs"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$ref"] == f"#/$defs/{generate.def_key(WIDGETS, '#/definitions/WidgetList')}"
    widget = defs[WIDGET]
    props = widget["properties"]
    assert widget["type"] == "object" and widget["required"] == ["colour"]
    assert props["colour"] == {"type": "string", "enum": ["Red", "Blue"]}  # closed enum
    assert props["shape"] == {"type": "string", "x-known-values": ["Round", "Square"]}  # modelAsString: any string
    assert props["created"]["format"] == "date-time" and props["created"]["pattern"] == generate.DATE_TIME_PATTERN
    assert props["ttl"]["format"] == "duration" and props["ttl"]["pattern"] == generate.DURATION_PATTERN
    assert props["size"] == {"type": "integer", "format": "int32", "exclusiveMinimum": 0}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["sealed"]["additionalProperties"] is False and props["sealed"]["type"] == "object"
    # $refs across files resolved into $defs; the recursive one stays an internal reference.
    resource = defs["common_types_definitions_Resource"]
    assert widget["allOf"] == [{"$ref": "#/$defs/common_types_definitions_Resource"}]
    assert resource["required"] == ["id"] and resource["properties"]["id"] == {
        "type": "string",
        "readOnly": True,
        "format": "arm-id",
    }
    problem = defs["common_types_definitions_Problem"]
    assert problem["properties"]["details"]["items"] == {"$ref": "#/$defs/common_types_definitions_Problem"}
    assert all(ref.startswith("#/$defs/") for ref in _refs(schema))


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_prose_is_dropped():
    text = _generate()
    assert not _keywords(json.loads(text)) & PROSE
    source = (FIXTURE / WIDGETS).read_text() + (FIXTURE / "common" / "types.json").read_text()
    for prose in (
        "Closed set of colours.",
        "Warm.",
        "When it was made.",
        "Fully qualified id.",
        "hello",
        "example.invalid",
        "Next page",
        "remark",
        "Lists every widget.",
    ):
        assert prose in source and prose not in text, prose


def test_generated_schema_validates_like_the_spec_says():
    validator = jsonschema.Draft202012Validator(json.loads(_generate()))
    good = {
        "value": [
            {
                "id": "/widgets/a",
                "colour": "Red",
                "shape": "Hexagon",
                "created": "2026-11-20T00:00:00Z",
                "ttl": "PT1H",
                "size": 1,
                "note": None,
                "labels": {"a": "b"},
                "sealed": {"a": "x"},
                "problem": {"code": "X", "details": [{"code": "Y"}]},
                "extra": True,
            }
        ]
    }
    assert list(validator.iter_errors(good)) == []
    for change in (
        {"colour": "Green"},
        {"id": None},
        {"created": "yesterday"},
        {"ttl": "1 hour"},
        {"size": 0},
        {"labels": {"a": 1}},
        {"sealed": {"a": "x", "b": 1}},
        {"problem": {"details": [{"code": 1}]}},
        {"shape": 5},
    ):
        bad = {"value": [{**good["value"][0], **change}]}
        assert list(validator.iter_errors(bad)), change
    assert list(validator.iter_errors({"nextLink": "x"}))  # value is required


def test_run_writes_then_check_reports_only_stale_files(tmp_path):
    assert generate.run(FIXTURE, tmp_path, targets=TARGETS, builtin={}) == ["widgets.json"]
    assert (tmp_path / "widgets.json").read_bytes() == EXPECTED.read_bytes()
    assert generate.run(FIXTURE, tmp_path, check=True, targets=TARGETS, builtin={}) == []
    (tmp_path / "widgets.json").write_text("{}\n")
    assert generate.run(FIXTURE, tmp_path, check=True, targets=TARGETS, builtin={}) == ["widgets.json"]
    assert (tmp_path / "widgets.json").read_text() == "{}\n"  # --check writes nothing


def test_missing_spec_file_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(generate.SpecsError, match="widgets.json does not exist"):
        generate.generate(tmp_path, TARGETS, builtin={})
    assert generate.main(["--specs", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


def test_subscriptions_fall_back_to_the_builtin_definitions_with_a_note(tmp_path):
    roots = generate.TARGETS["subscriptions.json"]
    builtin = generate.build_schema(tmp_path, roots)
    assert "built into generate.py" in builtin["$comment"]
    key = generate.def_key(generate.SUBSCRIPTIONS_SPEC, "#/definitions/Subscription")
    assert builtin["$defs"][key]["properties"]["state"]["enum"] == [
        "Enabled",
        "Warned",
        "PastDue",
        "Disabled",
        "Deleted",
    ]
    # With the spec file present, it is read instead and no note is added.
    spec = tmp_path / generate.SUBSCRIPTIONS_SPEC
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps(generate.BUILTIN_DOCS[generate.SUBSCRIPTIONS_SPEC]))
    from_file = generate.build_schema(tmp_path, roots)
    assert "built into" not in from_file["$comment"] and from_file["$defs"] == builtin["$defs"]


@pytest.mark.parametrize("name", sorted(generate.TARGETS))
def test_committed_schemas_are_canonical_and_carry_no_prose(name):
    text = (generate.SCHEMAS_DIR / name).read_text(encoding="utf-8")
    schema = json.loads(text)
    assert generate.render(schema) == text
    assert not _keywords(schema) & PROSE
    jsonschema.Draft202012Validator.check_schema(schema)
    assert all(ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"] for ref in _refs(schema))
