"""connections.yaml and .env edits for connect/disconnect: in place, other content kept, atomic, 0600."""

from __future__ import annotations

import os
import stat
from datetime import date
from types import SimpleNamespace

import pytest
import yaml
from dotenv import dotenv_values

from doow_pipeline.cli import files
from doow_pipeline.cli.output import sparkline

PROD = SimpleNamespace(
    name="prod",
    tenant_id="t",
    client_id="c",
    client_secret_env="DOOW_SECRET_PROD",
    scope="/subscriptions/x",
    cloud="AzureCloud",
)
DEV = SimpleNamespace(
    name="dev",
    tenant_id="t",
    client_id="c",
    client_secret_env="DOOW_SECRET_DEV",
    scope="/subscriptions/y/resourceGroups/rg",
    cloud="AzureUSGovernment",
)
ENDPOINTS = {
    "authority": "https://127.0.0.1:9",
    "arm": "https://127.0.0.1:9",
    "metrics": "https://127.0.0.1:9/{region}",
    "ca_cert": "/tmp/ca.pem",
}
HAND_WRITTEN = """# Our Azure connections (comments must survive)
settings:
  warehouse: w.duckdb   # next to this file
  top: 10
connections:
  # the first one
  - name: a
    tenant_id: t
    scope: s  # trailing comment
  -
    name: b
    scope: t
# closing comment
"""


def test_new_file_has_the_connection_and_a_settings_block():
    text = files.yaml_with_connection(
        None, PROD, {"warehouse": "data/doow.duckdb", "start_date": date(2026, 8, 20)}, ENDPOINTS
    )
    document = yaml.safe_load(text)
    assert document == {
        "connections": [vars(PROD)],
        "settings": {"warehouse": "data/doow.duckdb", "start_date": date(2026, 8, 20), "endpoints": ENDPOINTS},
    }
    assert text.startswith("# doow-pipeline connections")


def test_adding_keeps_comments_order_and_existing_endpoints():
    text = files.yaml_with_connection(HAND_WRITTEN, PROD, None, ENDPOINTS)
    assert text.startswith(HAND_WRITTEN.split("# closing comment")[0].split("settings:")[0])
    for comment in (
        "# Our Azure connections",
        "# next to this file",
        "# the first one",
        "# trailing comment",
        "# closing comment",
    ):
        assert comment in text
    document = yaml.safe_load(text)
    assert [c["name"] for c in document["connections"]] == ["a", "b", "prod"]
    assert document["settings"] == {"warehouse": "w.duckdb", "top": 10, "endpoints": ENDPOINTS}
    # Endpoints already present are never replaced.
    again = files.yaml_with_connection(text, DEV, None, dict(ENDPOINTS, arm="https://elsewhere:1"))
    assert yaml.safe_load(again)["settings"]["endpoints"] == ENDPOINTS
    assert [c["name"] for c in yaml.safe_load(again)["connections"]] == ["a", "b", "prod", "dev"]


def test_removing_takes_out_exactly_that_entry():
    text = files.yaml_with_connection(HAND_WRITTEN, PROD, None, None)
    for name, left in (("a", ["b", "prod"]), ("b", ["a", "prod"]), ("prod", ["a", "b"])):
        removed = files.yaml_without_connection(text, name)
        document = yaml.safe_load(removed)
        assert [c["name"] for c in document["connections"]] == left
        assert document["settings"] == {"warehouse": "w.duckdb", "top": 10}
        assert "# Our Azure connections" in removed and "# closing comment" in removed
    only = files.yaml_with_connection(None, PROD, {}, None)
    assert yaml.safe_load(files.yaml_without_connection(only, "prod"))["connections"] == []
    with pytest.raises(files.ConnectionFileError):
        files.yaml_without_connection(text, "unknown")
    with pytest.raises(files.ConnectionFileError):
        files.yaml_with_connection(text, SimpleNamespace(**{**vars(PROD), "name": "a"}), None, None)


@pytest.mark.parametrize(
    "text",
    [
        "connections: []\n",
        "connections:\nsettings:\n  top: 5\n",
        "connections: [{name: z, scope: q}]\n",
        "settings: {top: 5}\n",
        "{}\n",
    ],
)
def test_unusual_layouts_still_parse_to_the_intended_document(text):
    new = files.yaml_with_connection(text, PROD, None, ENDPOINTS)
    document = yaml.safe_load(new)
    before = yaml.safe_load(text) or {}
    assert document["connections"] == [*(before.get("connections") or []), vars(PROD)]
    assert document["settings"]["endpoints"] == ENDPOINTS
    assert yaml.safe_load(files.yaml_without_connection(new, "prod"))["connections"] == (
        before.get("connections") or []
    )


@pytest.mark.parametrize(
    "secret", ["plain-Secret~1.2_3", "with space", "quote'and\\backslash", "$HOME #x", 'double"quote=eq']
)
def test_env_secret_round_trips_and_other_entries_stay_verbatim(secret):
    original = "# comment\nexport A='1'\nB=\"two words\"\n\nC=3 # note\nDOOW_SECRET_PROD=old\n"
    new = files.env_with_secret(original, "DOOW_SECRET_PROD", secret)
    assert new.startswith("# comment\nexport A='1'\nB=\"two words\"\n\nC=3 # note\n")
    values = dotenv_values(stream=__import__("io").StringIO(new))
    assert values["DOOW_SECRET_PROD"] == secret and values["A"] == "1" and values["C"] == "3"
    assert new.count("DOOW_SECRET_PROD") == 1
    assert files.env_without(new, "DOOW_SECRET_PROD") == "# comment\nexport A='1'\nB=\"two words\"\n\nC=3 # note\n"


def test_env_refuses_secrets_dotenv_would_read_back_differently():
    for bad in ("", "a\nb", "x${HOME}y"):  # ${...} is interpolated by dotenv, so it could not be read back
        with pytest.raises(files.ConnectionFileError):
            files.env_with_secret("", "X", bad)


def test_atomic_write_sets_the_mode_and_apply_rolls_back(tmp_path):
    env = tmp_path / ".env"
    files.atomic_write(env, b"A=1\n", files.ENV_FILE_MODE)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    config = tmp_path / "connections.yaml"
    config.write_bytes(b"old\n")
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    os.chmod(blocker, 0o500)
    writes = [
        files.PlannedWrite(env, b"A=2\n", b"A=1\n", files.ENV_FILE_MODE),
        files.PlannedWrite(config, b"new\n", b"old\n"),
        files.PlannedWrite(blocker / "sub" / "x.yaml", b"x", None),
    ]
    if os.geteuid() == 0:  # root ignores directory permissions: make the third write fail differently
        (blocker / "sub").write_text("a file where a directory is needed")
    with pytest.raises(OSError):
        files.apply(writes)
    assert env.read_bytes() == b"A=1\n" and config.read_bytes() == b"old\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sparkline_scales_and_marks_missing_days():
    assert sparkline([0, 50, 100, None]) == "▁▅█ "
    assert sparkline([None, None]) == "  "
    assert sparkline([0, 0]) == "▁▁"
